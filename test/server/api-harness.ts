/**
 * The API over real HTTP on a real store and the embedded queue, with every JSON reply checked
 * against its documented schema (checkReplies), and real workers to run what the API queues.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { loadConfig } from "../../src/config/load-config.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import { StoreQueue } from "../../src/queue/store-queue.js";
import { buildServer, type ServerOptions } from "../../src/server/build-server.js";
import { Metrics } from "../../src/server/metrics.js";
import { openStore } from "../../src/store/open-store.js";
import type { Store } from "../../src/store/types.js";
import { jobHandlers } from "../../src/worker/job-handlers.js";
import { JobWorker } from "../../src/worker/job-worker.js";
import { gitRepo } from "../scenario/harness.js";

export const TOKEN = "api-secret-token";
export const HOOK = "hook-secret";

export interface Reply {
  status: number;
  body: any;
  headers: Headers;
}

export interface Api {
  store: Store;
  /** The SQLite file of the store (when it is not Postgres): what `tgz --db` opens. */
  dbPath: string | undefined;
  queue: StoreQueue;
  app: FastifyInstance;
  base: string;
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Reply>;
  /** A project on a fresh git repository (or `repo`) and a run of shell steps in it. */
  newRun(
    commands?: string[],
    extra?: Record<string, unknown>,
    repo?: string,
  ): Promise<{ project: Reply["body"]; run: Reply["body"]; repo: string }>;
  worker(id?: string): JobWorker;
  /** Runs queued jobs on a real worker until the queue is empty. */
  drain(): Promise<void>;
  /** Another server on the same store and queue. */
  server(opts: Partial<ServerOptions>): Promise<{ url: string; close(): Promise<void> }>;
  close(): Promise<void>;
}

export const shellSpec = (...commands: string[]) => ({
  steps: commands.map((c, i) => ({
    id: `s${i}`,
    engine_id: "shell",
    inputs: { command: c },
    // the last step is checked, so QA shows up in events and metrics
    qa: { policy: i === commands.length - 1 ? "light" : "skip" },
  })),
});

export async function startApi(
  opts: Partial<ServerOptions> = {},
  storeOpts: { url?: string; pgSchema?: string } = {},
): Promise<Api> {
  const dbPath = storeOpts.url ? undefined : join(mkdtempSync(join(tmpdir(), "tgz-api-")), "db.sqlite");
  const store = await openStore(
    storeOpts.url ? { url: storeOpts.url, pgSchema: storeOpts.pgSchema } : { sqlitePath: dbPath! },
  );
  const queue = new StoreQueue(store);
  const options = (extra: Partial<ServerOptions>): ServerOptions => ({
    store,
    queue,
    configFor: (d) => loadConfig(d, {}),
    checkReplies: true,
    ...extra,
  });
  // the server's metrics count what its workers finish, as `tgz server`'s own worker does
  const metrics = new Metrics();
  const app = buildServer(options({ apiToken: TOKEN, webhookToken: HOOK, metrics, ...opts }));
  const base = await app.listen({ host: "127.0.0.1", port: 0 });

  const call: Api["call"] = async (method, path, body, headers = {}) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${TOKEN}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: res.status, body: json, headers: res.headers };
  };

  const worker = (id = "test") =>
    new JobWorker({
      queue,
      handlers: jobHandlers({
        store,
        registry: createDefaultRegistry(),
        configFor: (d: string) => loadConfig(d, {}),
      }),
      workerId: id,
      pollMs: 50,
      onFinished: (job, outcome, seconds) => metrics.job(job.kind, outcome, seconds),
    });

  return {
    store,
    dbPath,
    queue,
    app,
    base,
    call,
    worker,
    async newRun(commands = ["echo one", "echo two"], extra = {}, repo = gitRepo()) {
      const project = (
        await call("POST", "/projects", {
          name: "demo",
          git_url: "git@github.com:acme/demo.git",
          local_path: repo,
          secrets: { deploy_key: "do-not-leak" },
        })
      ).body;
      const run = (
        await call("POST", `/projects/${project.id}/protocols`, {
          protocol_name: "demo",
          spec: shellSpec(...commands),
          ...extra,
        })
      ).body;
      return { project, run, repo };
    },
    async drain() {
      const w = worker();
      w.start();
      const busy = async () => {
        const c = await queue.counts();
        return c.waiting + c.active + c.delayed > 0;
      };
      for (let i = 0; i < 400 && (await busy()); i++) await new Promise((r) => setTimeout(r, 50));
      await w.stop();
    },
    async server(extra) {
      const other = buildServer(options(extra));
      const url = await other.listen({ host: "127.0.0.1", port: 0 });
      return { url, close: () => other.close() };
    },
    async close() {
      await app.close();
      await store.close();
    },
  };
}

/** Polls until `check` holds (or gives up after `ms`). */
export async function until(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}
