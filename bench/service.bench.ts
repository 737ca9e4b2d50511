/**
 * Service figures, each from real processes:
 * - API latency of GET /protocols/{id}/events: `tgz server` in its own process, 200 concurrent
 *   clients on keep-alive connections from this process for BENCH_SECONDS (default 10) after a
 *   warm-up; median and p99.
 * - SSE: events per second delivered to 50 subscribers of the run's stream while this process
 *   appends events to the store the server reads.
 * - Queue throughput: steps per second of `replay` steps (QA skipped) through the job queue, run by
 *   1, 2 and 4 `tgz worker` processes, on SQLite (embedded queue) and on Postgres + BullMQ, after
 *   a warm-up round (excluded), over rounds lasting BENCH_QUEUE_SECONDS (default 6) in all; twice:
 *   with one execute_protocol job per 40-step run, and with one execute_step job per step, each
 *   asked for with run_next_step through `tgz server` (the run pauses after each step).
 * Prints a table at the end.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { BullmqQueue } from "../src/queue/bullmq-queue.js";
import type { JobQueue } from "../src/queue/job-queue.js";
import { StoreQueue } from "../src/queue/store-queue.js";
import { createRunFromSpec } from "../src/services/create-run.js";
import { openStore } from "../src/store/open-store.js";
import type { Store } from "../src/store/types.js";
import { deleteRedisKeys } from "../test/queue/redis-keys.js";
import { type Proc, tgzProcess } from "../test/service/process-harness.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const PG_URL = process.env.TASKSGODZILLA_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL = process.env.TASKSGODZILLA_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
/** How long the measured queue rounds of one configuration last at least. */
const QUEUE_ROUND_SECONDS = Number(process.env.BENCH_QUEUE_SECONDS ?? 6);
const STEPS_PER_RUN = 40;

const rows: [string, string][] = [];
const report = (what: string, figure: string) => {
  rows.push([what, figure]);
  console.log(`${what}: ${figure}`);
};

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? 0;

const tmp = (what: string) => mkdtempSync(join(tmpdir(), `tgz-bench-${what}-`));

/** A spec folder of `steps` replay steps, QA skipped (the queue and runner are what is measured). */
function specFile(steps: number): string {
  const dir = tmp("spec");
  writeFileSync(join(dir, "p.md"), "Do {{step_id}}.");
  const spec = {
    steps: Array.from({ length: steps }, (_, i) => ({
      id: `s${i}`,
      engine_id: "replay",
      prompt_ref: "p.md",
      inputs: { final: `done ${i}` },
      qa: { policy: "skip" },
    })),
  };
  writeFileSync(join(dir, "protocol.json"), JSON.stringify(spec));
  return join(dir, "protocol.json");
}

async function newRun(store: Store, steps: number) {
  const repo = tmp("repo");
  mkdirSync(repo, { recursive: true });
  return (await createRunFromSpec(store, { repoDir: repo, specPath: specFile(steps) })).run;
}

function started(p: Proc, pattern: RegExp) {
  return p.waitFor(pattern, 30_000);
}

// ---------------------------------------------------------------- API latency and SSE

/** One GET on a keep-alive connection; resolves with the latency in ms. */
function timedGet(agent: Agent, url: URL): Promise<number> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      res.resume();
      res.on("end", () =>
        res.statusCode === 200 ? resolve(performance.now() - t) : reject(new Error(`HTTP ${res.statusCode}`)),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

async function load(agent: Agent, url: URL, clients: number, seconds: number): Promise<number[]> {
  const latencies: number[] = [];
  const end = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (Date.now() < end) latencies.push(await timedGet(agent, url));
    }),
  );
  return latencies;
}

