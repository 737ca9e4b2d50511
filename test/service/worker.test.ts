/**
 * The worker on real queues and a real store: a lease taken away kills the engine's process group
 * (on both adapters), heartbeat trouble other than an outage is ridden out only while the lease
 * holds (on fake time), a graceful stop hands jobs back at once, failures are retried by their
 * kind, and a dead-lettered job blocks its run. Outages: worker-outage.test.ts.
 */
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { BullmqQueue } from "../../src/queue/bullmq-queue.js";
import type { JobQueue } from "../../src/queue/job-queue.js";
import { LeaseLostError, WorkerStoppingError } from "../../src/queue/queue-errors.js";
import { StoreQueue } from "../../src/queue/store-queue.js";
import type { Clock } from "../../src/shared/clock.js";
import { InvalidInputError } from "../../src/shared/errors.js";
import { openStore } from "../../src/store/open-store.js";
import { RunBusyError } from "../../src/store/store-errors.js";
import { blockRunOnDeadLetter } from "../../src/worker/dead-letter.js";
import { jobHandlers } from "../../src/worker/job-handlers.js";
import { type JobHandler, JobWorker } from "../../src/worker/job-worker.js";
import { deleteRedisKeys } from "../queue/redis-keys.js";
import { scenario } from "../scenario/harness.js";
import { fakeClock } from "../support/fake-clock.js";
import { waitGone } from "../support/processes.js";
import { capturedLogger, depsFor, shellRun, until } from "./worker-setup.js";

const REDIS_URL = process.env.TASKSGODZILLA_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const redisPrefix = `tgz-test-${randomUUID()}`;
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await deleteRedisKeys(REDIS_URL, redisPrefix).catch(() => undefined);
});

async function embedded() {
  const s = await scenario();
  cleanups.push(() => s.close());
  return { ...s, queue: new StoreQueue(s.store) as JobQueue };
}

function worker(
  queue: JobQueue,
  handlers: Record<string, JobHandler>,
  extra: { leaseMs?: number; clock?: Clock } = {},
) {
  const log = capturedLogger();
  const w = new JobWorker({
    queue,
    handlers,
    workerId: `w-${randomUUID().slice(0, 6)}`,
    pollMs: 50,
    logger: log.logger,
    ...extra,
  });
  cleanups.push(() => w.stop({ abort: true }));
  return { w, ...log };
}

describe.each([
  ["embedded on SQLite", (): JobQueue | undefined => undefined],
  [
    "BullMQ on Redis",
    (): JobQueue | undefined =>
      new BullmqQueue({ url: REDIS_URL, prefix: redisPrefix, stalledIntervalMs: 300 }),
  ],
])("a lost lease, %s", (_name, bullmq) => {
  it("kills the engine's process group and hands the step back", { timeout: 30_000 }, async () => {
    const s = await embedded();
    const queue = bullmq() ?? s.queue;
    cleanups.push(() => queue.close());
    const pidFile = join(s.repo, "sleep.pid");
    const run = await shellRun(s.store, s.repo, [
      { id: "slow", command: `sleep 30 & echo $! > ${pidFile}; wait` },
    ]);
    const { id } = await queue.enqueue("execute_protocol", { protocol_run_id: run.id });
    const { w, find } = worker(queue, jobHandlers(depsFor(s.store)), { leaseMs: 900 });
    w.start();
    await until(
      () => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim(),
      10_000,
      "the step's sleep",
    );
    const pid = Number(readFileSync(pidFile, "utf8"));
    // the job is taken from the worker: its next heartbeat must notice, whatever the adapter
    expect(await queue.cancel(id)).toBe(true);
    expect(await waitGone(pid, 5000)).toBe(true);
    await until(() => find("lease lost; aborting the job", "warn").length, 3000, "the lease-lost log");
    const [step] = await s.store.listStepRuns(run.id);
    await until(async () => (await s.store.getStepRun(step!.id)).status === "pending", 5000, "step pending");
    const events = await s.store.listEvents({ protocolRunId: run.id, eventTypes: ["step_interrupted"] });
    expect(events).toHaveLength(1);
  });
});

