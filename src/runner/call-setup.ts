/**
 * How a step's engine is called: its timeout and idle limit, its environment and where each call's
 * transcript goes.
 */
import { join } from "node:path";
import { fileSafeName } from "../shared/file-names.js";
import { TRANSCRIPTS_DIR } from "../shared/protocol-files.js";
import type { StepRun } from "../store/types.js";
import type { RunContext } from "./run-context.js";

/** How a call to a step's engine is made: shared by the exec call and the QA agent. */
export interface CallSetup {
  timeoutMs: number;
  /** Longest silence of a call before it is killed as stalled; undefined: no limit. */
  idleTimeoutMs: number | undefined;
  env: Record<string, string>;
  /** Transcript file of a call: phase, attempt number within the phase. */
  transcript: (phase: string, n: number) => string;
}

export function callSetup(ctx: RunContext, step: StepRun, attempt: number): CallSetup {
  const spec = ctx.steps.get(step.stepName)!.spec;
  return {
    // 0 means "not set", as in the original's specs
    timeoutMs: (spec.timeout_seconds || spec.exec_timeout_seconds || ctx.config.timeoutSeconds) * 1000,
    // unlike the timeout, 0 is a choice here: no idle limit for a step that is rightly silent
    idleTimeoutMs: (spec.idle_timeout_seconds ?? ctx.config.idleTimeoutSeconds) * 1000 || undefined,
    env: {
      TASKSGODZILLA_RUN_ID: String(ctx.run.id),
      TASKSGODZILLA_STEP_ID: step.stepName,
      TASKSGODZILLA_PROTOCOL_DIR: ctx.roots.protocolRoot,
    },
    transcript: (phase, n) =>
      join(
        ctx.roots.protocolRoot,
        TRANSCRIPTS_DIR,
        `${fileSafeName(step.stepName)}.${phase}.${attempt}${n > 1 ? `.${n}` : ""}.jsonl`,
      ),
  };
}
