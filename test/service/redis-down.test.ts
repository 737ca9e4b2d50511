/**
 * Redis away (a redis-server of the test's own, stopped): the API's queue calls fail fast with a 503
 * naming Redis, /health says the queue is down, what was committed is queued again by the
 * reconciler once Redis is back, and `tgz server` / `tgz worker` stop promptly on SIGTERM.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { BullmqQueue } from "../../src/queue/bullmq-queue.js";
import { buildServer } from "../../src/server/build-server.js";
import { openStore } from "../../src/store/open-store.js";
import type { Store } from "../../src/store/types.js";
import { RunReconciler } from "../../src/worker/run-reconciler.js";
import { exampleCopy } from "../codemachine/packages.js";
import { gitRepo } from "../scenario/harness.js";
import { shellSpec, until } from "../server/api-harness.js";
import { freePort, type Proc, redisServer, redisServerBinary, tgzProcess } from "./process-harness.js";

const redis = redisServer(await freePort());
let store: Store;
let queue: BullmqQueue;
let base: string;
let close: () => Promise<void>;
const procs: Proc[] = [];

beforeAll(async () => {
  await redis.start();
  store = await openStore({
    sqlitePath: join(mkdtempSync(join(tmpdir(), "tgz-redis-down-")), "db.sqlite"),
  });
  queue = new BullmqQueue({ url: redis.url, prefix: "down", onConnectionError: () => {} });
  const app = buildServer({ store, queue, configFor: (d) => loadConfig(d, {}), checkReplies: true });
  base = await app.listen({ host: "127.0.0.1", port: 0 });
  close = async () => {
    await app.close();
    await queue.close();
    await store.close();
  };
});
afterAll(async () => {
  for (const p of procs) await p.stop("SIGKILL");
  await close();
  await redis.kill();
});

/** A call and how long it took. */
async function timed(method: string, path: string, body?: unknown) {
  const started = Date.now();
  const res = await fetch(`${base}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: /^[[{]/.test(text) ? JSON.parse(text) : text,
    ms: Date.now() - started,
  };
}

describe.skipIf(!redisServerBinary)("Redis away", () => {
  it("fails the API's queue calls fast with a 503 naming Redis, says so on /health, and loses nothing committed", {
    timeout: 60_000,
  }, async () => {
    const repo = gitRepo();
    const project = (await timed("POST", "/projects", { name: "p", git_url: repo, local_path: repo })).body;
    const run = (
      await timed("POST", `/projects/${project.id}/protocols`, {
        protocol_name: "r",
        spec: shellSpec("true"),
      })
    ).body;
    expect((await timed("GET", "/health")).body).toEqual({ status: "ok" });
    await redis.kill();

    const where = redis.url.replace("redis://", "");
    const health = await timed("GET", "/health");
    expect(health).toMatchObject({
      status: 503,
      body: { status: "degraded", database: "ok", queue: "down", detail: expect.stringContaining(where) },
    });
    for (const path of ["/metrics", "/queues", "/queues/jobs"]) {
      const r = await timed("GET", path);
      expect(r, path).toMatchObject({ status: 503, body: { error: "queue_unavailable" } });
      expect(r.body.detail, path).toContain(`Redis at redis://${where} is not reachable`);
      expect(r.ms, path).toBeLessThan(2000);
    }
    const start = await timed("POST", `/protocols/${run.id}/actions/start`);
    expect(start).toMatchObject({ status: 503, body: { error: "queue_unavailable" } });
    expect(start.body.detail).toContain(
      `protocol run ${run.id} is running (saved), and the reconciler queues its job once the queue is back`,
    );
    expect(start.ms).toBeLessThan(2000);
    const imported = await timed("POST", `/projects/${project.id}/codemachine/import`, {
      protocol_name: "0009-cm",
      workspace_path: exampleCopy(),
      enqueue: true,
    });
    expect(imported).toMatchObject({ status: 503, body: { error: "queue_unavailable" } });
    const runs = (await timed("GET", `/projects/${project.id}/protocols`)).body as {
      id: number;
      status: string;
    }[];
    expect(runs.map((r) => r.status).sort()).toEqual(["planning", "running"]);

    await redis.start();
    await until(async () => (await timed("GET", "/health")).status === 200, 15_000);
    const reconciler = new RunReconciler({ store, queue, settleMs: 0 });
    expect((await reconciler.reconcile()).sort()).toEqual(runs.map((r) => r.id).sort());
    const jobs = (await timed("GET", "/queues/jobs?status=queued")).body as { kind: string }[];
    expect(jobs.map((j) => j.kind).sort()).toEqual(["execute_protocol", "import"]);
  });

  it("lets tgz worker and tgz server stop at once on SIGTERM while Redis is away", {
    timeout: 60_000,
  }, async () => {
    const down = `redis://127.0.0.1:${await freePort()}`;
    const env = {
      TASKSGODZILLA_DATA_DIR: mkdtempSync(join(tmpdir(), "tgz-redis-down-")),
      TASKSGODZILLA_DB_URL: "",
      TASKSGODZILLA_API_TOKEN: "",
      TASKSGODZILLA_REDIS_URL: down,
      TASKSGODZILLA_QUEUE_PREFIX: "down",
    };
    const worker = tgzProcess(["worker"], env);
    const server = tgzProcess(["server", "--port", "0"], env);
    procs.push(worker, server);
    await worker.waitFor(/claim failed; retrying/);
    const url = (await server.waitFor(/API on (http:\/\/\S+)/))[1]!;
    const health = await fetch(`${url}/health`);
    expect([health.status, ((await health.json()) as { queue: string }).queue]).toEqual([503, "down"]);
    for (const p of [worker, server]) {
      const asked = Date.now();
      p.child.kill("SIGTERM");
      await new Promise((resolve) => p.child.once("exit", resolve));
      expect(Date.now() - asked).toBeLessThan(5000);
      expect(p.child.exitCode).toBe(0);
    }
  });
});
