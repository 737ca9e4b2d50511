/**
 * What a step changed, from its checkpoints: from where it starts (the checkpoint of the step before
 * it, or the run's start) to its latest checkpoint, or to the working tree while it runs. Without a
 * step: the whole run, from its start to the working tree. `.protocols/` is left out and the
 * worktree's index is never touched. `tgz diff` and the API's `GET /steps/{id}/diff` show it.
 */
import { diffOf } from "../git/checkpoints.js";
import { protocolWorktreeOf, requireWorktree } from "../git/run-worktree.js";
import { stepBaseCommit } from "../runner/step-checkpoints.js";
import { InvalidInputError, TasksGodzillaError } from "../shared/errors.js";
import type { ProtocolRun, StepRun, StoreOps } from "../store/types.js";

/** Steps whose latest attempt has not reached its checkpoint yet: their change is in the working tree. */
const UNDER_WAY = new Set<string>(["running", "needs_qa"]);

export interface RunDiff {
  /** The commit the diff starts from. */
  from: string;
  /** The checkpoint it ends at; null: the working tree as it is now. */
  to: string | null;
  /** Changed files (outside `.protocols/`). */
  files: string[];
  /** Unified diff text; empty when nothing changed. */
  patch: string;
}

/** A run without a worktree of its own has no checkpoints to diff. */
export class NoCheckpointsError extends TasksGodzillaError {
  readonly code = "no_checkpoints";
  constructor(runId: number) {
    super(
      `run ${runId} works in a checkout of yours, not a protocol worktree, and has no checkpoints (plan it with \`tgz plan\` to get a branch of its own)`,
    );
  }
}

/** The diff of `step` of `run` (null: the whole run); WorktreeGoneError when its worktree was pruned. */
export async function runDiff(
  store: Pick<StoreOps, "listStepRuns">,
  run: ProtocolRun,
  step: StepRun | null,
  dataDir: string,
): Promise<RunDiff> {
  if (step && step.protocolRunId !== run.id)
    throw new InvalidInputError(`step ${step.id} is not a step of run ${run.id}`);
  const worktree = protocolWorktreeOf(run, dataDir);
  if (!worktree) throw new NoCheckpointsError(run.id);
  requireWorktree(run);
  let from: string | null = worktree.baseCommit;
  let to: string | null = null;
  if (step) {
    const steps = await store.listStepRuns(run.id);
    from = stepBaseCommit({ run, config: { dataDir } }, steps, step);
    const saved = step.runtimeState.checkpoint;
    to = typeof saved === "string" && !UNDER_WAY.has(step.status) ? saved : null;
  }
  if (!from) throw new InvalidInputError(`run ${run.id} has no recorded start commit`);
  const diff = await diffOf(worktree.path, from, to ?? undefined);
  return { from, to, files: diff.files, patch: diff.patch };
}
