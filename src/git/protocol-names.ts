/** Protocol numbers and names: `NNNN-<short-name>`, which is also the branch and worktree name. */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { git } from "./git-command.js";

/** Lowercase `[a-z0-9-]`, no leading/trailing dash, at most `max` characters; `fallback` when nothing is left. */
export function slugify(text: string, max = 48, fallback = "task"): string {
  const slug = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, max)
    .replace(/-+$/g, "");
  return slug || fallback;
}

/** A git-safe branch slug, never empty. */
export function sanitizeBranchName(short: string): string {
  return slugify(short);
}

export function protocolName(n: number, short: string): string {
  return `${String(n).padStart(4, "0")}-${sanitizeBranchName(short)}`;
}

function numberOf(name: string): number {
  const m = /^(\d{4})-/.exec(name);
  return m ? Number(m[1]) : 0;
}

/**
 * One past the highest number used by a protocol folder, a local or remote-tracking branch (a
 * teammate's pushed `0007-x` counts too), or a known run name.
 */
export async function nextProtocolNumber(repo: string, knownNames: string[]): Promise<number> {
  const names = [...knownNames];
  const folder = join(repo, ".protocols");
  if (existsSync(folder)) names.push(...readdirSync(folder));
  // the last path segment: refs/heads/0005-x and refs/remotes/origin/0005-x both name 0005-x
  names.push(
    ...(
      await git(repo, ["for-each-ref", "--format=%(refname:lstrip=-1)", "refs/heads", "refs/remotes"])
    ).split("\n"),
  );
  return Math.max(0, ...names.map(numberOf)) + 1;
}

/** The branch a planned run works on (recorded at planning), else its protocol name. */
export function runBranch(run: { protocolName: string; templateConfig: Record<string, unknown> }): string {
  const branch = run.templateConfig.branch;
  return typeof branch === "string" ? branch : run.protocolName;
}
