/**
 * Where an API client may put a run: its `worktree_path` and `protocol_root` stay inside the
 * project's checkout, a linked worktree of that checkout, or the data dir's worktrees folder (where
 * planning puts protocol worktrees). A request can then never make the server write a protocol
 * folder, or run steps, anywhere else on the machine.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { EffectiveConfig } from "../config/load-config.js";
import { GitError, git } from "../git/git-command.js";
import { worktreesFolder } from "../git/worktrees.js";
import { projectWorkspace } from "../services/project-service.js";
import { InvalidInputError } from "../shared/errors.js";
import { isInside } from "../shared/paths.js";
import type { Project } from "../store/types.js";

/** The checkout's linked worktrees (the checkout itself included); none when it is not a repository. */
async function worktreesOf(checkout: string): Promise<string[]> {
  try {
    const listing = await git(checkout, ["worktree", "list", "--porcelain"]);
    return [...listing.matchAll(/^worktree (.+)$/gm)].map((m) => m[1]!);
  } catch (err) {
    if (err instanceof GitError) return [];
    throw err;
  }
}

export interface RunPlaces {
  worktreePath?: string;
  protocolRoot?: string;
}

/** The places asked for, resolved; a 400 naming the field for one outside the project's roots. */
export async function checkRunPlaces(
  project: Project,
  asked: { worktree_path?: string | null | undefined; protocol_root?: string | null | undefined },
  configFor: (repoDir: string) => EffectiveConfig,
): Promise<RunPlaces> {
  if (!asked.worktree_path && !asked.protocol_root) return {};
  const checkout = projectWorkspace(project);
  if (!checkout)
    throw new InvalidInputError(
      `${asked.worktree_path ? "worktree_path" : "protocol_root"}: project ${project.id} has no local checkout for it to be in`,
    );
  const worktrees = worktreesFolder(configFor(checkout).dataDir);
  const roots = [checkout, ...(await worktreesOf(checkout)), worktrees];
  const place = (field: string, path: string) => {
    const abs = resolve(path);
    if (!roots.some((root) => isInside(root, abs)))
      throw new InvalidInputError(
        `${field}: ${abs} is outside project ${project.id}'s checkout (${checkout}), its worktrees and ${worktrees}`,
      );
    return abs;
  };
  const out: RunPlaces = {};
  if (asked.worktree_path) {
    out.worktreePath = place("worktree_path", asked.worktree_path);
    if (!existsSync(out.worktreePath))
      throw new InvalidInputError(`worktree_path: ${out.worktreePath} does not exist`);
  }
  if (asked.protocol_root) out.protocolRoot = place("protocol_root", asked.protocol_root);
  return out;
}