async function sseDelivery(base: string, store: Store, runId: number) {
  const SUBSCRIBERS = 50;
  const EVENTS = 10_000;
  const last = (await store.listEvents({ protocolRunId: runId, newestFirst: true, limit: 1 }))[0]!.id;
  const received = Array.from({ length: SUBSCRIBERS }, () => 0);
  let connected = 0;
  const done = Promise.all(
    received.map(async (_, i) => {
      const c = new AbortController();
      const res = await fetch(`${base}/protocols/${runId}/events/stream`, {
        headers: { "last-event-id": String(last) },
        signal: c.signal,
      });
      connected++;
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let buffered = "";
      while (received[i]! < EVENTS) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
        const cut = buffered.lastIndexOf("\n");
        received[i]! += (buffered.slice(0, cut + 1).match(/^id: /gm) ?? []).length;
        buffered = buffered.slice(cut + 1);
      }
      c.abort();
    }),
  );
  while (connected < SUBSCRIBERS) await sleep(20);
  const t0 = performance.now();
  for (let i = 0; i < EVENTS; i++)
    await store.appendEvent({ protocolRunId: runId, eventType: "directive", message: `t${i}` });
  const written = (performance.now() - t0) / 1000;
  await done;
  const sec = (performance.now() - t0) / 1000;
  report(
    `SSE, ${SUBSCRIBERS} subscribers, ${EVENTS} events (written in ${written.toFixed(1)} s)`,
    `${(EVENTS / sec).toFixed(0)} events/s to every subscriber = ${((EVENTS * SUBSCRIBERS) / sec).toFixed(0)} deliveries/s; all delivered ${((sec - written) * 1000).toFixed(0)} ms after the last write`,
  );
}

async function apiFigures() {
  const dbPath = join(tmp("api"), "tgz.db");
  const store = await openStore({ sqlitePath: dbPath });
  const run = await newRun(store, 5);
  for (let i = 0; i < 500; i++)
    await store.appendEvent({ protocolRunId: run.id, eventType: "directive", message: `n${i}` });
  const server = tgzProcess(["server", "--port", "0", "--no-worker"], {
    TASKSGODZILLA_DB_PATH: dbPath,
    TASKSGODZILLA_API_TOKEN: "",
  });
  try {
    const base = (await started(server, /API on (http:\/\/\S+)/))[1]!;
    // its request log goes on, unread: keeping every line would load this (the client) process
    server.child.stdout!.removeAllListeners("data").resume();
    const agent = new Agent({ keepAlive: true, maxSockets: 200 });
    const url = new URL(`${base}/protocols/${run.id}/events?limit=50`);
    await load(agent, url, 200, 2); // warm-up: connections, JIT, caches
    const latencies = await load(agent, url, 200, SECONDS);
    report(
      `API GET /protocols/{id}/events?limit=50, 200 clients, ${SECONDS} s`,
      `${(latencies.length / SECONDS).toFixed(0)} req/s, median ${pct(latencies, 50).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms`,
    );
    agent.destroy();
    await sseDelivery(base, store, run.id);
  } finally {
    await server.stop();
    await store.close();
  }
}

// ---------------------------------------------------------------- queue throughput

