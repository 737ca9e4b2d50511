/** `tgz server` and `tgz worker`: the service mode, on the embedded store or Postgres + Redis. */
import { hostname } from "node:os";
import { openQueue } from "../../queue/open-queue.js";
import { ConcurrencySlots } from "../../queue/store-queue.js";
import type { RunnerDeps } from "../../runner/run-context.js";
import { startServer } from "../../server/start-server.js";
import type { KyselyStore } from "../../store/kysely-store.js";
import { engineGate, parseCaps } from "../../worker/engine-gate.js";
import { jobHandlers } from "../../worker/job-handlers.js";
import { JobWorker } from "../../worker/job-worker.js";
import type { AppContext } from "../app-context.js";

function runnerDeps(app: AppContext, holder: string): RunnerDeps {
  const store = app.store as KyselyStore;
  const caps = parseCaps(process.env.TASKSGODZILLA_ENGINE_CONCURRENCY);
  return {
    store,
    registry: app.registry,
    configFor: app.configFor,
    ...(Object.keys(caps).length
      ? { engineGate: engineGate(new ConcurrencySlots(store.kysely), caps, holder) }
      : {}),
  };
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
  const store = app.store as KyselyStore;
  const redisUrl = process.env.TASKSGODZILLA_REDIS_URL;
  const queue = openQueue(store, redisUrl, process.env.TASKSGODZILLA_QUEUE_PREFIX);
  const server = await startServer({
    host: opts.host,
    port: Number(opts.port),
    store,
    queue,
    deps: runnerDeps(app, `${hostname()}:${process.pid}`),
    env: process.env,
    worker: opts.worker ?? !redisUrl,
  });
  process.stdout.write(
    `TasksGodzilla API on ${server.url} (${store.dialect}${redisUrl ? " + Redis" : ""})\n`,
  );
  await untilSignal();
  await server.close();
  await queue.close();
  exitSoon();
  return 0;
}

export async function workerCommand(
  app: AppContext,
  opts: { concurrency: string; leaseSeconds: string },
): Promise<number> {
  const store = app.store as KyselyStore;
  const queue = openQueue(store, process.env.TASKSGODZILLA_REDIS_URL, process.env.TASKSGODZILLA_QUEUE_PREFIX);
  const id = `${hostname()}:${process.pid}`;
  const worker = new JobWorker({
    queue,
    handlers: jobHandlers(runnerDeps(app, id)),
    workerId: id,
    concurrency: Number(opts.concurrency),
    leaseMs: Number(opts.leaseSeconds) * 1000,
    log: (line) => process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...line })}\n`),
  });
  worker.start();
  process.stdout.write(
    `${JSON.stringify({ msg: "worker started", worker: id, store: store.dialect, queue: process.env.TASKSGODZILLA_REDIS_URL ? "bullmq" : "embedded" })}\n`,
  );
  await untilSignal();
  await worker.stop({ abort: true });
  await queue.close();
  exitSoon();
  return 0;
}
