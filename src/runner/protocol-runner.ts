/**
 * The single runner path. Every step of every run, whatever its engine, goes through
 * resolve → budget → engine → outputs → QA → policies (execute-step.ts, qa-phase.ts,
 * step-outcomes.ts), and every decision becomes an event written in the same transaction as the
 * state change it causes. This file holds the run around the steps: who may run it, what is checked
 * before anything executes, which step is next, and when the run is done.
 */
import { readFileSync } from "node:fs";
import type { Engine, EngineSettings, PreflightResult } from "../engines/engine-port.js";
import { killOrphan, type ProcessIdentity } from "../engines/processes.js";
import { requireWorktree, WorktreeGoneError } from "../git/run-worktree.js";
import { errorMessage, infrastructureFailure, NotFoundError, TasksGodzillaError } from "../shared/errors.js";
import { EVENT } from "../store/event-types.js";
import { canMoveProtocol, canMoveStep, DONE_STEP_STATUSES } from "../store/status.js";
import type { ProtocolRun, StepRun, StepState } from "../store/types.js";
import { callSetup } from "./call-setup.js";
import { executeStep, failOnSpec, failUnavailable, resolveFor } from "./execute-step.js";
import { qaPhase } from "./qa-phase.js";
import { StepResolutionError } from "./resolve-step.js";
import { loadRunContext, type RunContext, type RunnerDeps } from "./run-context.js";
import { holdRun, leaseLost } from "./run-lease.js";
import { engineSettings, type RunScope, type StepOutcome, TOP_FRAME } from "./run-scope.js";
import { blockRun, handedOff, pauseIfRunning } from "./step-outcomes.js";
import { engineIdFor, validateRun } from "./validate-run.js";

export type { StepOutcome } from "./run-scope.js";

export interface RunOptions {
  /** Aborting pauses the run: the engine is killed and the step goes back to pending. */
  signal?: AbortSignal;
  /**
   * Continue a paused, blocked or failed run (failed steps are retried). Without it such a run is
   * left as it is, so a job queued before a pause or a block never overrides it.
   */
  resume?: boolean;
  /**
   * Run one step (the given one, or the first runnable) with its QA and policies, then pause the
   * run. `qaOnly`: run only the step's QA again, on the outputs it already has.
   */
  only?: { stepRunId?: number; qaOnly?: boolean };
}

/** Runs a step's runner died in the middle of before it fails instead of being run again. */
const DEFAULT_CRASH_RETRIES = 2;

const RESUMABLE = ["paused", "blocked", "failed"];

function triggerOnly(ctx: RunContext, step: Pick<StepRun, "stepName">): boolean {
  return ctx.steps.get(step.stepName)?.spec.trigger_only === true;
}

/** A step the run picks up by itself: pending, and for trigger-only steps, triggered. */
function runnable(ctx: RunContext, step: StepRun | StepState): boolean {
  const triggered = "triggered" in step ? step.triggered : step.runtimeState.triggered === true;
  return step.status === "pending" && (!triggerOnly(ctx, step) || triggered);
}

export class ProtocolRunner {
  private readonly preflights = new Map<string, Promise<PreflightResult>>();

  constructor(private readonly deps: RunnerDeps) {}

  /** Runs a protocol until it completes, blocks, pauses or is cancelled. Returns the final run row. */
  async run(runId: number, opts: RunOptions = {}): Promise<ProtocolRun> {
    const { store } = this.deps;
    const stored = await store.getProtocolRun(runId);
    // a run created from an invalid spec stays blocked with its pointers until the spec is fixed
    if (stored.templateConfig.spec_meta?.status === "invalid") return stored;
    if (stored.status === "completed" || stored.status === "cancelled") return stored;
    const resume = opts.resume === true;
    if (RESUMABLE.includes(stored.status) && !resume) return stored;

    const hold = await holdRun(store, runId, opts.signal);
    // from here on the run's work waits out database outages, and writes only while it holds the run
    const held = hold.store;
    const deps = { ...this.deps, store: held };
    try {
      // another runner may have moved the run on while this one waited for it
      const now = await held.getProtocolRun(runId);
      if (now.status === "completed" || now.status === "cancelled") return now;
      if (RESUMABLE.includes(now.status) && !resume) return now;
      // first: a run never planned says how to plan it, whether or not its worktree is left
      const ctx = await loadRunContext(deps, runId);
      try {
        requireWorktree(now);
      } catch (err) {
        if (!(err instanceof WorktreeGoneError)) throw err;
        // said once, on the run: nothing can run in a folder that is gone
        if (!canMoveProtocol(now.status, "blocked")) throw err;
        return blockRun(held, runId, err.message, { reason: "worktree_gone", worktree: now.worktreePath });
      }
      const scope: RunScope = {
        deps,
        store: held,
        ctx,
        signal: hold.signal,
        runStep: (id, frame) => this.guarded(scope, id, () => executeStep(scope, id, frame)),
        preflight: (engine, settings) => this.preflight(engine, settings),
      };
      // QA alone keeps its step as it is: its outputs are what gets checked
      const keep = opts.only?.qaOnly ? opts.only.stepRunId : undefined;
      if ((await this.start(scope, stored.leaseOwner, { retryFailed: resume, keep })) === "stop")
        return held.getProtocolRun(runId);
      if ((await this.checkBeforeRunning(scope, opts.only?.stepRunId)) === "stop")
        return held.getProtocolRun(runId);
      return opts.only ? await this.runOne(scope, opts.only) : await this.runAll(scope);
    } finally {
      await hold.release();
    }
  }

