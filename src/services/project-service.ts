/** Projects are repositories; one is registered the first time a run names it. */
import { execFileSync } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { basename, isAbsolute } from "node:path";
import { InvalidInputError } from "../shared/errors.js";
import type { Project, StoreOps } from "../store/types.js";

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

export async function ensureProject(store: StoreOps, repoDir: string): Promise<Project> {
  let path: string;
  try {
    path = realpathSync(repoDir);
  } catch {
    throw new InvalidInputError(`repository folder ${repoDir} does not exist`);
  }
  const existing = await store.findProjectByPath(path);
  if (existing) return existing;
  return store.createProject({
    name: basename(path),
    gitUrl: path,
    localPath: path,
    baseBranch: currentBranch(path),
  });
}

/**
 * The project's local checkout: its local path, or its git URL when that is a folder on this machine.
 * Null for a project known only by a remote URL (nothing here clones it).
 */
export function projectWorkspace(project: Project): string | null {
  if (project.localPath) return project.localPath;
  return isAbsolute(project.gitUrl) && existsSync(project.gitUrl) ? project.gitUrl : null;
}
