/** What a step changed in its worktree, as git sees it (the protocol folder itself excluded). */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

export class NotAGitRepositoryError extends Error {}

/** `git status --porcelain` lines outside `.protocols/`. */
export async function changedPaths(workspace: string): Promise<string[]> {
  try {
    const { stdout } = await run("git", ["status", "--porcelain", "--untracked-files=all"], {
      cwd: workspace,
    });
    return stdout
      .split("\n")
      .filter((l) => l.trim().length > 0)
      .filter((l) => !l.slice(3).startsWith(".protocols/"));
  } catch (err) {
    throw new NotAGitRepositoryError(`${workspace} is not a git work tree: ${(err as Error).message}`);
  }
}