  private async runAll(scope: RunScope): Promise<ProtocolRun> {
    const { store, ctx, signal } = scope;
    const runId = ctx.run.id;
    for (;;) {
      // the status alone, not the run with its frozen spec: this is asked before every step
      if ((await store.getProtocolStatus(runId)) !== "running" || handedOff(signal))
        return store.getProtocolRun(runId);
      if (signal.aborted)
        return pauseIfRunning(store, runId, "Protocol paused (interrupted)", { reason: "interrupted" });
      const states = await store.listStepStates(runId);
      const next = states.filter((s) => runnable(ctx, s))[0];
      if (!next) return this.finish(scope, await store.listStepRuns(runId));
      if ((await scope.runStep(next.id, TOP_FRAME)) === "stop") return store.getProtocolRun(runId);
    }
  }

  /** One step (or its QA alone), then the run pauses unless that step ended it. */
  private async runOne(scope: RunScope, only: NonNullable<RunOptions["only"]>): Promise<ProtocolRun> {
    const { store, ctx } = scope;
    const steps = await store.listStepRuns(ctx.run.id);
    const step =
      only.stepRunId !== undefined
        ? steps.find((s) => s.id === only.stepRunId)
        : steps.filter((s) => runnable(ctx, s)).sort((a, b) => a.stepIndex - b.stepIndex)[0];
    if (!step && only.stepRunId !== undefined)
      throw new NotFoundError(`step run of run ${ctx.run.id}`, only.stepRunId);
    if (!step) return this.finish(scope, steps);
    // a job delivered twice finds its step already done (or not yet queued): it runs nothing again
    const ready = only.qaOnly ? step.status === "needs_qa" : step.status === "pending";
    const outcome = !ready
      ? "continue"
      : only.qaOnly
        ? await this.guarded(scope, step.id, () => this.qaOnly(scope, step))
        : await scope.runStep(step.id, TOP_FRAME);
    if (handedOff(scope.signal)) return store.getProtocolRun(ctx.run.id);
    const after = await store.listStepRuns(ctx.run.id);
    if (outcome === "continue" && !after.some((s) => runnable(ctx, s))) return this.finish(scope, after);
    return pauseIfRunning(store, ctx.run.id, `Protocol paused after step ${step.stepName}`, {
      reason: "step_done",
      step: step.stepName,
    });
  }

  /** QA again on what the step already produced (API run_qa, CI success), then its policies. */
  private async qaOnly(scope: RunScope, step: StepRun): Promise<StepOutcome> {
    const { ctx } = scope;
    const engine = this.deps.registry.get(engineIdFor(ctx, step.stepName));
    let resolved: ReturnType<typeof resolveFor>;
    try {
      resolved = resolveFor(scope, step, engine);
    } catch (err) {
      if (!(err instanceof StepResolutionError)) throw err;
      return failOnSpec(scope, step, err);
    }
    let output = "";
    try {
      output = readFileSync(resolved.outputs.protocol, "utf8");
    } catch {
      // no output yet: light QA reports it missing
    }
    const attempt = Number(step.runtimeState.attempts ?? 0);
    // a transcript of its own: QA run again never writes over the first QA's evidence
    const setup = callSetup(ctx, step, attempt);
    // one stamp for the whole QA run, so its repair retry sits beside its first call
    const stamp = Date.now();
    const again = {
      ...setup,
      transcript: (phase: string, n: number) => setup.transcript(`${phase}-again-${stamp}`, n),
    };
    return qaPhase(scope, step, resolved, output, again, TOP_FRAME, null);
  }

