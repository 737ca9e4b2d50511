/** What a step changed in its worktree, as git sees it (the protocol folder itself excluded). */
import { git, NotAGitRepositoryError } from "./git-command.js";

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
