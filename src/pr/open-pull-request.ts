/**
 * Opens the PR/MR of a pushed branch: through `gh`/`glab` when installed and logged in, else the REST
 * API with GITHUB_TOKEN/GH_TOKEN or GITLAB_TOKEN. Tokens go in headers only, never in messages.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { findBinary } from "../engines/process/run-process.js";
import { TasksGodzillaError } from "../shared/errors.js";
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

async function cliLoggedIn(binary: string, cwd: string): Promise<boolean> {
  try {
    await exec(binary, ["auth", "status"], { cwd, timeout: 15_000 });
    return true;
  } catch {
    return false;
  }
}

/** The `gh pr create` / `glab mr create` arguments of a request. */
export function cliArgs(provider: PrTarget["provider"], pr: PrRequest): string[] {
  return provider === "github"
    ? ["pr", "create", "--title", pr.title, "--body", pr.body, "--base", pr.base, "--head", pr.head]
    : [
        "mr",
        "create",
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

async function viaCli(target: PrTarget, pr: PrRequest, cwd: string, binary: string): Promise<OpenedPr> {
  try {
    const { stdout } = await exec(binary, cliArgs(target.provider, pr), { cwd, timeout: 60_000 });
    return { ...parseCliOutput(stdout), via: "cli", existed: false };
  } catch (err) {
    throw new PullRequestError(
      null,
      `${binary} could not open the request: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`,
    );
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

/** `TASKSGODZILLA_PR_VIA`: `auto` (default: the CLI when logged in, else the API), `cli` or `api`. */
export async function openPullRequest(
  target: PrTarget,
  pr: PrRequest,
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<OpenedPr> {
  const via = env.TASKSGODZILLA_PR_VIA ?? "auto";
  const name = target.provider === "github" ? "gh" : "glab";
  const cli = findBinary(name, env.PATH);
  if (via === "cli" && !cli)
    throw new PullRequestError(null, `TASKSGODZILLA_PR_VIA=cli but ${name} is not installed (not on PATH)`);
  if (via !== "api" && cli && (via === "cli" || (await cliLoggedIn(cli, cwd))))
    return viaCli(target, pr, cwd, cli);
  if (target.provider === "github") {
    const token = env.GITHUB_TOKEN ?? env.GH_TOKEN;
    if (!token) throw new MissingTokenError("github", "GITHUB_TOKEN or GH_TOKEN");
    return githubApi(target, pr, token);
  }
  const token = env.GITLAB_TOKEN;
  if (!token) throw new MissingTokenError("gitlab", "GITLAB_TOKEN");
  return gitlabApi(target, pr, token);
}