  /**
   * Moves the run to running. Steps a crash left mid-flight run again, up to their `retry.crashes`;
   * failed and blocked steps are retried. "stop" when a step has crashed too often.
   */
  private async start(
    scope: RunScope,
    previousOwner: string | null,
    opts: { retryFailed: boolean; keep?: number | undefined },
  ): Promise<StepOutcome> {
    const { keep } = opts;
    const { store, ctx } = scope;
    const run = await store.getProtocolRun(ctx.run.id);
    const steps = await store.listStepRuns(run.id);
    const crashedOut: string[] = [];
    // the dead runner's engines are killed before the write lock is taken: a /proc scan and a kill
    // neither need the lock nor can be rolled back
    const orphansKilled = new Map<number, boolean>();
    for (const s of steps) {
      const orphan = s.runtimeState.engine_process as ProcessIdentity | undefined;
      if (s.id !== keep && (s.status === "running" || s.status === "needs_qa"))
        orphansKilled.set(s.id, orphan ? killOrphan(orphan) : false);
    }
    await store.transaction(async (tx) => {
      if (run.status !== "running") {
        const resumed = RESUMABLE.includes(run.status);
        await tx.transitionProtocol(run.id, "running", {
          eventType: resumed ? EVENT.protocolResumed : EVENT.protocolStarted,
          message: resumed ? `Protocol resumed from ${run.status}` : "Protocol started",
        });
      } else if (steps.some((s) => s.status === "running" || s.status === "needs_qa")) {
        await tx.appendEvent({
          protocolRunId: run.id,
          eventType: EVENT.protocolRecovered,
          message: "Protocol taken over: its previous runner stopped without finishing",
          metadata: { previous_lease_owner: previousOwner },
        });
      }
      for (const s of steps) {
        if (s.id === keep) continue;
        if (s.status === "running" || s.status === "needs_qa") {
          const orphanKilled = orphansKilled.get(s.id) ?? false;
          const crashes = Number(s.runtimeState.crashes ?? 0) + 1;
          const limit = ctx.steps.get(s.stepName)?.spec.retry?.crashes ?? DEFAULT_CRASH_RETRIES;
          const { engine_process: _gone, ...kept } = s.runtimeState;
          const state = { ...kept, crashes };
          if (crashes > limit) {
            crashedOut.push(s.stepName);
            await tx.transitionStep(
              s.id,
              "failed",
              {
                eventType: EVENT.stepFailed,
                message: `Step ${s.stepName} was interrupted by a crash ${crashes} times; it is not run again (retry.crashes is ${limit})`,
                metadata: {
                  reason: "crashed",
                  crashes,
                  limit,
                  previous_status: s.status,
                  orphan_killed: orphanKilled,
                },
              },
              { patch: { runtimeState: state, summary: `crashed ${crashes} times` } },
            );
          } else {
            await tx.transitionStep(
              s.id,
              "pending",
              {
                eventType: EVENT.stepRecovered,
                message: `Step was ${s.status} when its runner stopped; it runs again (${crashes}/${limit})`,
                metadata: { previous_status: s.status, crashes, limit, orphan_killed: orphanKilled },
              },
              { patch: { runtimeState: state } },
            );
          }
        } else if (opts.retryFailed && (s.status === "failed" || s.status === "blocked")) {
          await tx.transitionStep(
            s.id,
            "pending",
            {
              eventType: EVENT.stepRetry,
              message: `Retrying step (was ${s.status})`,
              metadata: { retries: s.retries + 1 },
            },
            { patch: { retries: s.retries + 1, runtimeState: { ...s.runtimeState, crashes: 0 } } },
          );
        }
      }
      if (crashedOut.length > 0)
        await blockRun(tx, run.id, `Step ${crashedOut.join(", ")} crashed too often`, {
          reason: "crashed",
          steps: crashedOut,
        });
    });
    return crashedOut.length > 0 ? "stop" : "continue";
  }

