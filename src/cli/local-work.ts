/**
 * Work the CLI does in its own process: the worker's job handlers and runner, with the same engine
 * caps as the workers (`TASKSGODZILLA_ENGINE_CONCURRENCY`, slots in the store), stopped by Ctrl-C,
 * SIGTERM or a closed terminal, with the live progress view. `--queue` hands the work to the
 * configured queue instead, for `tgz server` / `tgz worker` to run.
 */
import { hostname } from "node:os";
import { openQueue } from "../queue/open-queue.js";
import type { RunnerDeps } from "../runner/run-context.js";
import { type Dispatch, queueDispatch } from "../services/dispatch.js";
import type { HandoffError } from "../shared/errors.js";
import type { Json } from "../store/types.js";
import { capsGate } from "../worker/engine-gate.js";
import { depsForWork, type HandlerOptions, jobHandlers } from "../worker/job-handlers.js";
import type { AppContext } from "./app-context.js";
import { ProgressView } from "./progress-view.js";

/** Signals that stop work under way: Ctrl-C, a kill, and a closed terminal. */
const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

function handlerOptions(app: AppContext): HandlerOptions {
  return { gate: capsGate(app.store, `${hostname()}:${process.pid}:cli`, process.env) };
}

export const runnerDeps = (app: AppContext): RunnerDeps => ({
  store: app.store,
  registry: app.registry,
  configFor: app.configFor,
});

/**
 * Runs `work` here until it ends: a stop signal or a lost engine slot aborts it (the engine's process
 * group is killed); with `runId`, the run's events are shown live as they are written.
 */
export async function workHere(
  app: AppContext,
  runId: number | undefined,
  opts: { json?: boolean | undefined },
  work: (signal: AbortSignal, abort: (reason: HandoffError) => void) => Promise<unknown>,
): Promise<void> {
  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error("interrupted"));
  for (const s of STOP_SIGNALS) process.once(s, onSignal);
  const view =
    runId !== undefined && !opts.json
      ? new ProgressView(app.store, runId, (line) => process.stdout.write(`${line}\n`))
      : undefined;
  view?.start();
  try {
    await work(controller.signal, (reason) => controller.abort(reason));
  } finally {
    await view?.stop();
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
  }
}

/** The runner's deps for work done here on `payload` (a run, or a repository), with the engine caps. */
export function localDeps(app: AppContext, payload: Json, abort: (reason: HandoffError) => void): RunnerDeps {
  return depsForWork(runnerDeps(app), handlerOptions(app), payload, abort);
}

let localJobs = 0;

/** Runs an action's job here, with the handler a worker would run for it. */
export function localDispatch(app: AppContext, opts: { json?: boolean | undefined }): Dispatch {
  const handlers = jobHandlers(runnerDeps(app), handlerOptions(app));
  return async (job, run) => {
    const now = new Date().toISOString();
    const id = `local-${process.pid}-${++localJobs}`;
    const claimed = {
      id,
      kind: job.kind,
      payload: job.payload,
      state: "active" as const,
      attempts: 1,
      maxAttempts: 1,
      lastError: null,
      createdAt: now,
      updatedAt: now,
      leaseToken: id,
      leaseExpiresAt: Number.POSITIVE_INFINITY,
    };
    await workHere(app, run?.id, opts, (signal, abort) => handlers[job.kind](claimed, signal, abort));
    return { id, deduplicated: false };
  };
}

/** Hands the job to the configured queue (embedded, or Redis with TASKSGODZILLA_REDIS_URL). */
export async function withQueueDispatch<T>(
  app: AppContext,
  fn: (dispatch: Dispatch) => Promise<T>,
): Promise<T> {
  const queue = openQueue(
    app.store,
    process.env.TASKSGODZILLA_REDIS_URL,
    process.env.TASKSGODZILLA_QUEUE_PREFIX,
  );
  try {
    return await fn(queueDispatch(queue));
  } finally {
    await queue.close();
  }
}
