/**
 * BullMQ on a redis-server of the test's own: a bounded history of finished jobs, lists that read only
 * the states asked for (counted in Redis's own command statistics), and calls that fail fast with a
 * clear error while Redis is away.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BullmqQueue } from "../../src/queue/bullmq-queue.js";
import { freePort, redisServer, redisServerBinary } from "../service/process-harness.js";

const redis = redisServer(await freePort());
const queues: BullmqQueue[] = [];
const open = (opts: Partial<ConstructorParameters<typeof BullmqQueue>[0]> = {}) => {
  const q = new BullmqQueue({
    url: redis.url,
    prefix: `t${queues.length}`,
    onConnectionError: () => {},
    ...opts,
  });
  queues.push(q);
  return q;
};

beforeAll(() => redis.start());
afterAll(async () => {
  for (const q of queues) await q.close();
  await redis.kill();
});

/** Commands Redis has run so far (INFO itself left out). */
async function commandsRun(): Promise<number> {
  const client = new Redis(redis.url);
  const info = await client.info("commandstats");
  client.disconnect();
  return [...info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)]
    .filter(([, name]) => name !== "info")
    .reduce((n, [, , calls]) => n + Number(calls), 0);
}

describe.skipIf(!redisServerBinary)("BullMQ on a redis-server of its own", () => {
  it("keeps a bounded history: at most perKind finished jobs of each kind", async () => {
    const q = open({ history: { finishedMs: 3_600_000, deadMs: 3_600_000, perKind: 2 } });
    for (let i = 0; i < 5; i++) await q.enqueue("plan", { i });
    for (let job = await q.claim("w", 5000); job; job = await q.claim("w", 5000))
      await q.complete(job.id, job.leaseToken);
    for (let i = 0; i < 4; i++) await q.enqueue("open_pr", { i });
    for (let job = await q.claim("w", 5000); job; job = await q.claim("w", 5000))
      await q.fail(job.id, job.leaseToken, { message: "no", retryable: false });
    const counts = await q.counts();
    expect([counts.completed, counts.dead]).toEqual([2, 2]);
    expect((await q.list({ states: ["completed"] })).map((j) => j.payload)).toEqual([{ i: 4 }, { i: 3 }]);
  });

  it("lists open jobs without reading the finished ones, however many there are", async () => {
    const q = open();
    for (let i = 0; i < 300; i++) await q.enqueue("execute_step", { i });
    for (let job = await q.claim("w", 5000); job; job = await q.claim("w", 5000))
      await q.complete(job.id, job.leaseToken);
    await q.enqueue("execute_protocol", { open: true });
    const before = await commandsRun();
    const open_ = await q.list({ states: ["waiting", "delayed", "active"], limit: 10_000 });
    const spent = (await commandsRun()) - before;
    expect(open_.map((j) => [j.kind, j.state, j.payload])).toEqual([
      ["execute_protocol", "waiting", { open: true }],
    ]);
    // a few range reads per kind and state, not one or two per finished job
    expect(spent).toBeLessThan(100);
    expect((await q.list({ states: ["completed"], limit: 1000 })).length).toBe(300);
  });
});
