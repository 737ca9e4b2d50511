/**
 * The worker across a database outage (a Postgres server of the test's own, stopped and started):
 * heartbeats ride it out beyond the job's lease, up to the outage budget (on fake time), and the
 * job goes on; a job stopped by the outage goes back to the queue without using up an attempt and
 * runs again once the database is back.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaseLostError } from "../../src/queue/queue-errors.js";
import { StoreQueue } from "../../src/queue/store-queue.js";
import { openStore } from "../../src/store/open-store.js";
import type { Store } from "../../src/store/types.js";
import { JobWorker } from "../../src/worker/job-worker.js";
import { type FakeClock, fakeClock } from "../support/fake-clock.js";
import { type OwnPostgres, ownPostgres, ownPostgresAvailable } from "../support/own-postgres.js";
import { freePort } from "./process-harness.js";
import { capturedLogger, until } from "./worker-setup.js";

if (process.env.CI === "true" && !ownPostgresAvailable) throw new Error("initdb is required in CI");

let pg: OwnPostgres;
const cleanups: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  if (!ownPostgresAvailable) return;
  pg = await ownPostgres(await freePort());
  await pg.start();
}, 60_000);
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await pg?.destroy();
});

let schemas = 0;
async function pgStore(clock?: FakeClock): Promise<Store> {
  const store = await openStore({
    url: pg.url,
    pgSchema: `wout_${process.pid}_${++schemas}`,
    ...(clock ? { clock } : {}),
  });
  cleanups.push(() => store.close());
  return store;
}

/** Fake time moved in steps, each followed by a moment of real time for the database calls it started. */
async function pass(clock: FakeClock, ms: number, step = 250) {
  for (let left = ms; left > 0; left -= step) {
    await clock.advance(Math.min(step, left));
    await sleep(10);
  }
}

describe.skipIf(!ownPostgresAvailable)("a worker while the database is away", () => {
  it("keeps heartbeating through an outage longer than the job's lease, and the job goes on", {
    timeout: 60_000,
  }, async () => {
    const clock = fakeClock();
    const store = await pgStore(clock);
    const queue = new StoreQueue(store);
    const { id } = await queue.enqueue("spec_audit", {});
    let finish = () => {};
    let reason: unknown;
    const log = capturedLogger();
    const worker = new JobWorker({
      queue,
      workerId: "w",
      leaseMs: 3_000,
      outageBudgetMs: 30_000,
      clock,
      logger: log.logger,
      handlers: {
        spec_audit: (_job, signal) =>
          new Promise<void>((resolve) => {
            finish = resolve;
            signal.addEventListener("abort", () => {
              reason = signal.reason;
              resolve();
            });
          }),
      },
    });
    cleanups.push(() => worker.stop({ abort: true }));
    worker.start();
    await until(async () => (await queue.get(id))?.state === "active", 5000, "job claimed");

    await pg.stop();
    await pass(clock, 20_000);
    expect(reason).toBeUndefined();
    expect(log.find("heartbeat failed; retrying while the queue is away", "warn").length).toBeGreaterThan(0);
    await pg.start();
    await pass(clock, 3_000);
    expect(log.find("heartbeat renewed after the queue was away", "info")).toHaveLength(1);
    finish();
    await until(async () => (await queue.get(id))?.state === "completed", 5000, "job completed");
    expect(reason).toBeUndefined();
    expect(await queue.get(id)).toMatchObject({ attempts: 1 });

    // past the outage budget the job is given up, as if its lease were lost
    const second = await queue.enqueue("spec_audit", {});
    await pass(clock, 1_000);
    await until(async () => (await queue.get(second.id))?.state === "active", 5000, "second job claimed");
    await pg.stop();
    await pass(clock, 35_000, 1000);
    expect(reason).toBeInstanceOf(LeaseLostError);
    expect(log.find("cannot heartbeat and the lease is lapsing; aborting the job", "error")).toHaveLength(1);
    await pg.start();
  });

  it("hands a job the outage stopped back to the queue without using up an attempt; it runs once the database is back", {
    timeout: 60_000,
  }, async () => {
    const store = await pgStore();
    // the queue in a database that stays up; the job's own work needs the one that goes away
    const queueStore = await openStore({
      sqlitePath: join(mkdtempSync(join(tmpdir(), "tgz-wout-")), "q.db"),
    });
    cleanups.push(() => queueStore.close());
    const queue = new StoreQueue(queueStore);
    const { id } = await queue.enqueue("spec_audit", {}, { maxAttempts: 1 });
    const log = capturedLogger();
    let runs = 0;
    const worker = new JobWorker({
      queue,
      workerId: "w",
      pollMs: 50,
      logger: log.logger,
      handlers: {
        spec_audit: async () => {
          runs++;
          await store.listProjects();
        },
      },
    });
    cleanups.push(() => worker.stop({ abort: true }));
    await pg.stop();
    worker.start();
    await until(() => log.find("job stopped by an outage; handed back", "warn").length, 10_000, "hand-back");
    const handedBack = await queue.get(id);
    expect(handedBack).toMatchObject({ state: "delayed", attempts: 0 });
    expect(handedBack?.lastError).toContain(`the database at postgres://postgres@127.0.0.1:${pg.port}`);
    expect(log.find("job stopped by an outage; handed back", "warn")[0]).toMatchObject({
      backend: "database",
    });
    await pg.start();
    await until(async () => (await queue.get(id))?.state === "completed", 15_000, "job completed");
    expect(log.find("job failed; dead-lettered", "error")).toHaveLength(0);
    expect(runs).toBeGreaterThanOrEqual(2);
  });
});
