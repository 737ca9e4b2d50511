/**
 * Checkpoints of runs that work in their own protocol worktree: the commit a step started from, a
 * commit after each step (message naming protocol, step and verdict), and the restore a loop does
 * before going back. Runs in a main checkout get none: the user's branch is never committed to.
 */
import { checkpoint, restoreTo } from "../git/checkpoints.js";
import { headCommit } from "../git/git-command.js";
import type { Json, StepRun } from "../store/types.js";
import type { RunContext } from "./run-context.js";

export function checkpointsEnabled(ctx: RunContext): boolean {
  return Boolean(ctx.run.worktreePath && ctx.run.worktreePath !== ctx.project.localPath);
}

/** HEAD before the step runs: where a loop back to this step restores the worktree to. */
export async function baseCommit(ctx: RunContext): Promise<string | null> {
  return checkpointsEnabled(ctx) ? headCommit(ctx.roots.workspace) : null;
}

export async function checkpointStep(
  ctx: RunContext,
  step: StepRun,
  verdict: string,
): Promise<{ commit: string; changed: boolean } | null> {
  if (!checkpointsEnabled(ctx)) return null;
  return checkpoint(ctx.roots.workspace, `${ctx.run.protocolName}: ${step.stepName} (qa ${verdict})`);
}

/** Puts the worktree back to the target step's base commit, when configured to; says what it did. */
export async function restoreForLoop(ctx: RunContext, target: StepRun): Promise<Json> {
  const commit = typeof target.runtimeState.base_commit === "string" ? target.runtimeState.base_commit : null;
  if (!checkpointsEnabled(ctx)) return { action: "none", reason: "the run works in the main checkout" };
  if (ctx.config.loopRestore === "keep") return { action: "kept", reason: "loop_restore is keep" };
  if (!commit) return { action: "kept", reason: `no checkpoint recorded before ${target.stepName}` };
  await restoreTo(ctx.roots.workspace, commit);
  return { action: "restored", commit };
}
