/**
 * Protocol worktrees: each run works on its own branch in its own folder outside the main checkout,
 * which is never touched (even when dirty). Listing reports size and state; pruning is refused when
 * it would lose work unless forced, and never touches an active run.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { projectKey } from "../config/engine-settings.js";
import { TasksGodzillaError } from "../shared/errors.js";
import { isInside, realPathLoose } from "../shared/paths.js";
import { BaseBranchMissingError, baseRefs, branchExists, git, headCommit, repoRoot } from "./git-command.js";

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
  /** What the branch started from: `refs/heads/<base>` or `refs/remotes/origin/<base>`. */
  baseRef: string;
}

/** The data dir's folder of protocol worktrees, one subfolder per repository. */
export function worktreesFolder(dataDir: string): string {
  return join(dataDir, "worktrees");
}

/** Where `tgz plan` puts a repository's protocol worktrees: outside the checkout, under the data dir. */
export function protocolWorktreesRoot(repo: string, dataDir: string): string {
  return join(worktreesFolder(dataDir), projectKey(repo));
}

/**
 * The ref a protocol branch starts from: the local base branch when there is one (the user's own
 * commits on it are what they plan against), else the remote-tracking `origin/<base>` (a base that
 * exists only on the remote, e.g. in a fresh clone). Throws BaseBranchMissingError when neither exists.
 */
export async function baseStart(repo: string, base: string): Promise<string> {
  const [start] = await baseRefs(repo, base);
  if (!start) throw new BaseBranchMissingError(repo, base);
  return start;
}

export async function createProtocolWorktree(opts: {
  repo: string;
  base: string;
  name: string;
  worktreesRoot: string;
}): Promise<ProtocolWorktree> {
  const repo = await repoRoot(opts.repo);
  const start = await baseStart(repo, opts.base);
  const path = join(opts.worktreesRoot, opts.name);
  mkdirSync(dirname(path), { recursive: true });
  // no upstream: the branch is pushed under its own name by `tgz pr`, never into the base
  await git(repo, ["worktree", "add", "--no-track", "-b", opts.name, path, start]);
  return { path, branch: opts.name, baseCommit: await headCommit(path), baseRef: start };
}

export interface WorktreeInfo {
  path: string;
  branch: string | null;
  head: string;
  sizeBytes: number;
  ageMs: number;
  dirty: boolean;
  /**
   * Commits on the branch in neither the local base branch nor `origin/<base>`; null when git cannot
   * tell (no such base): pruning is then unsafe.
   */
  unmergedCommits: number | null;
  /**
   * The base already has everything the branch changed, though not its commits: merging the branch
   * into the base (local or `origin/`) would change nothing, as after a squash or rebase merge.
   */
  mergedByContent: boolean;
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

/** Whether merging HEAD into `ref` would leave `ref`'s tree as it is (a conflict means it would not). */
async function mergeChangesNothing(path: string, ref: string): Promise<boolean> {
  try {
    const merged = (await git(path, ["merge-tree", "--write-tree", ref, "HEAD"])).split("\n")[0]!.trim();
    return merged === (await git(path, ["rev-parse", `${ref}^{tree}`])).trim();
  } catch {
    return false;
  }
}

async function mergeState(
  path: string,
  base: string,
): Promise<Pick<WorktreeInfo, "unmergedCommits" | "mergedByContent">> {
  const refs = await baseRefs(path, base);
  if (refs.length === 0) return { unmergedCommits: null, mergedByContent: false };
  // merged into either base counts: a merge on the remote before the local base was pulled
  const count = Number((await git(path, ["rev-list", "--count", "HEAD", "--not", ...refs])).trim());
  if (count === 0) return { unmergedCommits: 0, mergedByContent: false };
  for (const ref of refs)
    if (await mergeChangesNothing(path, ref)) return { unmergedCommits: count, mergedByContent: true };
  return { unmergedCommits: count, mergedByContent: false };
}

/**
 * The protocol worktrees of a repository: linked worktrees under `root` (where `tgz plan` puts them)
 * or where one of `runs` (protocol runs, see `protocolWorktreeOf`) works. Any other worktree is the
 * user's own: never listed, so never pruned. Merged-ness is judged against the run's base branch,
 * else `defaultBase`.
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
      ...(await mergeState(path, runBase ?? scope.defaultBase)),
    });
  }
  return out;
}

/** What pruning needs to know of the run that works in a worktree. */
export interface PruneRun {
  id: number;
  status: string;
  /** A live runner or planner holds the run's lease. */
  leased: boolean;
  /** Its PR/MR was merged (a `pr_merged` / `mr_merged` event). */
  prMerged: boolean;
}

/**
 * Removes a protocol worktree and its branch. Refused for a running run and for a run being planned;
 * unless forced, for a run left `planning` by a planner that died, a paused run (it can still be
 * resumed), uncommitted work, and a branch that is not merged: merged means no commit outside the
 * base branch (local or `origin/<base>`), or the base has all its changes (a squash or rebase merge),
 * or its PR was merged.
 */
export async function pruneWorktree(
  repo: string,
  info: WorktreeInfo,
  opts: { force: boolean; run: PruneRun | null },
): Promise<void> {
  const { run } = opts;
  if (run?.status === "running") throw new WorktreePruneRefusedError(info.path, "its run is running");
  if (run?.status === "planning" && run.leased)
    throw new WorktreePruneRefusedError(info.path, "its run is being planned");
  if (!opts.force) {
    if (run?.status === "planning")
      throw new WorktreePruneRefusedError(
        info.path,
        `its run is planning but no planner holds it (use --force, or plan it again with \`tgz plan --run-id ${run.id}\`)`,
      );
    if (run?.status === "paused")
      throw new WorktreePruneRefusedError(info.path, "its run is paused and can be resumed (use --force)");
    if (info.dirty)
      throw new WorktreePruneRefusedError(info.path, "it has uncommitted work (use --force to discard it)");
    const merged = run?.prMerged || info.mergedByContent || info.unmergedCommits === 0;
    if (!merged && info.unmergedCommits === null)
      throw new WorktreePruneRefusedError(
        info.path,
        `cannot tell whether branch ${info.branch} is merged into the base branch (use --force)`,
      );
    if (!merged)
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