describe("heartbeats", () => {
  /** The real queue, whose heartbeat fails with a dropped connection the first `n` times. */
  const flaky = (queue: JobQueue, n: number): JobQueue => {
    let left = n;
    return new Proxy(queue, {
      get(target, prop, receiver) {
        if (prop === "heartbeat")
          return (...args: Parameters<JobQueue["heartbeat"]>) =>
            left-- > 0
              ? Promise.reject(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }))
              : target.heartbeat(...args);
        const v = Reflect.get(target, prop, receiver);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
  };

  /** A worker on fake time and a store on the same, so leases lapse as the test moves time. */
  async function onFakeTime() {
    const clock = fakeClock();
    const store = await openStore({
      sqlitePath: join(mkdtempSync(join(tmpdir(), "tgz-beat-")), "db.sqlite"),
      clock,
    });
    cleanups.push(() => store.close());
    return { clock, store, queue: new StoreQueue(store) };
  }

  it("rides out a failed heartbeat while the lease holds", async () => {
    const { clock, queue } = await onFakeTime();
    const { id } = await queue.enqueue("spec_audit", {});
    let aborted: unknown;
    let done = false;
    const { w, find } = worker(
      flaky(queue, 1),
      {
        spec_audit: async (_job, signal) => {
          await clock.sleep(1600);
          aborted = signal.reason;
          done = true;
        },
      },
      { leaseMs: 1500, clock },
    );
    w.start();
    await until(async () => (await queue.get(id))?.state === "active", 5000, "job claimed");
    for (let t = 0; t < 1700 && !done; t += 100) await clock.advance(100);
    await until(async () => (await queue.get(id))?.state === "completed", 5000, "job completed");
    expect(aborted).toBeUndefined();
    expect(find("heartbeat failed; retrying while the queue is away", "warn")).toHaveLength(1);
  });

  it("aborts when heartbeats keep failing for another reason and the lease would lapse, not at the first failure", async () => {
    const { clock, queue } = await onFakeTime();
    await queue.enqueue("spec_audit", {});
    let claimedAt = 0;
    let abortedAfter = 0;
    let reason: unknown;
    const { w, find } = worker(
      flaky(queue, 1000),
      {
        spec_audit: (_job, signal) => {
          claimedAt = clock.now();
          return new Promise<void>((resolve) =>
            signal.addEventListener("abort", () => {
              abortedAfter = clock.now() - claimedAt;
              reason = signal.reason;
              resolve();
            }),
          );
        },
      },
      { leaseMs: 1500, clock },
    );
    w.start();
    await until(() => claimedAt, 5000, "job claimed");
    for (let t = 0; t < 3000 && !reason; t += 50) await clock.advance(50);
    expect(reason).toBeInstanceOf(LeaseLostError);
    // the first beat at 500 ms fails (tolerated: the lease holds until 1500 ms); retries follow
    // with backoff until the next would come too late
    expect(abortedAfter).toBeGreaterThanOrEqual(900);
    expect(abortedAfter).toBeLessThan(1500);
    expect(find("cannot heartbeat and the lease is lapsing; aborting the job", "error")).toHaveLength(1);
  });
});

describe("stopping and failing", () => {
  it("a graceful stop hands the running job back at once, its attempt not used up", async () => {
    const s = await embedded();
    const { id } = await s.queue.enqueue("spec_audit", {}, { maxAttempts: 1 });
    let reason: unknown;
    const { w } = worker(
      s.queue,
      {
        spec_audit: (_job, signal) =>
          new Promise<void>((resolve) =>
            signal.addEventListener("abort", () => {
              reason = signal.reason;
              resolve();
            }),
          ),
      },
      { leaseMs: 30_000 },
    );
    w.start();
    await until(async () => (await s.queue.get(id))?.state === "active", 5000, "job active");
    const t = Date.now();
    await w.stop({ abort: true });
    expect(Date.now() - t).toBeLessThan(2000);
    expect(reason).toBeInstanceOf(WorkerStoppingError);
    expect(await s.queue.get(id)).toMatchObject({ state: "waiting", attempts: 0 });
    const next = await s.queue.claim("next", 5000);
    expect(next?.id).toBe(id);
  });

  it("retries a dropped connection with backoff and a warning; a bad payload is dead at once", async () => {
    const s = await embedded();
    const starts: number[] = [];
    const { id: flakyJob } = await s.queue.enqueue("execute_step", { n: 1 }, { backoffMs: 300 });
    const { id: badJob } = await s.queue.enqueue("run_qa", { n: 2 }, { maxAttempts: 3 });
    const { w, find } = worker(s.queue, {
      execute_step: async () => {
        starts.push(Date.now());
        if (starts.length === 1) throw new Error("Connection terminated unexpectedly");
      },
      run_qa: async () => {
        throw new InvalidInputError("job payload needs protocol_run_id");
      },
    });
    w.start();
    await until(async () => (await s.queue.get(flakyJob))?.state === "completed", 8000, "flaky job done");
    expect(starts).toHaveLength(2);
    expect(starts[1]! - starts[0]!).toBeGreaterThanOrEqual(300);
    expect(find("job failed; retrying with backoff", "warn")).toHaveLength(1);
    await until(async () => (await s.queue.get(badJob))?.state === "dead", 5000, "bad job dead");
    expect(await s.queue.get(badJob)).toMatchObject({ attempts: 1 });
    expect(find("job failed; dead-lettered", "error")).toHaveLength(1);
  });

  it("hands a job whose run another runner holds back for later, without using up attempts", async () => {
    const s = await embedded();
    const { id } = await s.queue.enqueue("execute_protocol", { protocol_run_id: 1 }, { maxAttempts: 1 });
    let calls = 0;
    const { w, find } = worker(s.queue, {
      execute_protocol: async () => {
        if (++calls <= 2) throw new RunBusyError(1, "elsewhere:1", 200);
      },
    });
    w.start();
    await until(async () => (await s.queue.get(id))?.state === "completed", 5000, "job done");
    expect(calls).toBe(3);
    expect(find("run busy; job handed back", "info")).toHaveLength(2);
  });
});

describe("dead letters", () => {
  it("block the run with a job_failed event, for a failure and for a lease that lapsed", async () => {
    const s = await embedded();
    const { logger } = capturedLogger();
    s.queue.onDeadLetter(blockRunOnDeadLetter(s.store, logger));
    const running = async (name: string) => {
      const run = await shellRun(s.store, s.repo, [{ id: "a", command: "true" }], name);
      await s.store.transitionProtocol(run.id, "running", {
        eventType: "protocol_started",
        message: "started",
      });
      return run;
    };
    const failing = await running("0001-failing");
    const crashed = await running("0002-crashed");
    const done = await running("0003-done");
    await s.store.transitionProtocol(done.id, "completed", {
      eventType: "protocol_completed",
      message: "done",
    });
    // a worker claimed this one and died: its only attempt's lease lapses
    await s.queue.enqueue("execute_protocol", { protocol_run_id: crashed.id }, { maxAttempts: 1 });
    expect((await s.queue.claim("dead", 200))?.payload).toEqual({ protocol_run_id: crashed.id });
    await s.queue.enqueue("execute_protocol", { protocol_run_id: failing.id }, { maxAttempts: 1 });
    await s.queue.enqueue("open_pr", { protocol_run_id: done.id }, { maxAttempts: 1 });
    await sleep(300);
    const { w } = worker(s.queue, {
      execute_protocol: async () => {
        throw new InvalidInputError("spec is broken");
      },
      open_pr: async () => {
        throw new InvalidInputError("no remote");
      },
    });
    w.start();
    for (const run of [failing, crashed])
      await until(
        async () => (await s.store.getProtocolRun(run.id)).status === "blocked",
        5000,
        `run ${run.id} blocked`,
      );
    const trail = async (runId: number) =>
      (
        await s.store.listEvents({ protocolRunId: runId, eventTypes: ["job_failed", "protocol_blocked"] })
      ).map((e) => [e.eventType, e.metadata.error ?? e.metadata.reason]);
    expect(await trail(failing.id)).toEqual([
      ["job_failed", "spec is broken"],
      ["protocol_blocked", "spec is broken"],
    ]);
    expect(await trail(crashed.id)).toEqual([
      ["job_failed", "lease expired with no attempts left"],
      ["protocol_blocked", "lease expired with no attempts left"],
    ]);
    // a finished run only records the failure
    await until(async () => (await trail(done.id)).length, 5000, "job_failed on the completed run");
    expect(await trail(done.id)).toEqual([["job_failed", "no remote"]]);
    expect((await s.store.getProtocolRun(done.id)).status).toBe("completed");
  });
});
