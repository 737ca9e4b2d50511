/**
 * Protocol worktrees: each run works on its own branch in its own folder outside the main checkout,
 * which is never touched (even when dirty). Listing reports size and state; pruning is refused when
 * it would lose work unless forced, and never touches an active run.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { TasksGodzillaError } from "../shared/errors.js";
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
  /** Commits on the branch not in the base branch. */
  unmergedCommits: number;
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

async function unmerged(path: string, base: string): Promise<number> {
  try {
    return Number((await git(path, ["rev-list", "--count", `${base}..HEAD`])).trim());
  } catch {
    return 0;
  }
}

/** The repository's worktrees other than the main checkout. */
export async function listWorktrees(repo: string, base: string): Promise<WorktreeInfo[]> {
  const root = await repoRoot(repo);
  const blocks = (await git(root, ["worktree", "list", "--porcelain"])).split("\n\n").filter(Boolean);
  const out: WorktreeInfo[] = [];
  for (const block of blocks) {
    const path = /^worktree (.+)$/m.exec(block)?.[1];
    if (!path || path === root || !existsSync(path)) continue;
    out.push({
      path,
      branch: /^branch refs\/heads\/(.+)$/m.exec(block)?.[1] ?? null,
      head: /^HEAD (\w+)$/m.exec(block)?.[1] ?? "",
      sizeBytes: sizeOf(path),
      ageMs: Date.now() - statSync(path).mtimeMs,
      dirty: await isDirty(path),
      unmergedCommits: await unmerged(path, base),
    });
  }
  return out;
}

export async function pruneWorktree(
  repo: string,
  info: WorktreeInfo,
  opts: { force: boolean; active: boolean },
): Promise<void> {
  if (opts.active) throw new WorktreePruneRefusedError(info.path, "its run is active");
  if (!opts.force && info.dirty)
    throw new WorktreePruneRefusedError(info.path, "it has uncommitted work (use --force to discard it)");
  if (!opts.force && info.unmergedCommits > 0) {
    throw new WorktreePruneRefusedError(
      info.path,
      `branch ${info.branch} has ${info.unmergedCommits} unmerged commit(s) (use --force)`,
    );
  }
  const root = await repoRoot(repo);
  await git(root, ["worktree", "remove", ...(opts.force ? ["--force"] : []), info.path]);
  if (info.branch) await git(root, ["branch", opts.force ? "-D" : "-d", info.branch]);
}
