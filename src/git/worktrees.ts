/**
 * Protocol worktrees: each run works on its own branch in its own folder outside the main checkout,
 * which is never touched (even when dirty). Listing reports size and state; pruning is refused when
 * it would lose work unless forced, and never touches an active run.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { dataDir } from "../config/data-paths.js";
import { projectKey } from "../config/engine-settings.js";
import { TasksGodzillaError } from "../shared/errors.js";
import { isInside, realPathLoose } from "../shared/paths.js";
import { BaseBranchMissingError, branchExists, git, repoRoot } from "./git-command.js";

export class WorktreePruneRefusedError extends TasksGodzillaError {
  readonly code = "worktree_prune_refused";
  constructor(path: string, reason: string) {
    super(`refusing to prune ${path}: ${reason}`);
  }
}

export interface ProtocolWorktree {
  path: string;
  branch: string;
  baseCommit: string;
}

/** Where `tgz plan` puts a repository's protocol worktrees: outside the checkout, under the data dir. */
export function protocolWorktreesRoot(repo: string, env: NodeJS.ProcessEnv): string {
  return join(dataDir(env), "worktrees", projectKey(repo));
}

export async function createProtocolWorktree(opts: {
  repo: string;
  base: string;
  name: string;
  worktreesRoot: string;
}): Promise<ProtocolWorktree> {
  const repo = await repoRoot(opts.repo);
  if (!(await branchExists(repo, opts.base))) throw new BaseBranchMissingError(repo, opts.base);
  const path = join(opts.worktreesRoot, opts.name);
  mkdirSync(dirname(path), { recursive: true });
  await git(repo, ["worktree", "add", "-b", opts.name, path, opts.base]);
  return { path, branch: opts.name, baseCommit: (await git(path, ["rev-parse", "HEAD"])).trim() };
}

export interface WorktreeInfo {
  path: string;
  branch: string | null;
  head: string;
  sizeBytes: number;
  ageMs: number;
  dirty: boolean;
  /** Commits on the branch not in the base branch; null when git cannot tell (pruning is then unsafe). */
  unmergedCommits: number | null;
}

function sizeOf(path: string): number {
  const st = lstatSync(path);
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const entry of readdirSync(path)) {
    if (entry === ".git") continue;
    total += sizeOf(join(path, entry));
  }
  return total;
}

async function isDirty(path: string): Promise<boolean> {
  return (await git(path, ["status", "--porcelain", "--untracked-files=all"])).trim().length > 0;
}

async function unmerged(path: string, base: string): Promise<number | null> {
  try {
    return Number((await git(path, ["rev-list", "--count", `${base}..HEAD`])).trim());
  } catch {
    return null;
  }
}

/**
 * The protocol worktrees of a repository: linked worktrees under `root` (where `tgz plan` puts them)
 * or where one of `runs` works. Any other worktree is the user's own: never listed, so never pruned.
 * Unmerged commits are counted against the run's base branch, else `defaultBase`.
 */
export async function listProtocolWorktrees(
  repo: string,
  scope: { root: string; runs: { path: string; base: string }[]; defaultBase: string },
): Promise<WorktreeInfo[]> {
  const top = await repoRoot(repo);
  // a pruned run's worktree is gone: paths are compared loosely, never an error
  const baseOf = new Map(scope.runs.map((r) => [realPathLoose(r.path), r.base]));
  const blocks = (await git(top, ["worktree", "list", "--porcelain"])).split("\n\n").filter(Boolean);
  const out: WorktreeInfo[] = [];
  for (const block of blocks) {
    const path = /^worktree (.+)$/m.exec(block)?.[1];
    if (!path || path === top || !existsSync(path)) continue;
    const runBase = baseOf.get(realPathLoose(path));
    if (runBase === undefined && !isInside(scope.root, path)) continue;
    out.push({
      path,
      branch: /^branch refs\/heads\/(.+)$/m.exec(block)?.[1] ?? null,
      head: /^HEAD (\w+)$/m.exec(block)?.[1] ?? "",
      sizeBytes: sizeOf(path),
      ageMs: Date.now() - statSync(path).mtimeMs,
      dirty: await isDirty(path),
      unmergedCommits: await unmerged(path, runBase ?? scope.defaultBase),
    });
  }
  return out;
}

/** Run statuses whose worktree is in use: never pruned. */
const IN_USE = new Set(["planning", "running"]);

/**
 * Removes a protocol worktree and its branch. Refused for a run in use; unless forced, for a paused
 * run (it can still be resumed), uncommitted work, unmerged commits, or commits git cannot count.
 */
export async function pruneWorktree(
  repo: string,
  info: WorktreeInfo,
  opts: { force: boolean; runStatus: string | null },
): Promise<void> {
  if (opts.runStatus && IN_USE.has(opts.runStatus))
    throw new WorktreePruneRefusedError(info.path, `its run is ${opts.runStatus}`);
  if (!opts.force) {
    if (opts.runStatus === "paused")
      throw new WorktreePruneRefusedError(info.path, "its run is paused and can be resumed (use --force)");
    if (info.dirty)
      throw new WorktreePruneRefusedError(info.path, "it has uncommitted work (use --force to discard it)");
    if (info.unmergedCommits === null)
      throw new WorktreePruneRefusedError(
        info.path,
        `cannot tell whether branch ${info.branch} is merged into the base branch (use --force)`,
      );
    if (info.unmergedCommits > 0)
      throw new WorktreePruneRefusedError(
        info.path,
        `branch ${info.branch} has ${info.unmergedCommits} unmerged commit(s) (use --force)`,
      );
  }
  await removeWorktree(repo, info.path, info.branch, opts.force);
}

/**
 * Removes a worktree (also one whose folder is already gone) and its branch. Without `force` git
 * itself refuses a worktree with changes. Callers decide whether the branch may go: it is deleted
 * with -D because merged-ness is judged against the base branch, not the main checkout's HEAD.
 */
export async function removeWorktree(
  repo: string,
  path: string,
  branch: string | null,
  force: boolean,
): Promise<void> {
  const root = await repoRoot(repo);
  if (existsSync(path)) await git(root, ["worktree", "remove", ...(force ? ["--force"] : []), path]);
  await git(root, ["worktree", "prune"]);
  if (branch && (await branchExists(root, branch))) await git(root, ["branch", "-D", branch]);
}
