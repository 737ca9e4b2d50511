/** What a step changed in its worktree, as git sees it (the protocol folder itself excluded). */
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { git, NotAGitRepositoryError } from "./git-command.js";

const NOT_PROTOCOLS = ":(exclude).protocols";

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
    .filter((l) => !l.slice(3).startsWith(".protocols/"));
}

/**
 * The worktree's files as a git tree object, written through a scratch copy of the index so the
 * user's index is never touched (its stat cache keeps this fast). Ignored files and `.protocols/`
 * are left out. Two snapshots differ exactly when a file outside them changed in between.
 */
export async function snapshotTree(workspace: string): Promise<string> {
  let indexPath: string;
  try {
    indexPath = (await git(workspace, ["rev-parse", "--git-path", "index"])).trim();
  } catch {
    throw new NotAGitRepositoryError(workspace);
  }
  const scratch = mkdtempSync(join(tmpdir(), "tgz-index-"));
  const env = { GIT_INDEX_FILE: join(scratch, "index") };
  try {
    const real = isAbsolute(indexPath) ? indexPath : join(workspace, indexPath);
    if (existsSync(real)) copyFileSync(real, env.GIT_INDEX_FILE);
    await git(workspace, ["add", "-A", "--", ".", NOT_PROTOCOLS], { env });
    return (await git(workspace, ["write-tree"], { env })).trim();
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Paths that differ between two snapshots, as `<status>\t<path>` lines. */
export async function changedBetween(workspace: string, before: string, after: string): Promise<string[]> {
  if (before === after) return [];
  const out = await git(workspace, ["diff-tree", "-r", "--no-renames", "--name-status", before, after]);
  return out.split("\n").filter((l) => l.trim().length > 0);
}
