/** `tgz server` and `tgz worker`: the service mode, on the embedded store or Postgres + Redis. */
import { hostname } from "node:os";
import { pino } from "pino";
import type { JobQueue } from "../../queue/job-queue.js";
import { openQueue } from "../../queue/open-queue.js";
import { startServer } from "../../server/start-server.js";
import { InvalidInputError } from "../../shared/errors.js";
import type { Store } from "../../store/types.js";
import { blockRunOnDeadLetter } from "../../worker/dead-letter.js";
import { capsGate } from "../../worker/engine-gate.js";
import { type HandlerOptions, jobHandlers } from "../../worker/job-handlers.js";
import { JobWorker, type WorkerLogger } from "../../worker/job-worker.js";
import { RunReconciler } from "../../worker/run-reconciler.js";
import type { AppContext } from "../app-context.js";
import { runnerDeps } from "../local-work.js";

/** Engine caps (`TASKSGODZILLA_ENGINE_CONCURRENCY`) as slots in the store, one gate per job. */
function handlerOptions(store: Store, holder: string): HandlerOptions {
  return { gate: capsGate(store, holder, process.env) };
}

/**
 * What every process sharing the queue does besides its own work: blocks the runs of dead-lettered
 * jobs, and queues again the runs whose job was lost (every TASKSGODZILLA_RECONCILE_SECONDS, default 30).
 */
function keepRunsHonest(store: Store, queue: JobQueue, logger: WorkerLogger): RunReconciler {
  queue.onDeadLetter(blockRunOnDeadLetter(store, logger));
  const seconds = Number(process.env.TASKSGODZILLA_RECONCILE_SECONDS ?? 30);
  if (!(seconds > 0))
    throw new InvalidInputError(`TASKSGODZILLA_RECONCILE_SECONDS must be a positive number of seconds`);
  const reconciler = new RunReconciler({
    store,
    queue,
    logger,
    intervalMs: seconds * 1000,
    settleMs: seconds * 1000,
  });
  reconciler.start();
  return reconciler;
}

/** A flag's whole number within [min, max], or an error naming the flag and what was given. */
function wholeFlag(flag: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new InvalidInputError(
      `${flag} must be a whole number ${max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`}, got ${JSON.stringify(value)}`,
    );
  return n;
}

/** After a graceful shutdown, lingering client handles (Redis reconnects) must not keep the process alive. */
const exitSoon = () => setTimeout(() => process.exit(0), 1000).unref();

/** Resolves when SIGINT/SIGTERM arrives. */
const untilSignal = () =>
  new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });

export async function serverCommand(
  app: AppContext,
  opts: { host: string; port: string; worker?: boolean },
): Promise<number> {
  const port = wholeFlag("--port", opts.port, 0, 65_535);
  const { store } = app;
  const redisUrl = process.env.TASKSGODZILLA_REDIS_URL;
  const queue = openQueue(store, redisUrl, process.env.TASKSGODZILLA_QUEUE_PREFIX);
  const holder = `${hostname()}:${process.pid}`;
  const server = await startServer({
    host: opts.host,
    port,
    store,
    queue,
    deps: runnerDeps(app),
    env: process.env,
    worker: opts.worker ?? !redisUrl,
    handlerOptions: handlerOptions(store, holder),
  });
  const reconciler = keepRunsHonest(store, queue, server.app.log);
  await untilSignal();
  await reconciler.stop();
  await server.close();
  await queue.close();
  exitSoon();
  return 0;
}

export async function workerCommand(
  app: AppContext,
  opts: { concurrency: string; leaseSeconds: string },
): Promise<number> {
  const concurrency = wholeFlag("--concurrency", opts.concurrency, 1);
  const leaseMs = wholeFlag("--lease-seconds", opts.leaseSeconds, 1) * 1000;
  const { store } = app;
  const queue = openQueue(store, process.env.TASKSGODZILLA_REDIS_URL, process.env.TASKSGODZILLA_QUEUE_PREFIX);
  const id = `${hostname()}:${process.pid}`;
  const logger = pino({ base: { pid: process.pid, hostname: hostname() } });
  const worker = new JobWorker({
    queue,
    handlers: jobHandlers(runnerDeps(app), { ...handlerOptions(store, id), logger }),
    workerId: id,
    concurrency,
    leaseMs,
    logger,
  });
  const reconciler = keepRunsHonest(store, queue, logger);
  worker.start();
  logger.info(
    { worker: id, store: store.dialect, queue: process.env.TASKSGODZILLA_REDIS_URL ? "bullmq" : "embedded" },
    "worker started",
  );
  await untilSignal();
  await reconciler.stop();
  await worker.stop({ abort: true });
  await queue.close();
  exitSoon();
  return 0;
}
