/** One behaviour suite every JobQueue adapter must pass. */
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobQueue } from "../../src/queue/job-queue.js";
import { LeaseLostError } from "../../src/queue/queue-errors.js";

/** Claims until a job comes or `ms` pass (adapters reclaim lapsed leases on their own schedule). */
async function claimWithin(q: JobQueue, worker: string, leaseMs: number, ms: number) {
  const end = Date.now() + ms;
  for (;;) {
    const job = await q.claim(worker, leaseMs);
    if (job || Date.now() > end) return job;
    await sleep(100);
  }
}

export function queueConformance(name: string, open: () => Promise<JobQueue>, skip = false) {
  describe.skipIf(skip)(`job queue: ${name}`, () => {
    let q: JobQueue;
    beforeAll(async () => {
      q = await open();
    });
    afterAll(() => q?.close());

    const drain = async () => {
      for (let job = await q.claim("drain", 5000); job; job = await q.claim("drain", 5000))
        await q.complete(job.id, job.leaseToken);
    };

    it("hands out jobs by priority, holds delayed ones until due, and never twice", async () => {
      await drain();
      await q.enqueue("execute_protocol", { n: "low" }, { priority: 5 });
      await q.enqueue("execute_protocol", { n: "high" }, { priority: 1 });
      await q.enqueue("execute_protocol", { n: "later" }, { delayMs: 700 });
      const a = await q.claim("w1", 5000);
      const b = await q.claim("w2", 5000);
      expect([a?.payload.n, b?.payload.n]).toEqual(["high", "low"]);
      expect(a?.state).toBe("active");
      expect(await q.claim("w3", 5000)).toBeUndefined();
      const c = await claimWithin(q, "w3", 5000, 3000);
      expect(c?.payload.n).toBe("later");
      for (const j of [a!, b!, c!]) await q.complete(j.id, j.leaseToken);
      expect((await q.get(a!.id))?.state).toBe("completed");
    });

    it("keeps one waiting job per singleton key", async () => {
      const first = await q.enqueue("plan", { run: 1 }, { singletonKey: "plan:run-1" });
      const again = await q.enqueue("plan", { run: 1 }, { singletonKey: "plan:run-1" });
      expect(again).toEqual({ id: first.id, deduplicated: true });
      const job = await q.claim("w1", 5000, ["plan"]);
      expect(job?.id).toBe(first.id);
      await q.complete(job!.id, job!.leaseToken);
      expect((await q.enqueue("plan", { run: 1 }, { singletonKey: "plan:run-1" })).deduplicated).toBe(false);
      await drain();
    });

    it("gives a job whose lease lapsed to another worker, and rejects the stale token", async () => {
      await drain();
      const { id } = await q.enqueue("open_pr", { run: 7 }, { maxAttempts: 5 });
      const first = await q.claim("dead-worker", 1000, ["open_pr"]);
      expect(first?.id).toBe(id);
      const second = await claimWithin(q, "live-worker", 5000, 8000);
      expect(second?.id).toBe(id);
      expect(second!.attempts).toBeGreaterThan(first!.attempts);
      await expect(q.complete(first!.id, first!.leaseToken)).rejects.toThrow(LeaseLostError);
      await expect(q.heartbeat(first!.id, first!.leaseToken, 1000)).rejects.toThrow(LeaseLostError);
      await q.complete(second!.id, second!.leaseToken);
    });

    it("extends a lease on heartbeat, so nobody else gets the job", async () => {
      await drain();
      await q.enqueue("spec_audit", {});
      const job = await q.claim("w1", 1000, ["spec_audit"]);
      for (let i = 0; i < 6; i++) {
        await sleep(400);
        await q.heartbeat(job!.id, job!.leaseToken, 1000);
      }
      expect(await q.claim("w2", 1000, ["spec_audit"])).toBeUndefined();
      await q.complete(job!.id, job!.leaseToken);
    });

    it("retries a retryable failure with backoff, then dead-letters; a non-retryable one at once", async () => {
      await drain();
      const { id } = await q.enqueue("import", { x: 1 }, { maxAttempts: 2, backoffMs: 100 });
      const one = await q.claim("w", 5000, ["import"]);
      expect(await q.fail(one!.id, one!.leaseToken, { message: "flaky", retryable: true })).toBe("retrying");
      const two = await claimWithin(q, "w", 5000, 3000);
      expect(two?.id).toBe(id);
      expect(await q.fail(two!.id, two!.leaseToken, { message: "flaky again", retryable: true })).toBe(
        "dead",
      );
      expect(await q.get(id)).toMatchObject({ state: "dead", lastError: "flaky again" });
      const { id: fatal } = await q.enqueue("import", { x: 2 }, { maxAttempts: 5 });
      const three = await q.claim("w", 5000, ["import"]);
      expect(await q.fail(three!.id, three!.leaseToken, { message: "bad input", retryable: false })).toBe(
        "dead",
      );
      expect((await q.get(fatal))?.state).toBe("dead");
    });

    it("cancels a waiting job and counts jobs by state", async () => {
      await drain();
      const { id } = await q.enqueue("execute_protocol", { c: 1 });
      expect(await q.cancel(id)).toBe(true);
      expect(await q.claim("w", 5000)).toBeUndefined();
      await q.enqueue("execute_protocol", { c: 2 });
      const counts = await q.counts();
      expect(counts.waiting).toBe(1);
      expect(counts.dead).toBeGreaterThanOrEqual(2);
      expect((await q.list({ states: ["waiting"] })).map((j) => j.payload)).toEqual([{ c: 2 }]);
      await drain();
    });
  });
}
