/**
 * Which runs work in a protocol worktree of their own: the one rule behind checkpoints, `tgz diff`,
 * `tgz pr` and `tgz worktree list|prune`. A run has one when `tgz plan` made it (planning records the
 * branch and the commit it started from) and its folder is under the data dir's worktrees folder.
 * Every other run works in a checkout of the user's (the main checkout, a linked worktree of their
 * own, a project known only by its git URL): never committed to, never listed, never pruned.
 */
import { existsSync } from "node:fs";
import { TasksGodzillaError } from "../shared/errors.js";
import { isInside } from "../shared/paths.js";
import type { ProtocolRun } from "../store/types.js";
import { worktreesFolder } from "./worktrees.js";

export interface RunWorktree {
  path: string;
  branch: string;
  /** The commit the branch started from. */
  baseCommit: string;
}

type RunPlace = Pick<ProtocolRun, "worktreePath" | "templateConfig">;

/** The run's protocol worktree, or null when the run works in a checkout of the user's. */
export function protocolWorktreeOf(run: RunPlace, dataDir: string): RunWorktree | null {
  const { branch, base_commit: baseCommit } = run.templateConfig;
  if (!run.worktreePath || typeof branch !== "string" || typeof baseCommit !== "string") return null;
  if (!isInside(worktreesFolder(dataDir), run.worktreePath)) return null;
  return { path: run.worktreePath, branch, baseCommit };
}

/** The folder a run works in was removed (its worktree pruned): nothing can run, diff or push there. */
export class WorktreeGoneError extends TasksGodzillaError {
  readonly code = "worktree_gone";
  constructor(runId: number, path: string) {
    super(
      `the worktree of run ${runId} (${path}) no longer exists (was it pruned with \`tgz worktree prune\`?); plan the task again for a new one`,
    );
  }
}

/** Throws WorktreeGoneError when the run has a worktree folder and it no longer exists. */
export function requireWorktree(run: Pick<ProtocolRun, "id" | "worktreePath">): void {
  if (run.worktreePath && !existsSync(run.worktreePath))
    throw new WorktreeGoneError(run.id, run.worktreePath);
}
