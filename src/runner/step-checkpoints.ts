/**
 * Checkpoints of runs that work in their own protocol worktree (`protocolWorktreeOf`): the commit a
 * step starts from, a commit after each step (message naming protocol, step and outcome), and the
 * restore a loop does before going back. Runs in a checkout of the user's get none: the user's
 * branches are never committed to.
 */
import type { EffectiveConfig } from "../config/load-config.js";
import { checkpoint, restoreTo } from "../git/checkpoints.js";
import { protocolWorktreeOf } from "../git/run-worktree.js";
import type { Json, ProtocolRun, StepRun } from "../store/types.js";
import type { RunContext } from "./run-context.js";

type RunPlace = {
  run: Pick<ProtocolRun, "worktreePath" | "templateConfig">;
  config: Pick<EffectiveConfig, "dataDir">;
};

export function checkpointsEnabled(ctx: RunPlace): boolean {
  return protocolWorktreeOf(ctx.run, ctx.config.dataDir) !== null;
}

/**
 * Where `step` starts from, the same for every attempt: the checkpoint of the nearest step before it
 * in the protocol's order that has one, else the commit the run's branch started from. `steps` are
 * the run's step rows as stored now.
 */
export function stepBaseCommit(ctx: RunPlace, steps: readonly StepRun[], step: StepRun): string | null {
  if (!checkpointsEnabled(ctx)) return null;
  const before = steps
    .filter((s) => s.stepIndex < step.stepIndex && typeof s.runtimeState.checkpoint === "string")
    .sort((a, b) => b.stepIndex - a.stepIndex)[0];
  if (before) return before.runtimeState.checkpoint as string;
  const start = ctx.run.templateConfig.base_commit;
  return typeof start === "string" ? start : null;
}

async function commitStep(ctx: RunContext, step: StepRun, outcome: string) {
  if (!checkpointsEnabled(ctx)) return null;
  return checkpoint(ctx.roots.workspace, `${ctx.run.protocolName}: ${step.stepName} (${outcome})`);
}

/** The checkpoint after QA: `NNNN-name: <step> (qa <verdict>)`. */
export function checkpointStep(
  ctx: RunContext,
  step: StepRun,
  verdict: string,
): Promise<{ commit: string; changed: boolean } | null> {
  return commitStep(ctx, step, `qa ${verdict}`);
}

/** The checkpoint after a failed engine call, so what the attempt left behind is on record too. */
export function checkpointExecFailure(
  ctx: RunContext,
  step: StepRun,
  errorKind: string,
): Promise<{ commit: string; changed: boolean } | null> {
  return commitStep(ctx, step, `exec failed: ${errorKind}`);
}

/**
 * Puts the worktree back to the target step's base commit, when configured to, as a commit of its
 * own (`NNNN-name: restore before <step>`); says what it did.
 */
export async function restoreForLoop(ctx: RunContext, target: StepRun): Promise<Json> {
  const commit = typeof target.runtimeState.base_commit === "string" ? target.runtimeState.base_commit : null;
  if (!checkpointsEnabled(ctx))
    return { action: "none", reason: "the run works in a checkout of the user's, not a protocol worktree" };
  if (ctx.config.loopRestore === "keep") return { action: "kept", reason: "loop_restore is keep" };
  if (!commit) return { action: "kept", reason: `no checkpoint recorded before ${target.stepName}` };
  const restored = await restoreTo(
    ctx.roots.workspace,
    commit,
    `${ctx.run.protocolName}: restore before ${target.stepName}`,
  );
  return { action: "restored", commit, restore_commit: restored.commit, changed: restored.changed };
}