interface Backend {
  label: string;
  store: Store;
  queue: JobQueue;
  env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

async function sqliteBackend(): Promise<Backend> {
  const dbPath = join(tmp("queue"), "tgz.db");
  const store = await openStore({ sqlitePath: dbPath });
  return {
    label: "SQLite, embedded queue",
    store,
    queue: new StoreQueue(store),
    env: { TASKSGODZILLA_DB_PATH: dbPath },
    close: () => store.close(),
  };
}

async function postgresBackend(): Promise<Backend> {
  const schema = `bench_${process.pid}_${Date.now()}`;
  const prefix = `tgz-bench-${randomUUID()}`;
  const store = await openStore({ url: PG_URL, pgSchema: schema });
  const queue = new BullmqQueue({ url: REDIS_URL, prefix });
  return {
    label: "Postgres + BullMQ",
    store,
    queue,
    env: {
      TASKSGODZILLA_DB_URL: `${PG_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`,
      TASKSGODZILLA_REDIS_URL: REDIS_URL,
      TASKSGODZILLA_QUEUE_PREFIX: prefix,
    },
    async close() {
      await queue.close();
      await store.close();
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
      await deleteRedisKeys(REDIS_URL, prefix);
    },
  };
}

/** Queues `runs` runs of `steps` steps each and waits for all to complete; returns the seconds taken. */
async function round(b: Backend, runs: number, steps: number): Promise<number> {
  const ids: number[] = [];
  for (let i = 0; i < runs; i++) ids.push((await newRun(b.store, steps)).id);
  const t0 = performance.now();
  for (const id of ids) await b.queue.enqueue("execute_protocol", { protocol_run_id: id });
  const pending = new Set(ids);
  while (pending.size > 0) {
    await sleep(50);
    for (const r of await b.store.listProtocolRuns())
      if (pending.has(r.id) && r.status === "completed") pending.delete(r.id);
  }
  return (performance.now() - t0) / 1000;
}

/**
 * Runs `runs` runs of `steps` steps one step at a time, as a client clicking run_next_step does:
 * each step is an execute_step job of its own, the run paused after it; returns the seconds taken.
 */
async function stepRound(b: Backend, base: string, runs: number, steps: number): Promise<number> {
  const ids: number[] = [];
  for (let i = 0; i < runs; i++) ids.push((await newRun(b.store, steps)).id);
  const t0 = performance.now();
  await Promise.all(
    ids.map(async (id) => {
      for (let n = 1; n <= steps; n++) {
        const res = await fetch(`${base}/protocols/${id}/actions/run_next_step`, { method: "POST" });
        if (!res.ok) throw new Error(`run_next_step of run ${id}: HTTP ${res.status} ${await res.text()}`);
        const after = n === steps ? "completed" : "paused";
        while ((await b.store.getProtocolRun(id)).status !== after) await sleep(10);
      }
    }),
  );
  return (performance.now() - t0) / 1000;
}

/** Measured rounds until they have lasted long enough to smooth out start-up and polling. */
async function measure(
  label: string,
  runs: number,
  oneRound: (steps: number) => Promise<number>,
): Promise<void> {
  await oneRound(10); // warm-up (excluded): workers connected, code paths hot
  let steps = 0;
  let seconds = 0;
  while (seconds < QUEUE_ROUND_SECONDS) {
    seconds += await oneRound(STEPS_PER_RUN);
    steps += runs * STEPS_PER_RUN;
  }
  report(
    label,
    `${(steps / seconds).toFixed(0)} steps/s (${steps} steps, ${runs} runs at a time, ${seconds.toFixed(1)} s)`,
  );
}

async function queueFigures(open: () => Promise<Backend>, workers: number) {
  const b = await open();
  const procs = Array.from({ length: workers }, () => tgzProcess(["worker", "--concurrency", "1"], b.env));
  // the API that queues the per-step jobs; its own worker stays off, the workers above do the work
  const server = tgzProcess(["server", "--port", "0", "--no-worker"], {
    ...b.env,
    TASKSGODZILLA_API_TOKEN: "",
  });
  try {
    await Promise.all(procs.map((p) => started(p, /worker started/)));
    const base = (await started(server, /API on (http:\/\/\S+)/))[1]!;
    server.child.stdout!.removeAllListeners("data").resume();
    const runs = 4 * workers;
    const label = `queue ${b.label}, ${workers} worker process(es)`;
    await measure(`${label}, one execute_protocol job per ${STEPS_PER_RUN}-step run`, runs, (steps) =>
      round(b, runs, steps),
    );
    await measure(`${label}, one execute_step job per step (run_next_step)`, runs, (steps) =>
      stepRound(b, base, runs, steps),
    );
  } finally {
    await Promise.all([...procs, server].map((p) => p.stop()));
    await b.close();
  }
}

const t0 = Date.now();
await apiFigures();
for (const n of [1, 2, 4]) await queueFigures(sqliteBackend, n);
try {
  for (const n of [1, 2, 4]) await queueFigures(postgresBackend, n);
} catch (err) {
  report("queue Postgres + BullMQ", `skipped: ${(err as Error).message}`);
}
const width = Math.max(...rows.map(([w]) => w.length));
console.log(`\nService bench (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
for (const [what, figure] of rows) console.log(`${what.padEnd(width)}  ${figure}`);
process.exit(0);
