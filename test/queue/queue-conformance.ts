/** One behaviour suite every JobQueue adapter must pass. */
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobInfo, JobQueue } from "../../src/queue/job-queue.js";
import { LeaseLostError } from "../../src/queue/queue-errors.js";
import { InvalidInputError } from "../../src/shared/errors.js";

/** Claims until a job comes or `ms` pass (adapters reclaim lapsed leases on their own schedule). */
async function claimWithin(q: JobQueue, worker: string, leaseMs: number, ms: number) {
  const end = Date.now() + ms;
  for (;;) {
    const job = await q.claim(worker, leaseMs);
    if (job || Date.now() > end) return job;
    await sleep(100);
  }
}

/**
 * `open` gives the queue under test; `another` a second handle on the same backend, as another
 * process would have (default: `open` again, for adapters whose `open` reaches shared state).
 */
export function queueConformance(
  name: string,
  open: () => Promise<JobQueue>,
  skip = false,
  another: (q: JobQueue) => Promise<JobQueue> = () => open(),
) {
  describe.skipIf(skip)(`job queue: ${name}`, () => {
    let q: JobQueue;
    const deadLettered: JobInfo[] = [];
    beforeAll(async () => {
      q = await open();
      q.onDeadLetter(async (job) => void deadLettered.push(job));
    });
    afterAll(() => q?.close());

    const drain = async () => {
      for (let job = await q.claim("drain", 5000); job; job = await q.claim("drain", 5000))
        await q.complete(job.id, job.leaseToken);
    };

    it("hands out jobs by priority across kinds (negative first), holds delayed ones until due, never twice", async () => {
      await drain();
      await q.enqueue("execute_protocol", { n: "low" }, { priority: 5 });
      await q.enqueue("plan", { n: "default" });
      await q.enqueue("spec_audit", { n: "high" }, { priority: 1 });
      await q.enqueue("open_pr", { n: "urgent" }, { priority: -1 });
      await q.enqueue("execute_protocol", { n: "later" }, { delayMs: 700 });
      const order = [];
      for (let i = 0; i < 4; i++) order.push(await q.claim(`w${i}`, 5000));
      expect(order.map((j) => j?.payload.n)).toEqual(["urgent", "default", "high", "low"]);
      expect(order[0]?.state).toBe("active");
      expect(await q.claim("w5", 5000)).toBeUndefined();
      const later = await claimWithin(q, "w5", 5000, 3000);
      expect(later?.payload.n).toBe("later");
      for (const j of [...order, later]) await q.complete(j!.id, j!.leaseToken);
      expect((await q.get(order[0]!.id))?.state).toBe("completed");
    });

    it("refuses a priority out of range", async () => {
      await expect(q.enqueue("plan", {}, { priority: 5_000_000 })).rejects.toThrow(InvalidInputError);
    });

    it("keeps one waiting job per singleton key, and queues a new one while the first is active", async () => {
      await drain();
      const first = await q.enqueue("plan", { run: 1 }, { singletonKey: "plan:run-1" });
      const again = await q.enqueue("plan", { run: 1 }, { singletonKey: "plan:run-1" });
      expect(again).toEqual({ id: first.id, deduplicated: true });
      const job = await q.claim("w1", 5000, ["plan"]);
      expect(job?.id).toBe(first.id);
      // asked for while the first runs: not merged into it, not lost
      const next = await q.enqueue("plan", { run: 1, resume: true }, { singletonKey: "plan:run-1" });
      expect(next.deduplicated).toBe(false);
      expect(next.id).not.toBe(first.id);
      expect(await q.enqueue("plan", { run: 1 }, { singletonKey: "plan:run-1" })).toEqual({
        id: next.id,
        deduplicated: true,
      });
      await q.complete(job!.id, job!.leaseToken);
      const second = await q.claim("w1", 5000, ["plan"]);
      expect(second?.payload).toEqual({ run: 1, resume: true });
      await q.complete(second!.id, second!.leaseToken);
      await drain();
    });

    it("gives a job whose lease lapsed to another worker; the first worker's next heartbeat fails", async () => {
      await drain();
      const { id } = await q.enqueue("open_pr", { run: 7 }, { maxAttempts: 5 });
      const first = await q.claim("dead-worker", 1000, ["open_pr"]);
      expect(first?.id).toBe(id);
      const second = await claimWithin(q, "live-worker", 5000, 8000);
      expect(second?.id).toBe(id);
      expect(second!.attempts).toBeGreaterThan(first!.attempts);
      // nothing in between: the heartbeat alone must tell the first worker it lost the job
      await expect(q.heartbeat(first!.id, first!.leaseToken, 1000)).rejects.toThrow(LeaseLostError);
      await expect(q.complete(first!.id, first!.leaseToken)).rejects.toThrow(LeaseLostError);
      await q.heartbeat(second!.id, second!.leaseToken, 5000);
      await q.complete(second!.id, second!.leaseToken);
    });

    it("lets a worker that never claimed before (another process) take over a lapsed job", async () => {
      await drain();
      const { id } = await q.enqueue("plan", { crashed: true }, { maxAttempts: 5 });
      expect((await q.claim("dead-worker", 1000))?.id).toBe(id);
      const other = await another(q);
      try {
        const job = await claimWithin(other, "fresh-worker", 5000, 8000);
        expect(job?.id).toBe(id);
        await other.complete(job!.id, job!.leaseToken);
      } finally {
        await other.close();
      }
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
      deadLettered.length = 0;
      const { id } = await q.enqueue("import", { x: 1 }, { maxAttempts: 2, backoffMs: 300 });
      const one = await q.claim("w", 5000, ["import"]);
      expect(await q.fail(one!.id, one!.leaseToken, { message: "flaky", retryable: true })).toBe("retrying");
      const failedAt = Date.now();
      const two = await claimWithin(q, "w", 5000, 3000);
      expect(two?.id).toBe(id);
      expect(Date.now() - failedAt).toBeGreaterThanOrEqual(250);
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
      expect(deadLettered.map((j) => [j.id, j.state, j.lastError])).toEqual([
        [id, "dead", "flaky again"],
        [fatal, "dead", "bad input"],
      ]);
    });

    it("dead-letters a job whose last attempt's lease lapsed, once, instead of running it again", async () => {
      await drain();
      deadLettered.length = 0;
      const { id } = await q.enqueue("run_qa", { poison: true }, { maxAttempts: 2 });
      const one = await q.claim("crashing-1", 500, ["run_qa"]);
      const two = await claimWithin(q, "crashing-2", 500, 8000);
      expect([one?.id, two?.id]).toEqual([id, id]);
      const end = Date.now() + 8000;
      while (Date.now() < end && (await q.get(id))?.state !== "dead") {
        expect(await q.claim("w", 500, ["run_qa"])).toBeUndefined();
        await sleep(100);
      }
      expect(await q.get(id)).toMatchObject({ state: "dead", attempts: 2 });
      expect(deadLettered.map((j) => j.id)).toEqual([id]);
    });

    it("hands a released job back without using up an attempt, at once or after a delay", async () => {
      await drain();
      const { id } = await q.enqueue("execute_step", { s: 1 }, { maxAttempts: 1 });
      const one = await q.claim("stopping", 5000, ["execute_step"]);
      await q.release(one!.id, one!.leaseToken);
      await expect(q.heartbeat(one!.id, one!.leaseToken, 5000)).rejects.toThrow(LeaseLostError);
      const two = await q.claim("next", 5000, ["execute_step"]);
      expect(two).toMatchObject({ id, attempts: 1 });
      await q.release(two!.id, two!.leaseToken, { delayMs: 600, reason: "run busy" });
      expect(await q.claim("next", 5000, ["execute_step"])).toBeUndefined();
      const three = await claimWithin(q, "next", 5000, 3000);
      expect(three).toMatchObject({ id, attempts: 1 });
      await q.complete(three!.id, three!.leaseToken);
    });

    it("cancels waiting and active jobs, keeps them as cancelled, and counts jobs by state", async () => {
      await drain();
      const before = await q.counts();
      const { id } = await q.enqueue("execute_protocol", { c: 1 });
      expect(await q.cancel(id)).toBe(true);
      expect((await q.get(id))?.state).toBe("cancelled");
      expect(await q.claim("w", 5000)).toBeUndefined();
      const { id: running } = await q.enqueue("execute_protocol", { c: "active" });
      const held = await q.claim("w", 5000);
      expect(held?.id).toBe(running);
      expect(await q.cancel(running)).toBe(true);
      await expect(q.heartbeat(held!.id, held!.leaseToken, 5000)).rejects.toThrow(LeaseLostError);
      await expect(q.complete(held!.id, held!.leaseToken)).rejects.toThrow(LeaseLostError);
      expect(await q.get(running)).toMatchObject({ state: "cancelled", payload: { c: "active" } });
      expect(await q.cancel(running)).toBe(false);
      await q.enqueue("execute_protocol", { c: 2 });
      const counts = await q.counts();
      expect(counts.waiting).toBe(1);
      expect(counts.cancelled).toBe(before.cancelled + 2);
      expect(counts.dead).toBeGreaterThanOrEqual(3);
      expect((await q.list({ states: ["waiting"] })).map((j) => j.payload)).toEqual([{ c: 2 }]);
      expect((await q.list({ states: ["cancelled"] })).map((j) => j.id).sort()).toEqual([id, running].sort());
      await drain();
    });
  });
}
