/**
 * Service figures: API latency of GET /protocols/{id}/events under 200 concurrent clients, event
 * delivery over SSE to 50 subscribers, and steps per second through the queue with the replay engine
 * on SQLite (embedded queue) and on Postgres + BullMQ, with 1, 2 and 4 workers (in one process).
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { loadConfig } from "../src/config/load-config.js";
import { createDefaultRegistry } from "../src/engines/builtin-engines.js";
import { BullmqQueue } from "../src/queue/bullmq-queue.js";
import type { JobQueue } from "../src/queue/job-queue.js";
import { StoreQueue } from "../src/queue/store-queue.js";
import { buildServer } from "../src/server/build-server.js";
import { createRunFromSpec } from "../src/services/create-run.js";
import type { KyselyStore } from "../src/store/kysely-store.js";
import { openStore } from "../src/store/open-store.js";
import { jobHandlers } from "../src/worker/job-handlers.js";
import { JobWorker } from "../src/worker/job-worker.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const PG_URL = process.env.TASKSGODZILLA_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL = process.env.TASKSGODZILLA_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? 0;

function specDir(steps: number): string {
  const dir = mkdtempSync(join(tmpdir(), "tgz-bench-svc-"));
  writeFileSync(join(dir, "p.md"), "Do {{step_id}}.");
  writeFileSync(
    join(dir, "protocol.json"),
    JSON.stringify({
      steps: Array.from({ length: steps }, (_, i) => ({
        id: `s${i}`,
        engine_id: "replay",
        prompt_ref: "p.md",
        inputs: { final: `done ${i}` },
        qa: { policy: "light" },
      })),
    }),
  );
  return dir;
}

function repo(): string {
  const dir = mkdtempSync(join(tmpdir(), "tgz-bench-repo-"));
  mkdirSync(dir, { recursive: true });
  return dir;
}

async function apiLatency(store: KyselyStore, queue: JobQueue) {
  const { run } = await createRunFromSpec(store, {
    repoDir: repo(),
    specPath: join(specDir(50), "protocol.json"),
  });
  for (let i = 0; i < 500; i++)
    await store.appendEvent({ protocolRunId: run.id, eventType: "note", message: `n${i}` });
  const app = buildServer({ store, queue, configFor: (d) => loadConfig(d, {}) });
  const base = await app.listen({ host: "127.0.0.1", port: 0 });
  const latencies: number[] = [];
  const end = Date.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: 200 }, async () => {
      while (Date.now() < end) {
        const t = performance.now();
        const res = await fetch(`${base}/protocols/${run.id}/events?limit=50`);
        await res.arrayBuffer();
        latencies.push(performance.now() - t);
      }
    }),
  );
  console.log(
    `API GET /protocols/{id}/events, 200 clients, ${SECONDS} s: ${latencies.length} requests, ${(latencies.length / SECONDS).toFixed(0)} req/s, median ${pct(latencies, 50).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms`,
  );

  const EVENTS = 2000;
  const SUBSCRIBERS = 50;
  const last = (await store.listEvents({ protocolRunId: run.id, newestFirst: true, limit: 1 }))[0]!.id;
  const received = Array.from({ length: SUBSCRIBERS }, () => 0);
  const controllers: AbortController[] = [];
  const done = Promise.all(
    received.map(async (_, i) => {
      const c = new AbortController();
      controllers.push(c);
      const res = await fetch(`${base}/events/stream`, {
        headers: { "last-event-id": String(last) },
        signal: c.signal,
      });
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      while (received[i]! < EVENTS) {
        const { value, done } = await reader.read();
        if (done) break;
        received[i]! += (decoder.decode(value).match(/^id: /gm) ?? []).length;
      }
      c.abort();
    }),
  );
  const t0 = performance.now();
  for (let i = 0; i < EVENTS; i++)
    await store.appendEvent({ protocolRunId: run.id, eventType: "tick", message: `t${i}` });
  await done;
  const sec = (performance.now() - t0) / 1000;
  console.log(
    `SSE: ${EVENTS} events to ${SUBSCRIBERS} subscribers in ${sec.toFixed(2)} s: ${((EVENTS * SUBSCRIBERS) / sec).toFixed(0)} deliveries/s (${(EVENTS / sec).toFixed(0)} events/s written and delivered)`,
  );
  await app.close();
}

async function queueThroughput(
  label: string,
  store: KyselyStore,
  makeQueue: () => JobQueue,
  workers: number,
) {
  const RUNS = 8;
  const STEPS = 25;
  const queue = makeQueue();
  const dir = specDir(STEPS);
  const ids: number[] = [];
  for (let i = 0; i < RUNS; i++)
    ids.push(
      (await createRunFromSpec(store, { repoDir: repo(), specPath: join(dir, "protocol.json") })).run.id,
    );
  const deps = { store, registry: createDefaultRegistry(), configFor: (d: string) => loadConfig(d, {}) };
  const pool = Array.from(
    { length: workers },
    (_, i) =>
      new JobWorker({ queue: makeQueue(), handlers: jobHandlers(deps), workerId: `bench-${i}`, pollMs: 20 }),
  );
  const t0 = performance.now();
  for (const id of ids) await queue.enqueue("execute_protocol", { protocol_run_id: id });
  for (const w of pool) w.start();
  for (;;) {
    const runs = await Promise.all(ids.map((id) => store.getProtocolRun(id)));
    if (runs.every((r) => r.status === "completed")) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const sec = (performance.now() - t0) / 1000;
  for (const w of pool) await w.stop();
  console.log(
    `queue ${label}, ${workers} worker(s): ${RUNS * STEPS} replay steps in ${sec.toFixed(2)} s = ${((RUNS * STEPS) / sec).toFixed(0)} steps/s`,
  );
  await queue.close();
}

const sqlite = await openStore({
  sqlitePath: join(mkdtempSync(join(tmpdir(), "tgz-bench-svc-")), "db.sqlite"),
});
await apiLatency(sqlite, new StoreQueue(sqlite.kysely, "sqlite"));
for (const n of [1, 2, 4])
  await queueThroughput("embedded/SQLite", sqlite, () => new StoreQueue(sqlite.kysely, "sqlite"), n);
await sqlite.close();

const schema = `bench_${process.pid}`;
try {
  const pgStore = await openStore({ url: PG_URL, pgSchema: schema });
  const prefix = `tgz-bench-${randomUUID()}`;
  for (const n of [1, 2, 4])
    await queueThroughput("BullMQ/Postgres", pgStore, () => new BullmqQueue({ url: REDIS_URL, prefix }), n);
  await pgStore.close();
} catch (err) {
  console.log(`Postgres + BullMQ skipped: ${(err as Error).message}`);
} finally {
  const client = new pg.Client({ connectionString: PG_URL });
  await client
    .connect()
    .then(() => client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`))
    .catch(() => undefined);
  await client.end().catch(() => undefined);
}
process.exit(0);
