/**
 * Worker processes ride out their backends going away. A Redis without persistence down for longer
 * than the jobs' leases, and restarted empty, loses every job, waiting and active: the workers
 * reconnect, the steps under way run on under their runs' leases (nothing runs twice), and the
 * reconciler queues the runs whose jobs were waiting again. Postgres connections terminated while
 * a step runs are replaced; each step runs once and the run ends with no half-written state.
 */
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { BullmqQueue } from "../../src/queue/bullmq-queue.js";
import { StoreQueue } from "../../src/queue/store-queue.js";
import { openStore } from "../../src/store/open-store.js";
import type { Store } from "../../src/store/types.js";
import { gitRepo } from "../scenario/harness.js";
import { PG_URL, postgresReachable } from "../store/store-backends.js";
import {
  freePort,
  logLines,
  type Proc,
  pgSchema,
  redisServer,
  redisServerBinary,
  tgzProcess,
} from "./process-harness.js";
import { shellRun, until } from "./worker-setup.js";

const pgUp = await postgresReachable();
if (process.env.CI === "true" && (!redisServerBinary || !pgUp))
  throw new Error("redis-server and Postgres are required in CI");

const procs: Proc[] = [];
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const p of procs) await p.stop("SIGKILL");
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

/** The test's own handle on a schema the worker processes use too. */
async function sharedStore(name: string) {
  const schema = await pgSchema(name);
  const store = await openStore({ url: PG_URL, pgSchema: name });
  cleanups.push(() => schema.drop());
  cleanups.push(() => store.close());
  return { schema, store };
}

/** A run moved to running, as the API does before it queues the run's job. */
async function runningRun(store: Store, repo: string, label: string, command: string) {
  const run = await shellRun(store, repo, [{ id: "work", command }], `${label}`);
  await store.transitionProtocol(run.id, "running", { eventType: "resumed", message: "queued by the test" });
  return run;
}

const lines = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").trim().split("\n") : []);

describe.skipIf(!redisServerBinary || !pgUp)("worker processes across a Redis restart", () => {
  it("reconnect, and the runs whose jobs were waiting or active all complete, each step run once", {
    timeout: 120_000,
  }, async () => {
    const redis = redisServer(await freePort());
    cleanups.push(() => redis.kill());
    await redis.start();
    const { schema, store } = await sharedStore(`reconn_${process.pid}_${Date.now()}`);
    const prefix = `tgz-test-${randomUUID()}`;
    const repo = gitRepo();
    const log = join(repo, "steps.log");
    const runs = [];
    for (const label of ["r1", "r2", "r3", "r4"])
      runs.push(
        await runningRun(
          store,
          repo,
          `000${label[1]}-${label}`,
          `echo "start ${label} $PPID" >> ${log}; sleep 4; echo "end ${label}" >> ${log}`,
        ),
      );
    const producer = new BullmqQueue({ url: redis.url, prefix, onConnectionError: () => undefined });
    for (const r of runs)
      await producer.enqueue("execute_protocol", { protocol_run_id: r.id }, { singletonKey: `run:${r.id}` });
    await producer.close();
    const env = {
      TASKSGODZILLA_DB_URL: schema.url,
      TASKSGODZILLA_REDIS_URL: redis.url,
      TASKSGODZILLA_QUEUE_PREFIX: prefix,
      TASKSGODZILLA_RECONCILE_SECONDS: "2",
    };
    const workers = ["a", "b"].map(() => {
      const p = tgzProcess(["worker", "--lease-seconds", "3"], env);
      procs.push(p);
      return p;
    });
    await Promise.all(workers.map((w) => w.waitFor(/worker started/)));
    // two steps are running (one per worker), two jobs wait
    await until(() => lines(log).length >= 2, 20_000, "two steps started");
    expect(lines(log)).toHaveLength(2);
    await redis.kill();
    // longer than the jobs' 3 s leases
    await sleep(5000);
    await redis.start();

    for (const r of runs)
      await until(
        async () => (await store.getProtocolRun(r.id)).status === "completed",
        90_000,
        async () =>
          `run ${r.id} completed\n${(await store.listEvents({ protocolRunId: r.id })).map((e) => `${e.eventType}: ${e.message}`).join("\n")}\n${workers.map((w) => w.output.slice(-10).join("\n")).join("\n---\n")}`,
      );
    const written = lines(log);
    // every run's step started and ended exactly once: the two under way ran on through the outage
    for (const label of ["r1", "r2", "r3", "r4"]) {
      expect(written.filter((l) => l.startsWith(`start ${label} `))).toHaveLength(1);
      expect(written.filter((l) => l === `end ${label}`)).toHaveLength(1);
    }
    const started = new Set(
      written
        .filter((l) => l.startsWith("start"))
        .slice(0, 2)
        .map((l) => l.split(" ")[1]),
    );
    // the runs whose jobs were waiting are queued again; the two held by their runners are not
    const requeued = await store.listEvents({ eventTypes: ["run_requeued"] });
    const waiting = runs.filter((_, i) => !started.has(`r${i + 1}`)).map((r) => r.id);
    expect(new Set(requeued.map((e) => e.protocolRunId))).toEqual(new Set(waiting));
    // the outage was seen and reported; no engine was stopped, no job dead-lettered
    const output = workers.flatMap((w) => w.output).join("\n");
    expect(output).toMatch(/redis: .*(ECONNREFUSED|Connection is closed)/);
    expect(
      workers.flatMap((w) =>
        logLines(w, "lease lapsed while the queue was away; the job runs on under its run's lease"),
      ),
    ).toHaveLength(2);
    expect(workers.flatMap((w) => logLines(w, "lease lost; aborting the job"))).toHaveLength(0);
    expect(workers.flatMap((w) => logLines(w, "job failed; dead-lettered"))).toHaveLength(0);
    for (const r of runs)
      expect(
        await store.listEvents({ protocolRunId: r.id, eventTypes: ["step_interrupted", "step_recovered"] }),
      ).toEqual([]);
  });
});

