/** The queue conformance suite on the embedded queue (SQLite, Postgres) and on BullMQ (Redis). */
import { randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BullmqQueue } from "../../src/queue/bullmq-queue.js";
import type { JobQueue } from "../../src/queue/job-queue.js";
import { StoreQueue } from "../../src/queue/store-queue.js";
import { openStore } from "../../src/store/open-store.js";
import type { Store } from "../../src/store/types.js";
import { dropTestSchemas, freshStore, postgresReachable } from "../store/store-backends.js";
import { fakeClock } from "../support/fake-clock.js";
import { queueConformance } from "./queue-conformance.js";
import { deleteRedisKeys } from "./redis-keys.js";

const REDIS_URL = process.env.TASKSGODZILLA_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

async function redisReachable(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(6379, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

const pgUp = await postgresReachable();
const redisUp = await redisReachable();
if (process.env.CI === "true" && (!pgUp || !redisUp))
  throw new Error("Postgres and Redis on 127.0.0.1 are required in CI");

const stores = new Map<JobQueue, Store>();
const storeQueue = async (backend: "sqlite" | "postgres") => {
  const store = await freshStore(backend);
  const queue = new StoreQueue(store);
  stores.set(queue, store);
  return queue;
};
/** A second handle on the same database, as another process would open. */
const sameDatabase = async (q: JobQueue) => {
  const store = stores.get(q)!;
  return new StoreQueue(store);
};
const redisPrefix = `tgz-test-${randomUUID()}`;
afterAll(async () => {
  for (const s of stores.values()) await s.close();
  if (pgUp) await dropTestSchemas();
  if (redisUp) await deleteRedisKeys(REDIS_URL, redisPrefix);
});

queueConformance("embedded on SQLite", () => storeQueue("sqlite"), false, sameDatabase);
queueConformance("embedded on Postgres", () => storeQueue("postgres"), !pgUp, sameDatabase);
queueConformance(
  "BullMQ on Redis",
  async () => new BullmqQueue({ url: REDIS_URL, prefix: redisPrefix, stalledIntervalMs: 300 }),
  !redisUp,
);

describe("embedded queue history", () => {
  it("deletes completed and cancelled jobs after a day, dead ones after a week, open ones never", async () => {
    const clock = fakeClock();
    const store = await openStore({
      sqlitePath: join(mkdtempSync(join(tmpdir(), "tgz-history-")), "db.sqlite"),
      clock,
    });
    // the defaults: DEFAULT_JOB_HISTORY, looked at once a minute by a claim
    const q = new StoreQueue(store);
    const done = await q.enqueue("plan", { n: 1 });
    const dead = await q.enqueue("plan", { n: 2 });
    const cancelled = await q.enqueue("plan", { n: 3 });
    const later = await q.enqueue("plan", { n: 4 }, { delayMs: 30 * 24 * 3600_000 });
    const first = await q.claim("w", 5000);
    await q.complete(first!.id, first!.leaseToken);
    const second = await q.claim("w", 5000);
    await q.fail(second!.id, second!.leaseToken, { message: "bad", retryable: false });
    await q.cancel(cancelled.id);
    const present = async () =>
      (await Promise.all([done, dead, cancelled, later].map((j) => q.get(j.id)))).map((j) => j?.state);
    expect(await present()).toEqual(["completed", "dead", "cancelled", "delayed"]);
    await clock.advance(23 * 3600_000);
    expect(await q.claim("w", 5000)).toBeUndefined();
    expect(await present()).toEqual(["completed", "dead", "cancelled", "delayed"]);
    await clock.advance(2 * 3600_000);
    expect(await q.claim("w", 5000)).toBeUndefined();
    expect(await present()).toEqual([undefined, "dead", undefined, "delayed"]);
    await clock.advance(7 * 24 * 3600_000);
    await q.claim("w", 5000);
    expect(await present()).toEqual([undefined, undefined, undefined, "delayed"]);
    await store.close();
  });
});

describe("concurrency slots", () => {
  it("never hand out more than the cap across holders of two handles on one database, and reclaim lapsed slots", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "tgz-slots-")), "db.sqlite");
    const clock = fakeClock();
    const [a, b] = [
      await openStore({ sqlitePath: path, clock }),
      await openStore({ sqlitePath: path, clock }),
    ];
    const [sa, sb] = [a.slots, b.slots];
    const tokens = await Promise.all([
      sa.acquire("engine:codex", 2, "w1", 60_000),
      sb.acquire("engine:codex", 2, "w2", 60_000),
      sa.acquire("engine:codex", 2, "w3", 60_000),
      sb.acquire("engine:codex", 2, "w4", 60_000),
    ]);
    expect(tokens.filter(Boolean)).toHaveLength(2);
    const held = tokens.find(Boolean)!;
    await sa.release("engine:codex", held);
    expect(await sb.acquire("engine:codex", 2, "w5", 10_000)).toBeDefined();
    expect(await sb.acquire("engine:codex", 2, "w6", 60_000)).toBeUndefined();
    // a renewed slot stays its holder's; one left to lapse is taken by the next acquirer
    await clock.advance(9_000);
    expect(await sa.acquire("engine:codex", 2, "w7", 60_000)).toBeUndefined();
    await clock.advance(2_000);
    expect(await sa.acquire("engine:codex", 2, "w7", 60_000)).toBeDefined();
    await a.close();
    await b.close();
  });
});
