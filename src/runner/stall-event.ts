/**
 * The `step_stalled` event: one engine call of a step gave no output for its idle limit and was
 * killed. Recorded beside the call's `engine_retry` or `engine_error`, which say what followed.
 */
import type { EngineFailure } from "../engines/engine-port.js";
import { EVENT } from "../store/event-types.js";
import type { StepRun } from "../store/types.js";
import { eventBase, type RunScope } from "./run-scope.js";

export interface EndedCall {
  phase: "exec" | "qa";
  engineId: string;
  model: string | null;
  /** The call's number within its phase of this attempt, engine retries included (1-based). */
  call: number;
  idleTimeoutMs: number | undefined;
  error: EngineFailure | undefined;
}

/** Records `step_stalled` when the call failed for its silence; nothing for any other outcome. */
export async function recordStall(scope: RunScope, step: StepRun, c: EndedCall): Promise<void> {
  const { error } = c;
  if (error?.kind !== "stalled") return;
  await scope.store.appendEvent({
    ...eventBase(scope, step),
    eventType: EVENT.stepStalled,
    message: `Step ${step.stepName} stalled: ${error.message}`,
    metadata: {
      phase: c.phase,
      engine_id: c.engineId,
      model: c.model,
      attempt: Number(step.runtimeState.attempts ?? 1),
      call: c.call,
      idle_ms: error.stall?.idleMs ?? null,
      idle_timeout_ms: c.idleTimeoutMs ?? null,
      last_output: error.stall?.lastOutput ?? null,
      retryable: error.retryable,
    },
  });
}
