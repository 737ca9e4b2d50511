/**
 * Step checkpoints on the protocol branch: everything a step changed is committed after it, and a
 * loop can put the worktree back to how it was before a step. The protocol folder (`.protocols/`,
 * the run's own records) is never rolled back.
 */
import { git } from "./git-command.js";

/** Commits every change (new files included); returns HEAD, unchanged when there was nothing to commit. */
export async function checkpoint(
  worktree: string,
  message: string,
): Promise<{ commit: string; changed: boolean }> {
  await git(worktree, ["add", "--all"]);
  const staged = (await git(worktree, ["diff", "--cached", "--name-only"])).trim();
  if (staged) await git(worktree, ["commit", "--quiet", "--no-verify", "-m", message], { identity: true });
  return { commit: (await git(worktree, ["rev-parse", "HEAD"])).trim(), changed: staged.length > 0 };
}

const OUTSIDE_PROTOCOLS = ["--", ".", ":(exclude).protocols"];

/**
 * Puts the files back to how they were at `commit`, keeping `.protocols/` and the branch history: the
 * restore itself becomes part of the next checkpoint instead of rewriting earlier ones.
 */
export async function restoreTo(worktree: string, commit: string): Promise<void> {
  await git(worktree, ["add", "--all"]);
  const added = (
    await git(worktree, ["diff", "--cached", "--name-only", "--diff-filter=A", commit, ...OUTSIDE_PROTOCOLS])
  )
    .split("\n")
    .filter(Boolean);
  if (added.length > 0) await git(worktree, ["rm", "--quiet", "-r", "--force", "--", ...added]);
  await git(worktree, ["checkout", commit, ...OUTSIDE_PROTOCOLS]);
}

export interface StepDiff {
  files: string[];
  patch: string;
}

/** What changed between two commits (or up to the working tree), `.protocols/` left out. */
export async function diffOf(worktree: string, from: string, to?: string): Promise<StepDiff> {
  const range = to ? [from, to] : [from];
  // up to the working tree: new files count too (marked intent-to-add; nothing is staged)
  if (!to) await git(worktree, ["add", "--all", "--intent-to-add"]);
  const files = (await git(worktree, ["diff", "--name-only", ...range, ...OUTSIDE_PROTOCOLS]))
    .split("\n")
    .filter(Boolean);
  const patch = await git(worktree, ["diff", ...range, ...OUTSIDE_PROTOCOLS]);
  return { files, patch };
}
