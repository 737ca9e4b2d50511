/** Projects are repositories; one is registered the first time a run names it. */
import { execFileSync } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { basename, isAbsolute } from "node:path";
import { InvalidInputError } from "../shared/errors.js";
import type { Project, Store } from "../store/types.js";

function currentBranch(repoDir: string): string {
  try {
    return (
      execFileSync("git", ["symbolic-ref", "--short", "HEAD"], {
        cwd: repoDir,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      }).trim() || "main"
    );
  } catch {
    return "main";
  }
}

export async function ensureProject(store: Store, repoDir: string): Promise<Project> {
  let path: string;
  try {
    path = realpathSync(repoDir);
  } catch {
    throw new InvalidInputError(`repository folder ${repoDir} does not exist`);
  }
  const found = await store.findProjectByPath(path);
  if (found) return found;
  const baseBranch = currentBranch(path);
  // looked up again under the write lock: two first runs of one repository register it once
  return store.transaction(
    async (tx) =>
      (await tx.findProjectByPath(path)) ??
      tx.createProject({ name: basename(path), gitUrl: path, localPath: path, baseBranch }),
  );
}

/**
 * The project's local checkout: its local path, or its git URL when that is a folder on this machine.
 * Null for a project known only by a remote URL (nothing here clones it).
 */
export function projectWorkspace(project: Project): string | null {
  if (project.localPath) return project.localPath;
  return isAbsolute(project.gitUrl) && existsSync(project.gitUrl) ? project.gitUrl : null;
}
