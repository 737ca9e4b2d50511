/**
 * Workers ride out their backends going away: a Redis server restarted under a BullMQ worker, and
 * Postgres connections killed under a worker on the embedded queue. Jobs queued afterwards still run.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { findBinary } from "../../src/engines/process/run-process.js";
import { BullmqQueue } from "../../src/queue/bullmq-queue.js";
import { StoreQueue } from "../../src/queue/store-queue.js";
import type { KyselyStore } from "../../src/store/kysely-store.js";
import { openStore } from "../../src/store/open-store.js";
import { JobWorker } from "../../src/worker/job-worker.js";
import { PG_URL, postgresReachable } from "../store/store-backends.js";

const redisServer = findBinary("redis-server");
const pgUp = await postgresReachable();
if (process.env.CI === "true" && (!redisServer || !pgUp))
  throw new Error("redis-server and Postgres are required in CI");

const portFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", () => resolve(true));
  });

async function until(check: () => Promise<boolean> | boolean, ms: number, what: string) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`timed out: ${what}`);
}

describe.skipIf(!redisServer)("a BullMQ worker across a Redis restart", () => {
  const port = 16_379 + (process.pid % 1000);
  let redis: ChildProcess | undefined;
  const startRedis = async () => {
    redis = spawn(
      redisServer!,
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { stdio: "ignore" },
    );
    await until(async () => !(await portFree(port)), 10_000, "redis up");
  };
  const stopRedis = async () => {
    const r = redis!;
    await new Promise<void>((resolve) => {
      r.once("exit", () => resolve());
      r.kill("SIGKILL");
    });
  };
  afterAll(async () => {
    if (redis && redis.exitCode === null) await stopRedis();
  });

  it("reconnects and runs jobs queued after Redis came back", { timeout: 60_000 }, async () => {
    await startRedis();
    const url = `redis://127.0.0.1:${port}`;
    const prefix = `tgz-${randomUUID()}`;
    const done: string[] = [];
    const logs: string[] = [];
    const errors: string[] = [];
    const worker = new JobWorker({
      queue: new BullmqQueue({
        url,
        prefix,
        stalledIntervalMs: 500,
        onConnectionError: (e) => errors.push(e.message),
      }),
      handlers: { spec_audit: async (job) => void done.push(String(job.payload.n)) },
      workerId: "w",
      pollMs: 100,
      log: (l) => logs.push(JSON.stringify(l)),
    });
    worker.start();
    const producer = new BullmqQueue({ url, prefix, onConnectionError: (e) => errors.push(e.message) });
    await producer.enqueue("spec_audit", { n: 1 });
    await until(() => done.includes("1"), 10_000, "first job");
    await stopRedis();
    await sleep(1500);
    await startRedis();
    await producer.enqueue("spec_audit", { n: 2 });
    await until(() => done.includes("2"), 30_000, "job after the restart");
    // the outage was seen and reported, and nothing was lost
    expect(errors.some((e) => /ECONNREFUSED|Connection is closed/.test(e))).toBe(true);
    expect(done).toEqual(["1", "2"]);
    expect(logs.some((l) => l.includes('"job failed"'))).toBe(false);
    await worker.stop();
    await producer.close();
  });
});

describe.skipIf(!pgUp)("a worker on Postgres whose connections are killed", () => {
  let store: KyselyStore | undefined;
  const schema = `drop_${process.pid}`;
  const app = `tgz-drop-${process.pid}`;
  afterAll(async () => {
    await store?.close();
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await c.end();
  });

  it("backs off, logs it, and goes on with fresh connections", { timeout: 60_000 }, async () => {
    store = await openStore({ url: `${PG_URL}?application_name=${app}`, pgSchema: schema });
    const queue = new StoreQueue(store.kysely, "postgres");
    const done: string[] = [];
    const logs: string[] = [];
    const worker = new JobWorker({
      queue,
      handlers: { spec_audit: async (job) => void done.push(String(job.payload.n)) },
      workerId: "w",
      pollMs: 100,
      log: (l) => logs.push(JSON.stringify(l)),
    });
    worker.start();
    await queue.enqueue("spec_audit", { n: 1 });
    await until(() => done.includes("1"), 10_000, "first job");
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    const killed = await admin.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
      [app],
    );
    await admin.end();
    expect(killed.rowCount).toBeGreaterThan(0);
    await until(
      async () => {
        try {
          await queue.enqueue("spec_audit", { n: 2 });
          return true;
        } catch {
          return false;
        }
      },
      20_000,
      "enqueue after the drop",
    );
    await until(() => done.includes("2"), 20_000, "job after the drop");
    await worker.stop();
  });
});
