/**
 * Opens the PR/MR of a pushed branch: through `gh`/`glab` when installed and logged in, else the REST
 * API with GITHUB_TOKEN/GH_TOKEN or GITLAB_TOKEN. Tokens go in headers only, never in messages. A
 * request already open for the branch is returned (`existed`), whichever way it was asked for.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { findBinary } from "../engines/processes.js";
import { InvalidInputError, TasksGodzillaError } from "../shared/errors.js";
import type { PrTarget } from "./pr-target.js";

const exec = promisify(execFile);

export class MissingTokenError extends TasksGodzillaError {
  readonly code = "missing_token";
  constructor(provider: string, names: string) {
    super(
      `no ${provider} token: set ${names} (or install and log in to ${provider === "github" ? "gh" : "glab"})`,
    );
  }
}

export class PullRequestError extends TasksGodzillaError {
  readonly code = "pull_request_failed";
  constructor(
    readonly status: number | null,
    message: string,
  ) {
    super(message);
  }
}

export interface PrRequest {
  title: string;
  body: string;
  head: string;
  base: string;
}

export interface OpenedPr {
  url: string;
  number: number | null;
  via: "cli" | "api";
  existed: boolean;
}

/** Logged in to the repository's own host: a login to github.com says nothing about an enterprise host. */
async function cliLoggedIn(
  binary: string,
  host: string,
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<boolean> {
  try {
    await exec(binary, ["auth", "status", "--hostname", host], { cwd, env, timeout: 15_000 });
    return true;
  } catch {
    return false;
  }
}

/** The `--repo` value of `gh` (`[HOST/]OWNER/REPO`) or `glab` (`GROUP/PROJECT`, or its URL on another host). */
function cliRepo(target: PrTarget): string {
  if (target.provider === "github")
    return target.host === "github.com" ? target.repository : `${target.host}/${target.repository}`;
  return target.host === "gitlab.com" ? target.repository : `https://${target.host}/${target.repository}`;
}

/** The `gh pr create` / `glab mr create` arguments of a request, aimed at the resolved repository. */
export function cliArgs(target: PrTarget, pr: PrRequest): string[] {
  const repo = ["--repo", cliRepo(target)];
  return target.provider === "github"
    ? ["pr", "create", ...repo, "--title", pr.title, "--body", pr.body, "--base", pr.base, "--head", pr.head]
    : [
        "mr",
        "create",
        ...repo,
        "--title",
        pr.title,
        "--description",
        pr.body,
        "--target-branch",
        pr.base,
        "--source-branch",
        pr.head,
        "--yes",
      ];
}

/** The request's URL and number from what `gh`/`glab` print (the URL is their last line). */
export function parseCliOutput(stdout: string): Pick<OpenedPr, "url" | "number"> {
  const url = stdout.trim().split("\n").pop()?.trim() ?? "";
  return { url, number: Number(/\/(\d+)\/?$/.exec(url)?.[1]) || null };
}

const cliError = (err: unknown) =>
  (err as { stderr?: string }).stderr?.trim() || (err as Error).message || "no output";

/** The open request of the branch, as `gh pr view` / `glab mr view` print it in JSON. */
async function viewViaCli(target: PrTarget, pr: PrRequest, cwd: string, cli: CliRoute): Promise<OpenedPr> {
  const args =
    target.provider === "github"
      ? ["pr", "view", pr.head, "--repo", cliRepo(target), "--json", "url,number"]
      : ["mr", "view", pr.head, "--repo", cliRepo(target), "--output", "json"];
  try {
    const { stdout } = await exec(cli.binary, args, { cwd, env: cli.env, timeout: 60_000 });
    const found = JSON.parse(stdout) as { url?: string; number?: number; web_url?: string; iid?: number };
    const url = found.url ?? found.web_url;
    if (!url) throw new Error(`no URL in ${stdout.slice(0, 200)}`);
    return { url, number: found.number ?? found.iid ?? null, via: "cli", existed: true };
  } catch (err) {
    throw new PullRequestError(
      null,
      `${cli.binary} says the request exists but cannot show it: ${cliError(err)}`,
    );
  }
}

async function viaCli(target: PrTarget, pr: PrRequest, cwd: string, cli: CliRoute): Promise<OpenedPr> {
  try {
    const { stdout } = await exec(cli.binary, cliArgs(target, pr), { cwd, env: cli.env, timeout: 60_000 });
    return { ...parseCliOutput(stdout), via: "cli", existed: false };
  } catch (err) {
    // an open request of the same branch is the answer, as on the REST path
    if (/already exists/i.test(cliError(err))) return viewViaCli(target, pr, cwd, cli);
    throw new PullRequestError(null, `${cli.binary} could not open the request: ${cliError(err)}`);
  }
}

async function call(
  url: string,
  init: RequestInit,
): Promise<{ status: number; body: Record<string, unknown> | Record<string, unknown>[] }> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (err) {
    throw new PullRequestError(null, `cannot reach ${new URL(url).origin}: ${(err as Error).message}`);
  }
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    body = { message: text.slice(0, 500) };
  }
  return { status: res.status, body };
}

