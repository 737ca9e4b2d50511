/**
 * GitHub and GitLab webhook payloads reduced to one CI event: which branch (or run), which
 * repository, and the outcome — as the original TasksGodzilla classified them.
 */

import type { CiEvent, CiOutcome } from "../../services/apply-ci-result.js";

const GITHUB: Record<Exclude<CiOutcome, "merged" | "other">, string[]> = {
  success: ["success", "neutral", "passed", "ok", "merged"],
  running: ["in_progress", "queued", "requested", "pending"],
  failure: ["failure", "timed_out", "cancelled", "canceled", "action_required", "error"],
};
const GITLAB: typeof GITHUB = {
  success: ["success", "passed", "merge"],
  running: ["running", "pending"],
  failure: ["failed", "canceled", "cancelled"],
};

function outcomeOf(status: string, table: typeof GITHUB): CiOutcome {
  const s = status.toLowerCase();
  for (const outcome of ["success", "running", "failure"] as const)
    if (table[outcome].includes(s)) return outcome;
  return "other";
}

type Body = Record<string, unknown>;

/** The value at a dotted path of a JSON payload (`branches.0.name`). */
function at(o: unknown, path: string): unknown {
  return path
    .split(".")
    .reduce<unknown>(
      (cur, k) => (cur && typeof cur === "object" ? (cur as Record<string, unknown>)[k] : undefined),
      o,
    );
}

function text(b: Body, ...paths: string[]): string | undefined {
  for (const p of paths) {
    const v = at(b, p);
    if (typeof v === "string" && v !== "") return v;
  }
  return undefined;
}

function int(b: Body, ...paths: string[]): number | null {
  for (const p of paths) {
    const v = at(b, p);
    if (typeof v === "number" && Number.isInteger(v)) return v;
  }
  return null;
}

const present = (...values: (string | undefined)[]) => values.filter((v): v is string => Boolean(v));

export function githubEvent(kind: string, b: Body): CiEvent {
  let branch: string | undefined;
  let status: string | undefined;
  let merged = false;
  if (kind === "workflow_run") {
    branch = text(b, "workflow_run.head_branch");
    status = text(b, "workflow_run.conclusion", "workflow_run.status");
  } else if (kind === "check_suite" || kind === "check_run") {
    branch = text(b, `${kind}.head_branch`, "check_run.check_suite.head_branch");
    status = text(b, `${kind}.conclusion`, `${kind}.status`);
  } else if (kind === "pull_request") {
    branch = text(b, "pull_request.head.ref");
    merged = at(b, "pull_request.merged") === true;
    status = merged ? "merged" : text(b, "pull_request.state");
  } else if (kind === "status") {
    branch = text(b, "branches.0.name", "ref");
    status = text(b, "state");
  }
  return {
    provider: "github",
    kind,
    branch: branch ?? null,
    status: status ?? "",
    outcome: merged ? "merged" : kind === "pull_request" ? "other" : outcomeOf(status ?? "", GITHUB),
    repository: present(
      text(b, "repository.full_name"),
      text(b, "repository.clone_url"),
      text(b, "repository.ssh_url"),
      text(b, "repository.html_url"),
    ),
    pr_number: int(
      b,
      "pull_request.number",
      "workflow_run.pull_requests.0.number",
      `${kind}.pull_requests.0.number`,
    ),
    sha: text(b, "pull_request.head.sha", "workflow_run.head_sha", `${kind}.head_sha`, "sha") ?? null,
  };
}

export function gitlabEvent(b: Body): CiEvent {
  const kind = text(b, "object_kind") ?? "unknown";
  const status = text(b, "object_attributes.status", "object_attributes.state") ?? "";
  const merged = kind === "merge_request" && status.toLowerCase() === "merged";
  return {
    provider: "gitlab",
    kind,
    branch: text(b, "object_attributes.source_branch", "object_attributes.ref", "ref") ?? null,
    status,
    outcome: merged ? "merged" : kind === "merge_request" ? "other" : outcomeOf(status, GITLAB),
    repository: present(
      text(b, "project.path_with_namespace"),
      text(b, "project.git_http_url"),
      text(b, "project.git_ssh_url"),
      text(b, "project.web_url"),
      text(b, "repository.homepage"),
    ),
    pr_number: int(b, "object_attributes.iid", "merge_request.iid"),
    sha: text(b, "object_attributes.sha", "object_attributes.last_commit.id", "checkout_sha") ?? null,
  };
}
