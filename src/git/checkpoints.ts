/**
 * Step checkpoints on the protocol branch: everything a step changed is committed after it, and a
 * loop can put the worktree back to how it was before a step. The protocol folder (`.protocols/`,
 * the run's own records) is never rolled back.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { git, headCommit } from "./git-command.js";
import { PROTOCOLS_DIR } from "./protocol-names.js";
import { withScratchIndex } from "./scratch-index.js";
import { OUTSIDE_PROTOCOLS, snapshotTree } from "./worktree-changes.js";

/**
 * Commits every change (new files included); returns HEAD, unchanged when there was nothing to
 * commit. An internal commit: unsigned and without hooks, whatever the repository's config says.
 */
export async function checkpoint(
  worktree: string,
  message: string,
): Promise<{ commit: string; changed: boolean }> {
  await git(worktree, ["add", "--all"]);
  const staged = (await git(worktree, ["diff", "--cached", "--name-only"])).trim();
  if (staged)
    await git(worktree, ["commit", "--quiet", "--no-verify", "-m", message], { internalCommit: true });
  return { commit: await headCommit(worktree), changed: staged.length > 0 };
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
    await git(worktree, ["rm", "-r", "-q", "-f", "--cached", "--ignore-unmatch", "--", PROTOCOLS_DIR], {
      env,
    });
    if (existsSync(join(worktree, PROTOCOLS_DIR)))
      await git(worktree, ["add", "--all", "--", PROTOCOLS_DIR], { env });
    return (await git(worktree, ["write-tree"], { env })).trim();
  });
  const head = await headCommit(worktree);
  const changed = tree !== (await git(worktree, ["rev-parse", `${head}^{tree}`])).trim();
  const target = changed
    ? (await git(worktree, ["commit-tree", tree, "-p", head, "-m", message], { internalCommit: true })).trim()
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
  const range = [from, to ?? (await snapshotTree(worktree))];
  const files = (await git(worktree, ["diff", "--no-renames", "--name-only", ...range, ...OUTSIDE_PROTOCOLS]))
    .split("\n")
    .filter(Boolean);
  const patch = await git(worktree, ["diff", ...range, ...OUTSIDE_PROTOCOLS]);
  return { files, patch };
}