function providerMessage(body: unknown): string {
  const b = body as { message?: unknown; errors?: { message?: string }[]; error?: unknown };
  return (
    [b.message, b.error, ...(b.errors ?? []).map((e) => e.message)].filter(Boolean).map(String).join("; ") ||
    "no message"
  );
}

async function githubApi(target: PrTarget, pr: PrRequest, token: string): Promise<OpenedPr> {
  const headers = {
    authorization: `Bearer ${token}`,
    accept: "application/vnd.github+json",
    "content-type": "application/json",
    "user-agent": "tasksgodzilla",
  };
  const base = `${target.apiUrl}/repos/${target.repository}/pulls`;
  const r = await call(base, {
    method: "POST",
    headers,
    body: JSON.stringify({ title: pr.title, body: pr.body, head: pr.head, base: pr.base }),
  });
  if (r.status === 201) {
    const b = r.body as { html_url: string; number: number };
    return { url: b.html_url, number: b.number, via: "api", existed: false };
  }
  if (r.status === 422 && /already exists/i.test(providerMessage(r.body))) {
    const owner = target.repository.split("/")[0];
    const found = await call(`${base}?head=${encodeURIComponent(`${owner}:${pr.head}`)}&state=open`, {
      headers,
    });
    const first = Array.isArray(found.body)
      ? (found.body[0] as { html_url?: string; number?: number } | undefined)
      : undefined;
    if (first?.html_url)
      return { url: first.html_url, number: first.number ?? null, via: "api", existed: true };
  }
  throw new PullRequestError(
    r.status,
    `GitHub refused the pull request (HTTP ${r.status}): ${providerMessage(r.body)}`,
  );
}

async function gitlabApi(target: PrTarget, pr: PrRequest, token: string): Promise<OpenedPr> {
  const url = `${target.apiUrl}/projects/${encodeURIComponent(target.repository)}/merge_requests`;
  const headers = { "private-token": token, "content-type": "application/json" };
  const r = await call(url, {
    method: "POST",
    headers,
    body: JSON.stringify({
      source_branch: pr.head,
      target_branch: pr.base,
      title: pr.title,
      description: pr.body,
    }),
  });
  if (r.status === 201) {
    const b = r.body as { web_url: string; iid: number };
    return { url: b.web_url, number: b.iid, via: "api", existed: false };
  }
  // GitLab answers 409 when an open MR of the same source and target exists: that one is the answer
  if (r.status === 409) {
    const found = await call(
      `${url}?state=opened&source_branch=${encodeURIComponent(pr.head)}&target_branch=${encodeURIComponent(pr.base)}`,
      { headers },
    );
    const first = Array.isArray(found.body)
      ? (found.body[0] as { web_url?: string; iid?: number } | undefined)
      : undefined;
    if (first?.web_url) return { url: first.web_url, number: first.iid ?? null, via: "api", existed: true };
  }
  throw new PullRequestError(
    r.status,
    `GitLab refused the merge request (HTTP ${r.status}): ${providerMessage(r.body)}`,
  );
}

/** How a request is opened: through the logged-in `gh`/`glab`, or the REST API with a token. */
export type PrRoute = CliRoute | { via: "api"; token: string };

/** The CLI runs with the environment the route was chosen in (its login, config dir and CA bundle). */
interface CliRoute {
  via: "cli";
  binary: string;
  env: NodeJS.ProcessEnv;
}

const VIA = ["auto", "cli", "api"];

/**
 * `TASKSGODZILLA_PR_VIA`: `auto` (default: the CLI when logged in, else the API), `cli` or `api`.
 * Decided before anything is committed or pushed, so a missing CLI or token fails first.
 */
export async function choosePrRoute(target: PrTarget, cwd: string, env: NodeJS.ProcessEnv): Promise<PrRoute> {
  const via = env.TASKSGODZILLA_PR_VIA || "auto";
  if (!VIA.includes(via))
    throw new InvalidInputError(`TASKSGODZILLA_PR_VIA=${via}: expected ${VIA.join(", ")}`);
  const name = target.provider === "github" ? "gh" : "glab";
  const cli = findBinary(name, env.PATH);
  if (via === "cli" && !cli)
    throw new PullRequestError(null, `TASKSGODZILLA_PR_VIA=cli but ${name} is not installed (not on PATH)`);
  if (via !== "api" && cli && (via === "cli" || (await cliLoggedIn(cli, target.host, cwd, env))))
    return { via: "cli", binary: cli, env };
  const token = target.provider === "github" ? env.GITHUB_TOKEN || env.GH_TOKEN : env.GITLAB_TOKEN;
  if (!token)
    throw new MissingTokenError(
      target.provider,
      target.provider === "github" ? "GITHUB_TOKEN or GH_TOKEN" : "GITLAB_TOKEN",
    );
  return { via: "api", token };
}

export function openPullRequest(
  target: PrTarget,
  pr: PrRequest,
  cwd: string,
  route: PrRoute,
): Promise<OpenedPr> {
  if (route.via === "cli") return viaCli(target, pr, cwd, route);
  return target.provider === "github"
    ? githubApi(target, pr, route.token)
    : gitlabApi(target, pr, route.token);
}