describe.skipIf(!pgUp)("a worker process whose Postgres goes away mid-step", () => {
  it("rides it out with a logged retry, goes on with fresh connections, runs each step once and leaves no partial state", {
    timeout: 120_000,
  }, async () => {
    // a login role of the test's own, so the outage can be made for this worker alone
    const role = `tgz_drop_${process.pid}`;
    const name = `drop_${process.pid}_${Date.now()}`;
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    cleanups.push(async () => {
      await admin.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
      await admin.end();
    });
    await admin.query(`CREATE ROLE ${role} LOGIN`);
    await admin.query(`CREATE SCHEMA ${name} AUTHORIZATION ${role}`);
    const workerUrl = `${PG_URL.replace("//postgres@", `//${role}@`)}?options=${encodeURIComponent(`-c search_path=${name}`)}`;
    // the same role as the worker, so the tables are the role's whoever migrates first
    const store = await openStore({ url: workerUrl });
    cleanups.push(() => store.close());
    const repo = gitRepo();
    const log = join(repo, "steps.log");
    const step = (label: string) => `echo "start ${label}" >> ${log}; sleep 2; echo "end ${label}" >> ${log}`;
    const run = await shellRun(store, repo, [
      { id: "a", command: step("a") },
      { id: "b", command: step("b") },
    ]);
    const queue = new StoreQueue(store);
    await queue.enqueue("execute_protocol", { protocol_run_id: run.id }, { backoffMs: 500 });
    // the embedded queue on Postgres: claims, heartbeats and the runner all lose their connections
    const worker = tgzProcess(["worker", "--lease-seconds", "6"], { TASKSGODZILLA_DB_URL: workerUrl });
    procs.push(worker);
    await worker.waitFor(/worker started/);
    await until(() => lines(log).includes("start a"), 20_000, "step a started");
    await sleep(500);
    // Postgres goes away for this worker: its connections are cut and new ones refused for 2.5 s,
    // across the end of step a and at least one heartbeat
    await admin.query(`ALTER ROLE ${role} CONNECTION LIMIT 0`);
    const cut = await admin.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
      [role],
    );
    expect(cut.rowCount).toBeGreaterThan(0);
    await sleep(2500);
    await admin.query(`ALTER ROLE ${role} CONNECTION LIMIT -1`);

    await until(
      async () => (await store.getProtocolRun(run.id)).status === "completed",
      60_000,
      `run completed\n${worker.output.slice(-15).join("\n")}`,
    );
    expect(worker.output.join("\n")).toMatch(/postgres: connection lost/);
    expect(logLines(worker, "heartbeat failed; retrying while the queue is away").length).toBeGreaterThan(0);
    expect(logLines(worker, "job failed; dead-lettered")).toHaveLength(0);
    // no partial state and nothing twice: each step ran, and is recorded, once
    const steps = await store.listStepRuns(run.id);
    expect(steps.map((s) => s.status)).toEqual(["completed", "completed"]);
    const written = lines(log);
    expect(written).toEqual(["start a", "end a", "start b", "end b"]);
    const events = await store.listEvents({ protocolRunId: run.id });
    for (const s of steps) {
      const mine = events.filter((e) => e.stepRunId === s.id).map((e) => e.eventType);
      expect(mine.filter((t) => t === "step_started")).toHaveLength(1);
      expect(mine.filter((t) => t === "step_completed")).toHaveLength(1);
      expect(mine.filter((t) => t === "step_recovered" || t === "step_interrupted")).toEqual([]);
    }
    expect(events.filter((e) => e.eventType === "protocol_completed")).toHaveLength(1);
  });
});
