/**
 * The JobQueue on BullMQ (Redis) for scale-out: one BullMQ queue per job kind, workers fetch jobs by
 * hand (`getNextJob`) so the lease token is ours to heartbeat (`extendLock`) and to complete or fail
 * with; a job whose lock lapses is moved back by BullMQ's stalled check and claimed again.
 */
import { randomUUID } from "node:crypto";
import { type Job, Queue, UnrecoverableError, Worker } from "bullmq";
import { Redis } from "ioredis";
import type { Json } from "../store/types.js";
import {
  type ClaimedJob,
  type EnqueueOptions,
  JOB_KINDS,
  type JobInfo,
  type JobKind,
  type JobQueue,
  type JobState,
} from "./job-queue.js";
import { LeaseLostError } from "./queue-errors.js";

const STATE_OF: Record<string, JobState> = {
  waiting: "waiting",
  prioritized: "waiting",
  "waiting-children": "waiting",
  paused: "waiting",
  delayed: "delayed",
  active: "active",
  completed: "completed",
  failed: "dead",
};

/** Our ids carry the kind, since each kind is a BullMQ queue of its own. */
const jobKey = (kind: string, id: string) => `${kind}:${id}`;
const splitKey = (key: string) => {
  const at = key.indexOf(":");
  return { kind: key.slice(0, at) as JobKind, id: key.slice(at + 1) };
};

export interface BullmqOptions {
  url: string;
  /** Redis key prefix; one per deployment (and per test run). */
  prefix?: string;
  /** How often lapsed locks are looked for. */
  stalledIntervalMs?: number;
  /** Connection trouble (Redis restarting): reported here while ioredis reconnects by itself. */
  onConnectionError?: (err: Error) => void;
}

/** Reports a burst of identical reconnect errors once, not once per retry. */
function throttled(report: (err: Error) => void, everyMs = 5000): (err: Error) => void {
  let last = 0;
  return (err) => {
    if (Date.now() - last < everyMs) return;
    last = Date.now();
    report(err);
  };
}

export class BullmqQueue implements JobQueue {
  private readonly connection: Redis;
  private readonly queues = new Map<JobKind, Queue>();
  private readonly workers = new Map<string, Worker>();
  private readonly claimed = new Map<string, Job>();

  constructor(private readonly opts: BullmqOptions) {
    // BullMQ needs maxRetriesPerRequest null so blocking commands survive reconnects
    this.connection = new Redis(opts.url, { maxRetriesPerRequest: null, lazyConnect: false });
    this.onError = throttled(
      opts.onConnectionError ?? ((err) => process.stderr.write(`redis: ${err.message}; reconnecting\n`)),
    );
    this.connection.on("error", this.onError);
  }

  private readonly onError: (err: Error) => void;

  private queue(kind: JobKind): Queue {
    let q = this.queues.get(kind);
    if (!q) {
      q = new Queue(kind, { connection: this.connection, prefix: this.opts.prefix ?? "tasksgodzilla" });
      q.on("error", this.onError);
      this.queues.set(kind, q);
    }
    return q;
  }

  private worker(kind: JobKind, leaseMs: number): Worker {
    const key = `${kind}:${leaseMs}`;
    let w = this.workers.get(key);
    if (!w) {
      w = new Worker(kind, null, {
        connection: this.duplicate(),
        prefix: this.opts.prefix ?? "tasksgodzilla",
        lockDuration: leaseMs,
        stalledInterval: this.opts.stalledIntervalMs ?? Math.max(1000, Math.floor(leaseMs / 2)),
        maxStalledCount: 1000,
        autorun: false,
      });
      w.on("error", this.onError);
      void w.startStalledCheckTimer();
      this.workers.set(key, w);
    }
    return w;
  }

  private duplicate(): Redis {
    const c = this.connection.duplicate();
    c.on("error", this.onError);
    return c;
  }

  private async info(kind: JobKind, job: Job): Promise<JobInfo> {
    const state = STATE_OF[await job.getState()] ?? "waiting";
    return {
      id: jobKey(kind, String(job.id)),
      kind,
      payload: job.data as Json,
      state,
      attempts: job.attemptsStarted,
      maxAttempts: job.opts.attempts ?? 1,
      lastError: job.failedReason ?? null,
      createdAt: new Date(job.timestamp).toISOString(),
      updatedAt: new Date(job.finishedOn ?? job.processedOn ?? job.timestamp).toISOString(),
    };
  }

