/** Working on a scratch copy of a worktree's index, so reading or building trees never stages anything. */
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { git, NotAGitRepositoryError } from "./git-command.js";

/**
 * Runs `fn` with `GIT_INDEX_FILE` pointing at a copy of the worktree's index (starting from the real
 * index keeps its stat cache: only changed files are hashed again). Throws NotAGitRepositoryError
 * when `worktree` is not inside a repository.
 */
export async function withScratchIndex<T>(
  worktree: string,
  fn: (env: Record<string, string>) => Promise<T>,
): Promise<T> {
  let own: string;
  try {
    own = resolve(worktree, (await git(worktree, ["rev-parse", "--git-path", "index"])).trim());
  } catch {
    throw new NotAGitRepositoryError(worktree);
  }
  const dir = mkdtempSync(join(tmpdir(), "tgz-index-"));
  const scratch = join(dir, "index");
  if (existsSync(own)) copyFileSync(own, scratch);
  try {
    return await fn({ GIT_INDEX_FILE: scratch });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
