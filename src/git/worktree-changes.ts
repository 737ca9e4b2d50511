/** What a step changed in its worktree, as git sees it (the protocol folder itself excluded). */
import { git, NotAGitRepositoryError } from "./git-command.js";
import { PROTOCOLS_DIR } from "./protocol-names.js";
import { withScratchIndex } from "./scratch-index.js";

/** Pathspecs of everything but the protocol folder. */
export const OUTSIDE_PROTOCOLS = ["--", ".", `:(exclude)${PROTOCOLS_DIR}`];

/** `git status --porcelain` lines outside `.protocols/`. */
export async function changedPaths(workspace: string): Promise<string[]> {
  let stdout: string;
  try {
    stdout = await git(workspace, ["status", "--porcelain", "--untracked-files=all"]);
  } catch {
    throw new NotAGitRepositoryError(workspace);
  }
  return stdout
    .split("\n")
    .filter((l) => l.trim().length > 0)
    .filter((l) => !l.slice(3).startsWith(`${PROTOCOLS_DIR}/`));
}

/**
 * The worktree's files as a git tree object, written through a scratch copy of the index so the
 * user's index is never touched (its stat cache keeps this fast). Ignored files and `.protocols/`
 * are left out. Two snapshots differ exactly when a file outside them changed in between.
 */
export function snapshotTree(workspace: string): Promise<string> {
  return withScratchIndex(workspace, async (env) => {
    await git(workspace, ["add", "-A", ...OUTSIDE_PROTOCOLS], { env });
    return (await git(workspace, ["write-tree"], { env })).trim();
  });
}

/** Paths that differ between two snapshots, as `<status>\t<path>` lines. */
export async function changedBetween(workspace: string, before: string, after: string): Promise<string[]> {
  if (before === after) return [];
  const out = await git(workspace, ["diff-tree", "-r", "--no-renames", "--name-status", before, after]);
  return out.split("\n").filter((l) => l.trim().length > 0);
}
