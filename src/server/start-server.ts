/**
 * `tgz server`: the API, and — on the embedded queue — a worker in the same process, so one command
 * runs everything. Without an API token the server listens on loopback only. Its log is JSON lines
 * (pino), secrets redacted.
 */
import { hostname } from "node:os";
import type { FastifyInstance } from "fastify";
import type { JobQueue } from "../queue/job-queue.js";
import type { RunnerDeps } from "../runner/run-context.js";
import { InvalidInputError } from "../shared/errors.js";
import type { Store } from "../store/types.js";
import { type HandlerOptions, jobHandlers } from "../worker/job-handlers.js";
import { JobWorker } from "../worker/job-worker.js";
import { buildServer, SECRET_HEADERS } from "./build-server.js";
import { Metrics } from "./metrics.js";

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

export interface StartServerOptions {
  host: string;
  port: number;
  store: Store;
  queue: JobQueue;
  deps: RunnerDeps;
  env: NodeJS.ProcessEnv;
  /** Run a worker in this process (default: when the queue is the embedded one). */
  worker: boolean;
  /** For the in-process worker: engine caps. */
  handlerOptions?: HandlerOptions;
  log?: boolean;
}

const TRUE = /^(1|true|yes|on)$/i;

export async function startServer(
  opts: StartServerOptions,
): Promise<{ app: FastifyInstance; url: string; close(): Promise<void> }> {
  const apiToken = opts.env.TASKSGODZILLA_API_TOKEN || undefined;
  if (!apiToken && !LOOPBACK.has(opts.host)) {
    throw new InvalidInputError(
      `refusing to listen on ${opts.host} without TASKSGODZILLA_API_TOKEN; set a token or use --host 127.0.0.1`,
    );
  }
  const queueBackend = opts.env.TASKSGODZILLA_REDIS_URL ? "bullmq-redis" : `embedded-${opts.store.dialect}`;
  const metrics = new Metrics();
  const app = buildServer({
    metrics,
    store: opts.store,
    queue: opts.queue,
    queueBackend,
    configFor: opts.deps.configFor,
    registry: opts.deps.registry,
    apiToken,
    webhookToken: opts.env.TASKSGODZILLA_WEBHOOK_TOKEN || undefined,
    allowUnsignedWebhooks: opts.env.TASKSGODZILLA_ALLOW_UNSIGNED_WEBHOOKS === "true",
    ci: {
      // the original's switch; TASKSGODZILLA_CI_ON_SUCCESS=run is the older name of the same
      autoQa:
        TRUE.test(opts.env.TASKSGODZILLA_AUTO_QA_ON_CI ?? "") ||
        opts.env.TASKSGODZILLA_CI_ON_SUCCESS === "run",
      blockOnFailure: opts.env.TASKSGODZILLA_CI_ON_FAILURE !== "none",
    },
    logger:
      opts.log === false
        ? false
        : {
            level: "info",
            redact: { paths: SECRET_HEADERS.map((h) => `req.headers["${h}"]`), censor: "[redacted]" },
          },
  });
  const address = await app.listen({ host: opts.host, port: opts.port });
  app.log.info(
    { url: address, store: opts.store.dialect, queue: queueBackend },
    `TasksGodzilla API on ${address} (${opts.store.dialect}${opts.env.TASKSGODZILLA_REDIS_URL ? " + Redis" : ""})`,
  );
  if (!apiToken)
    app.log.warn("no TASKSGODZILLA_API_TOKEN: the API is open to this machine only (listening on loopback)");
  const worker = opts.worker
    ? new JobWorker({
        queue: opts.queue,
        handlers: jobHandlers(opts.deps, { ...opts.handlerOptions, logger: app.log }),
        workerId: `${hostname()}:${process.pid}:server`,
        logger: app.log,
        onFinished: (job, outcome, seconds) => metrics.job(job.kind, outcome, seconds),
      })
    : undefined;
  worker?.start();
  return {
    app,
    url: address,
    async close() {
      await worker?.stop({ abort: true });
      await app.close();
    },
  };
}