  async enqueue(
    kind: JobKind,
    payload: Json,
    opts: EnqueueOptions = {},
  ): Promise<{ id: string; deduplicated: boolean }> {
    const q = this.queue(kind);
    const jobId = opts.singletonKey ? `singleton-${opts.singletonKey.replace(/:/g, "_")}` : undefined;
    if (jobId) {
      const existing = await q.getJob(jobId);
      if (existing) {
        const state = await existing.getState();
        if (["waiting", "prioritized", "delayed", "active", "waiting-children"].includes(state))
          return { id: jobKey(kind, jobId), deduplicated: true };
        await existing.remove();
      }
    }
    const job = await q.add(kind, payload, {
      ...(jobId ? { jobId } : {}),
      delay: opts.delayMs ?? 0,
      // BullMQ: 0 means no priority and 1 is the highest; ours: lower runs first, 0 the default
      ...(opts.priority ? { priority: Math.max(1, opts.priority + 1000) } : {}),
      attempts: opts.maxAttempts ?? 3,
      backoff: { type: "exponential", delay: opts.backoffMs ?? 1000 },
    });
    return { id: jobKey(kind, String(job.id)), deduplicated: false };
  }

  async claim(
    _workerId: string,
    leaseMs: number,
    kinds: readonly JobKind[] = JOB_KINDS,
  ): Promise<ClaimedJob | undefined> {
    for (const kind of kinds) {
      const token = randomUUID();
      const job = await this.worker(kind, leaseMs).getNextJob(token, { block: false });
      if (!job) continue;
      const id = jobKey(kind, String(job.id));
      this.claimed.set(`${id}#${token}`, job);
      return { ...(await this.info(kind, job)), id, leaseToken: token, leaseExpiresAt: Date.now() + leaseMs };
    }
    return undefined;
  }

  private held(jobId: string, token: string): Job {
    const job = this.claimed.get(`${jobId}#${token}`);
    if (!job) throw new LeaseLostError(jobId);
    return job;
  }

  async heartbeat(jobId: string, leaseToken: string, leaseMs: number): Promise<number> {
    const job = this.held(jobId, leaseToken);
    try {
      await job.extendLock(leaseToken, leaseMs);
    } catch {
      this.claimed.delete(`${jobId}#${leaseToken}`);
      throw new LeaseLostError(jobId);
    }
    return Date.now() + leaseMs;
  }

  async complete(jobId: string, leaseToken: string): Promise<void> {
    const job = this.held(jobId, leaseToken);
    this.claimed.delete(`${jobId}#${leaseToken}`);
    try {
      await job.moveToCompleted(null, leaseToken, false);
    } catch {
      throw new LeaseLostError(jobId);
    }
  }

  async fail(
    jobId: string,
    leaseToken: string,
    error: { message: string; retryable: boolean },
  ): Promise<"retrying" | "dead"> {
    const job = this.held(jobId, leaseToken);
    this.claimed.delete(`${jobId}#${leaseToken}`);
    try {
      // an unrecoverable error is not retried, whatever attempts remain
      await job.moveToFailed(
        error.retryable ? new Error(error.message) : new UnrecoverableError(error.message),
        leaseToken,
        false,
      );
    } catch {
      throw new LeaseLostError(jobId);
    }
    const state = await job.getState();
    return state === "failed" ? "dead" : "retrying";
  }

  async cancel(jobId: string): Promise<boolean> {
    const { kind, id } = splitKey(jobId);
    const job = await this.queue(kind).getJob(id);
    if (!job || !["waiting", "prioritized", "delayed"].includes(await job.getState())) return false;
    await job.remove();
    return true;
  }

  async get(jobId: string): Promise<JobInfo | undefined> {
    const { kind, id } = splitKey(jobId);
    if (!(JOB_KINDS as readonly string[]).includes(kind)) return undefined;
    const job = await this.queue(kind).getJob(id);
    return job ? this.info(kind, job) : undefined;
  }

  async list(filter: { states?: JobState[]; limit?: number } = {}): Promise<JobInfo[]> {
    const out: JobInfo[] = [];
    for (const kind of JOB_KINDS) {
      const jobs = await this.queue(kind).getJobs(
        ["waiting", "prioritized", "delayed", "active", "completed", "failed"],
        0,
        (filter.limit ?? 100) - 1,
      );
      for (const job of jobs) {
        const i = await this.info(kind, job);
        if (!filter.states?.length || filter.states.includes(i.state)) out.push(i);
      }
    }
    return out.slice(0, filter.limit ?? 100);
  }

  async counts(): Promise<Record<JobState, number>> {
    const out: Record<JobState, number> = {
      waiting: 0,
      delayed: 0,
      active: 0,
      completed: 0,
      failed: 0,
      dead: 0,
      cancelled: 0,
    };
    for (const kind of JOB_KINDS) {
      const c = await this.queue(kind).getJobCounts(
        "waiting",
        "prioritized",
        "delayed",
        "active",
        "completed",
        "failed",
      );
      out.waiting += (c.waiting ?? 0) + (c.prioritized ?? 0);
      out.delayed += c.delayed ?? 0;
      out.active += c.active ?? 0;
      out.completed += c.completed ?? 0;
      out.dead += c.failed ?? 0;
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.workers.values()].map((w) => w.close(true)));
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    await this.connection.quit().catch(() => undefined);
  }
}
