/**
 * Step checkpoints on the protocol branch: everything a step changed is committed after it, and a
 * loop can put the worktree back to how it was before a step. The protocol folder (`.protocols/`,
 * the run's own records) is never rolled back.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { git, headCommit } from "./git-command.js";

const PROTOCOLS = ".protocols";
const OUTSIDE_PROTOCOLS = ["--", ".", `:(exclude)${PROTOCOLS}`];

/** Commits every change (new files included); returns HEAD, unchanged when there was nothing to commit. */
export async function checkpoint(
  worktree: string,
  message: string,
): Promise<{ commit: string; changed: boolean }> {
  await git(worktree, ["add", "--all"]);
  const staged = (await git(worktree, ["diff", "--cached", "--name-only"])).trim();
  if (staged) await git(worktree, ["commit", "--quiet", "--no-verify", "-m", message], { identity: true });
  return { commit: await headCommit(worktree), changed: staged.length > 0 };
}

/**
 * Runs `fn` with a scratch copy of the worktree's index (`GIT_INDEX_FILE`), so reading the working
 * tree as a tree object never stages anything in the worktree's own index.
 */
async function withScratchIndex<T>(
  worktree: string,
  fn: (env: Record<string, string>) => Promise<T>,
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "tgz-index-"));
  const scratch = join(dir, "index");
  const own = resolve(worktree, (await git(worktree, ["rev-parse", "--git-path", "index"])).trim());
  // starting from the real index keeps its stat cache: only changed files are hashed again
  if (existsSync(own)) copyFileSync(own, scratch);
  try {
    return await fn({ GIT_INDEX_FILE: scratch });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The working tree as a tree object: new files included, ignored ones not. */
async function workingTree(worktree: string): Promise<string> {
  return withScratchIndex(worktree, async (env) => {
    await git(worktree, ["add", "--all"], { env });
    return (await git(worktree, ["write-tree"], { env })).trim();
  });
}

/**
 * Puts every file outside `.protocols/` back exactly as it was at `commit` (contents, modes, deleted
 * and renamed files; files the commit does not have are removed, ignored files are left alone) and
 * records that as a commit on top of HEAD: history is never rewritten, and HEAD afterwards is a
 * commit whose tree is the restored state, so whatever runs next starts from a clean checkpoint.
 */
export async function restoreTo(
  worktree: string,
  commit: string,
  message: string,
): Promise<{ commit: string; changed: boolean }> {
  const tree = await withScratchIndex(worktree, async (env) => {
    await git(worktree, ["read-tree", commit], { env });
    await git(worktree, ["rm", "-r", "-q", "-f", "--cached", "--ignore-unmatch", "--", PROTOCOLS], { env });
    if (existsSync(join(worktree, PROTOCOLS)))
      await git(worktree, ["add", "--all", "--", PROTOCOLS], { env });
    return (await git(worktree, ["write-tree"], { env })).trim();
  });
  const head = await headCommit(worktree);
  const changed = tree !== (await git(worktree, ["rev-parse", `${head}^{tree}`])).trim();
  const target = changed
    ? (await git(worktree, ["commit-tree", tree, "-p", head, "-m", message], { identity: true })).trim()
    : head;
  // everything not ignored is tracked first, so the reset also removes files the target lacks
  await git(worktree, ["add", "--all"]);
  await git(worktree, ["reset", "--quiet", "--hard", target]);
  return { commit: target, changed };
}

export interface StepDiff {
  files: string[];
  patch: string;
}

/**
 * What changed between two commits, or from a commit to the working tree as it is now (new files
 * included; the worktree's index is left as it was). `.protocols/` is left out.
 */
export async function diffOf(worktree: string, from: string, to?: string): Promise<StepDiff> {
  const range = [from, to ?? (await workingTree(worktree))];
  const files = (await git(worktree, ["diff", "--no-renames", "--name-only", ...range, ...OUTSIDE_PROTOCOLS]))
    .split("\n")
    .filter(Boolean);
  const patch = await git(worktree, ["diff", ...range, ...OUTSIDE_PROTOCOLS]);
  return { files, patch };
}