  /**
   * Everything that can be checked before a step executes: the spec against the registry and the
   * roots, then every engine the remaining steps (and their QA) use, so a missing binary is found
   * before any work is done.
   */
  private async checkBeforeRunning(scope: RunScope, onlyStep?: number): Promise<StepOutcome> {
    const { store, ctx } = scope;
    const steps = await store.listStepRuns(ctx.run.id);
    // a step already done is not checked again: its prompt may rightly be gone by now
    const done = new Set(steps.filter((s) => DONE_STEP_STATUSES.includes(s.status)).map((s) => s.stepName));
    const { errors, config } = validateRun(ctx, this.deps.registry, done);
    if (config) {
      await blockRun(store, ctx.run.id, config.message, {
        reason: "config_invalid",
        unknown_engines: config.unknown,
      });
      return "stop";
    }
    if (errors.length > 0) {
      await store.transaction(async (tx) => {
        for (const e of errors) {
          const step = steps.find((s) => s.stepName === e.stepId);
          await tx.appendEvent({
            protocolRunId: ctx.run.id,
            stepRunId: step?.id ?? null,
            eventType: EVENT.specValidationError,
            message: `${e.pointer}: ${e.message}`,
            metadata: { pointer: e.pointer, error: e.message, step: e.stepId },
          });
        }
        for (const id of new Set(errors.map((e) => e.stepId))) {
          const step = steps.find((s) => s.stepName === id);
          if (step && step.status !== "failed") {
            await tx.transitionStep(step.id, "failed", {
              eventType: EVENT.stepFailed,
              message: "Spec validation failed; nothing executed",
              metadata: { reason: "spec_validation_error" },
            });
          }
        }
        await blockRun(tx, ctx.run.id, `Spec validation failed (${errors.length} error(s))`, {
          reason: "spec_validation_error",
          errors,
        });
      });
      return "stop";
    }
    const todo = steps.filter((s) =>
      onlyStep === undefined ? !DONE_STEP_STATUSES.includes(s.status) : s.id === onlyStep,
    );
    for (const step of todo) {
      const spec = ctx.steps.get(step.stepName)!.spec;
      const execEngine = engineIdFor(ctx, step.stepName);
      const used = [execEngine];
      if ((spec.qa?.policy ?? ctx.config.qa.policy) === "full")
        used.push(spec.qa?.engine_id ?? ctx.config.qa.engine ?? execEngine);
      for (const engineId of used) {
        const pre = await this.preflight(this.deps.registry.get(engineId), engineSettings(ctx, engineId));
        if (!pre.ok) return failUnavailable(scope, step, engineId, pre);
      }
    }
    return "continue";
  }

  /**
   * The runner's own failures (a file system error, a git call that failed, a bug) are the step's
   * outcome too: it fails with the error and the run blocks, instead of a run left `running` with no
   * word of why. An outage of the database goes up instead, as does an error when even the failure
   * cannot be written.
   */
  private async guarded(
    scope: RunScope,
    stepRunId: number,
    fn: () => Promise<StepOutcome>,
  ): Promise<StepOutcome> {
    try {
      return await fn();
    } catch (err) {
      if (leaseLost(scope.signal) || handedOff(scope.signal)) return "stop";
      // the database away for longer than the store waits is not the step's failure: it goes up,
      // and the job is tried again once the database is back
      if (infrastructureFailure(err)) throw err;
      try {
        await scope.store.transaction(async (tx) => {
          const step = await tx.getStepRun(stepRunId);
          const message = `${errorMessage(err)}`.slice(0, 2000);
          const metadata = {
            reason: "runner_error",
            error: message,
            error_code: TasksGodzillaError.is(err) ? err.code : null,
          };
          if (canMoveStep(step.status, "failed"))
            await tx.transitionStep(
              step.id,
              "failed",
              { eventType: EVENT.stepFailed, message: `Step ${step.stepName} failed: ${message}`, metadata },
              { patch: { summary: message.slice(0, 500) } },
            );
          const runId = scope.ctx.run.id;
          if (canMoveProtocol(await tx.getProtocolStatus(runId), "blocked"))
            await blockRun(tx, runId, `Step ${step.stepName} failed: ${message}`, {
              ...metadata,
              step: step.stepName,
            });
        });
      } catch {
        throw err;
      }
      return "stop";
    }
  }

  /** Once per engine and settings per runner: a binary does not appear or vanish between steps. */
  private preflight(engine: Engine, settings: EngineSettings): Promise<PreflightResult> {
    const key = `${engine.id}:${JSON.stringify(settings)}`;
    let p = this.preflights.get(key);
    if (!p) {
      p = engine.preflight(settings).catch((err) => ({
        ok: false,
        problems: [{ message: errorMessage(err), fix: "run `tgz engines` for details" }],
      }));
      this.preflights.set(key, p);
    }
    return p;
  }

  /** Completed when every step is done; trigger-only steps nobody triggered do not count. */
  private async finish(scope: RunScope, steps: StepRun[]): Promise<ProtocolRun> {
    const { store, ctx } = scope;
    const open = steps.filter(
      (s) =>
        !DONE_STEP_STATUSES.includes(s.status) &&
        !(triggerOnly(ctx, s) && !runnable(ctx, s) && s.status === "pending"),
    );
    if (open.length === 0) {
      return store.transitionProtocol(ctx.run.id, "completed", {
        eventType: EVENT.protocolCompleted,
        message: `All ${steps.filter((s) => DONE_STEP_STATUSES.includes(s.status)).length} steps completed`,
      });
    }
    return blockRun(store, ctx.run.id, `Steps not finished: ${open.map((s) => s.stepName).join(", ")}`, {
      reason: "unfinished_steps",
    });
  }
}
