/**
 * The JobQueue on BullMQ (Redis) for scale-out: one BullMQ queue per job kind, workers fetch jobs by
 * hand (`getNextJob`) so the lease token is ours to heartbeat (`extendLock`) and to complete or fail
 * with; a job whose lock lapses is moved back by BullMQ's stalled check and claimed again.
 *
 * Where BullMQ differs from the port, this adapter bridges it: every job carries a BullMQ priority
 * (BullMQ serves un-prioritised jobs before all others, so "0" cannot mean "none"); a claim compares
 * the heads of every kind's queue; attempts are counted per claim (BullMQ counts failures and stalls
 * apart); cancelled jobs are removed from BullMQ but remembered in a hash of their own.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { type Job, type JobType, Queue, UnrecoverableError, Worker } from "bullmq";
import { Redis } from "ioredis";
import { isConnectionFault } from "../shared/connection-faults.js";
import { errorMessage } from "../shared/errors.js";
import type { Json } from "../store/types.js";
import {
  type ClaimedJob,
  checkEnqueueOptions,
  DEFAULT_JOB_HISTORY,
  type DeadLetterListener,
  DeadLetters,
  type EnqueueOptions,
  emptyCounts,
  JOB_KINDS,
  JOB_STATES,
  type JobFailure,
  type JobHistory,
  type JobInfo,
  type JobKind,
  type JobQueue,
  type JobState,
  PRIORITY_RANGE,
} from "./job-queue.js";
import { LeaseLostError, QueueUnavailableError } from "./queue-errors.js";

/** BullMQ's states as ours; its `failed` is final (a retry goes back to waiting or delayed), our `dead`. */
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
const OPEN_STATES = ["waiting", "prioritized", "delayed", "active", "waiting-children"];
/** The BullMQ lists that hold jobs of each of our states (none holds our `failed`, see STATE_OF). */
const BULL_TYPES: Partial<Record<JobState, JobType[]>> = {
  waiting: ["wait", "prioritized", "waiting-children"],
  delayed: ["delayed"],
  active: ["active"],
  completed: ["completed"],
  dead: ["failed"],
};

/** Our ids carry the kind, since each kind is a BullMQ queue of its own. */
const jobKey = (kind: string, id: string) => `${kind}:${id}`;
const splitKey = (key: string) => {
  const at = key.indexOf(":");
  return { kind: key.slice(0, at) as JobKind, id: key.slice(at + 1) };
};
const isKind = (kind: string): kind is JobKind => (JOB_KINDS as readonly string[]).includes(kind);

/** Ours: lower first, 0 the default, within ±PRIORITY_RANGE. BullMQ's: 1 (first) … 2^21. */
const bullPriority = (p: number) => p + PRIORITY_RANGE + 1;
/** BullMQ's score of a delayed job: due time × 2^12 + a counter. */
const DELAY_SCORE = 0x1000;

/** BullMQ reports a missing job, a missing or foreign lock as a script error with a negative code. */
const isLeaseError = (err: unknown) =>
  typeof (err as { code?: unknown })?.code === "number" && (err as { code: number }).code < 0;

export interface BullmqOptions {
  url: string;
  /** Redis key prefix; one per deployment (and per test run). */
  prefix?: string;
  /** How often lapsed locks are looked for. */
  stalledIntervalMs?: number;
  /** Connection trouble (Redis restarting): reported here while ioredis reconnects by itself. */
  onConnectionError?: (err: Error) => void;
  /** The finished jobs kept; default DEFAULT_JOB_HISTORY. */
  history?: JobHistory;
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

/** A command of ours that Redis does not answer within this fails (and the call with it). */
const COMMAND_TIMEOUT_MS = 5000;
/** How long a call waits for a connection that is being made before it fails. */
const CONNECT_WAIT_MS = 1000;
/** How long close waits for BullMQ to shut down gracefully before it drops the connections. */
const CLOSE_WAIT_MS = 2000;

/** Where Redis is, for messages: scheme, host and port (never a password). */
function redisPlace(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return "the configured Redis";
  }
}

export class BullmqQueue implements JobQueue {
  /** Every call of ours (the API's, the reconciler's, a claim's ranking): fails fast while Redis is away. */
  private readonly connection: Redis;
  /** The BullMQ workers' connections: their blocking commands wait out reconnects, as BullMQ requires. */
  private readonly workerConnections: Redis[] = [];
  private readonly queues = new Map<JobKind, Queue>();
  private readonly workers = new Map<string, Worker>();
  private readonly claimed = new Map<string, Job>();
  private readonly dead = new DeadLetters();
  private readonly onError: (err: Error) => void;

  constructor(private readonly opts: BullmqOptions) {
    // no offline queue: a command while disconnected fails at once instead of waiting for Redis
    this.connection = new Redis(opts.url, {
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      commandTimeout: COMMAND_TIMEOUT_MS,
    });
    this.onError = throttled(
      opts.onConnectionError ?? ((err) => process.stderr.write(`redis: ${err.message}; reconnecting\n`)),
    );
    this.connection.on("error", this.onError);
  }

  /**
   * Runs a call once the connection is ready: a first connection under way is waited for briefly;
   * Redis away (reconnecting, refused, timing out) is a QueueUnavailableError naming it.
   */
  private async reachable<T>(call: () => Promise<T>): Promise<T> {
    const c = this.connection;
    if (c.status === "connecting" || c.status === "connect") {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          c.off("ready", done).off("error", done);
          resolve();
        };
        const timer = setTimeout(done, CONNECT_WAIT_MS);
        c.once("ready", done).once("error", done);
      });
    }
    if (c.status !== "ready") throw this.unavailable(c.status);
    try {
      return await call();
    } catch (err) {
      if (c.status !== "ready" || isConnectionFault(err)) throw this.unavailable(errorMessage(err), err);
      throw err;
    }
  }

  /** Redis away, named (never with a password). */
  private unavailable(why: string, cause?: unknown): QueueUnavailableError {
    return new QueueUnavailableError(
      `the job queue's Redis at ${redisPlace(this.opts.url)} is not reachable (${why}); try again when it is back`,
      cause === undefined ? undefined : { cause },
    );
  }

  private get prefix() {
    return this.opts.prefix ?? "tasksgodzilla";
  }

  /** Cancelled jobs (BullMQ has no such state): our job id → JobInfo as JSON. */
  private get cancelledKey() {
    return `${this.prefix}:tgz:cancelled`;
  }

  private queue(kind: JobKind): Queue {
    let q = this.queues.get(kind);
    if (!q) {
      q = new Queue(kind, { connection: this.connection, prefix: this.prefix });
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
        prefix: this.prefix,
        lockDuration: leaseMs,
        stalledInterval: this.opts.stalledIntervalMs ?? Math.max(1000, Math.floor(leaseMs / 2)),
        // a stall is one used-up attempt of the job's own maxAttempts, counted at the next claim
        maxStalledCount: Number.MAX_SAFE_INTEGER,
        autorun: false,
      });
      w.on("error", this.onError);
      void w.startStalledCheckTimer();
      this.workers.set(key, w);
    }
    return w;
  }

  private duplicate(): Redis {
    const c = new Redis(this.opts.url, { maxRetriesPerRequest: null });
    c.on("error", this.onError);
    this.workerConnections.push(c);
    return c;
  }

  private get history(): JobHistory {
    return this.opts.history ?? DEFAULT_JOB_HISTORY;
  }

  /** A job's state, for the few calls about one job (a list knows the state of what it reads). */
  private async stateOf(job: Job): Promise<JobState> {
    return STATE_OF[await job.getState()] ?? "waiting";
  }

  private info(kind: JobKind, job: Job, state: JobState): JobInfo {
    return {
      id: jobKey(kind, String(job.id)),
      kind,
      payload: job.data as Json,
      state,
      attempts: job.attemptsStarted,
      maxAttempts: job.opts.attempts ?? 1,
      lastError: job.failedReason || null,
      createdAt: new Date(job.timestamp).toISOString(),
      updatedAt: new Date(job.finishedOn ?? job.processedOn ?? job.timestamp).toISOString(),
    };
  }

  async enqueue(
    kind: JobKind,
    payload: Json,
    opts: EnqueueOptions = {},
  ): Promise<{ id: string; deduplicated: boolean }> {
    checkEnqueueOptions(opts);
    return this.reachable(async () => {
      // a singleton job gets an id of ours, so a deduplicated add (which answers the holder's id) shows
      const jobId = opts.singletonKey === undefined ? undefined : randomUUID();
      const job = await this.queue(kind).add(kind, payload, {
        ...(jobId ? { jobId, deduplication: { id: opts.singletonKey! } } : {}),
        delay: opts.delayMs ?? 0,
        priority: bullPriority(opts.priority ?? 0),
        attempts: opts.maxAttempts ?? 3,
        backoff: { type: "exponential", delay: opts.backoffMs ?? 1000 },
        // a bounded history: BullMQ drops the older finished jobs as new ones finish
        removeOnComplete: { age: Math.ceil(this.history.finishedMs / 1000), count: this.history.perKind },
        removeOnFail: { age: Math.ceil(this.history.deadMs / 1000), count: this.history.perKind },
      });
      return { id: jobKey(kind, String(job.id)), deduplicated: jobId !== undefined && job.id !== jobId };
    });
  }

  /**
   * The kinds in the order their best runnable job should go: BullMQ orders within one queue only.
   * Each queue's head is read in one round trip (its wait list holds jobs put back by the stalled
   * check, which BullMQ serves first; then the prioritised set; then due delayed jobs).
   */
  private async rank(kinds: readonly JobKind[]): Promise<JobKind[]> {
    const now = Date.now();
    const heads = this.connection.pipeline();
    for (const kind of kinds) {
      const keys = this.queue(kind).keys;
      heads.lindex(keys.wait!, -1);
      heads.zrange(keys.prioritized!, 0, 0, "WITHSCORES");
      heads.zrange(keys.delayed!, 0, 0, "WITHSCORES");
    }
    const replies = (await this.reachable(() => heads.exec())) ?? [];
    const candidates: { kind: JobKind; id: string; first: boolean }[] = [];
    kinds.forEach((kind, i) => {
      const [wait, prioritized, delayed] = [0, 1, 2].map((k) => replies[i * 3 + k]?.[1]);
      if (typeof wait === "string") candidates.push({ kind, id: wait, first: true });
      const [pid] = (prioritized as string[] | undefined) ?? [];
      if (pid) candidates.push({ kind, id: pid, first: false });
      const [did, dscore] = (delayed as string[] | undefined) ?? [];
      if (did && Math.floor(Number(dscore) / DELAY_SCORE) <= now)
        candidates.push({ kind, id: did, first: false });
    });
    if (candidates.length === 0) return [];
    const fields = this.connection.pipeline();
    for (const c of candidates)
      fields.hmget(this.queue(c.kind).toKey(c.id), "priority", "timestamp", "delay");
    const values = (await this.reachable(() => fields.exec())) ?? [];
    const order = candidates.map((c, i) => {
      const [priority, timestamp, delay] = ((values[i]?.[1] as (string | null)[]) ?? []).map(Number);
      return {
        kind: c.kind,
        priority: c.first ? Number.NEGATIVE_INFINITY : (priority ?? 0),
        runAt: (timestamp ?? 0) + (delay ?? 0),
      };
    });
    order.sort((a, b) => a.priority - b.priority || a.runAt - b.runAt);
    return [...new Set(order.map((o) => o.kind))];
  }

  async claim(
    _workerId: string,
    leaseMs: number,
    kinds: readonly JobKind[] = JOB_KINDS,
  ): Promise<ClaimedJob | undefined> {
    // each kind's worker runs BullMQ's stalled check, which puts lapsed jobs back: start them all
    for (const kind of kinds) this.worker(kind, leaseMs);
    for (const kind of await this.rank(kinds)) {
      const token = randomUUID();
      const job = await this.worker(kind, leaseMs).getNextJob(token, { block: false });
      if (!job) continue;
      const info = this.info(kind, job, "active");
      if (job.attemptsStarted > info.maxAttempts) {
        // claimed once more than allowed: the last attempt's lease lapsed
        const reason = "lease expired with no attempts left";
        await job.moveToFailed(new UnrecoverableError(reason), token, false);
        await this.reachable(() =>
          this.connection.hincrby(this.queue(kind).toKey(String(job.id)), "ats", -1),
        );
        await this.dead.emit({ ...info, state: "dead", attempts: info.maxAttempts, lastError: reason });
        continue;
      }
      // the claimed job frees its singleton key, so work asked for from now on is queued after it
      if (job.opts.deduplication) await job.removeDeduplicationKey();
      this.claimed.set(`${info.id}#${token}`, job);
      return { ...info, state: "active", leaseToken: token, leaseExpiresAt: Date.now() + leaseMs };
    }
    return undefined;
  }

  private held(jobId: string, token: string): Job {
    const job = this.claimed.get(`${jobId}#${token}`);
    if (!job) throw new LeaseLostError(jobId);
    return job;
  }

  /** Runs a lock-checked BullMQ call: a lost lock is LeaseLostError, Redis away QueueUnavailableError. */
  private async owned<T>(jobId: string, token: string, call: (job: Job) => Promise<T>): Promise<T> {
    const job = this.held(jobId, token);
    try {
      return await call(job);
    } catch (err) {
      if (isConnectionFault(err)) throw this.unavailable(errorMessage(err), err);
      if (!isLeaseError(err)) throw err;
      this.claimed.delete(`${jobId}#${token}`);
      throw new LeaseLostError(jobId);
    }
  }

  async heartbeat(jobId: string, leaseToken: string, leaseMs: number): Promise<number> {
    // extendLock answers 0 (it does not throw) when the lock is gone or another worker's
    const extended = await this.owned(jobId, leaseToken, (job) => job.extendLock(leaseToken, leaseMs));
    if (extended !== 1) {
      this.claimed.delete(`${jobId}#${leaseToken}`);
      throw new LeaseLostError(jobId);
    }
    return Date.now() + leaseMs;
  }

  async complete(jobId: string, leaseToken: string): Promise<void> {
    await this.owned(jobId, leaseToken, (job) => job.moveToCompleted(null, leaseToken, false));
    this.claimed.delete(`${jobId}#${leaseToken}`);
  }

  async fail(jobId: string, leaseToken: string, error: JobFailure): Promise<"retrying" | "dead"> {
    const job = this.held(jobId, leaseToken);
    const retry = error.retryable && job.attemptsStarted < (job.opts.attempts ?? 1);
    // an unrecoverable error is not retried by BullMQ, whatever attempts it counts
    const reason = retry ? new Error(error.message) : new UnrecoverableError(error.message);
    await this.owned(jobId, leaseToken, () => job.moveToFailed(reason, leaseToken, false));
    this.claimed.delete(`${jobId}#${leaseToken}`);
    if (!retry)
      await this.dead.emit({ ...this.info(job.queueName as JobKind, job, "dead"), lastError: error.message });
    return retry ? "retrying" : "dead";
  }

  async release(
    jobId: string,
    leaseToken: string,
    opts: { delayMs?: number; reason?: string } = {},
  ): Promise<void> {
    const job = this.held(jobId, leaseToken);
    const delay = opts.delayMs ?? 0;
    await this.owned(jobId, leaseToken, async () => {
      if (delay > 0) await job.moveToDelayed(Date.now() + delay, leaseToken);
      else await job.moveToWait(leaseToken);
    });
    this.claimed.delete(`${jobId}#${leaseToken}`);
    // the claim counted an attempt; a hand-back is not one
    const key = this.queue(job.queueName as JobKind).toKey(String(job.id));
    const undo = this.connection.multi().hincrby(key, "ats", -1);
    if (opts.reason) undo.hset(key, "failedReason", opts.reason);
    await this.reachable(() => undo.exec());
  }

  async cancel(jobId: string): Promise<boolean> {
    return this.reachable(async () => {
      const { kind, id } = splitKey(jobId);
      if (!isKind(kind)) return false;
      const q = this.queue(kind);
      const job = await q.getJob(id);
      if (!job) return false;
      const state = await job.getState();
      if (!OPEN_STATES.includes(state)) return false;
      const info = this.info(kind, job, STATE_OF[state] ?? "waiting");
      // an active job's holder learns of it at its next heartbeat, which finds no lock
      if (state === "active") await this.connection.del(`${q.toKey(id)}:lock`);
      const removed = await job.remove().then(
        () => true,
        () => false,
      );
      if (!removed) return false;
      const cancelled: JobInfo = { ...info, state: "cancelled", updatedAt: new Date().toISOString() };
      await this.connection.hset(this.cancelledKey, jobId, JSON.stringify(cancelled));
      await this.pruneCancelled();
      return true;
    });
  }

  /** Cancelled jobs are kept like completed ones: for `finishedMs`, at most `perKind` (over all kinds). */
  private async pruneCancelled(): Promise<void> {
    if ((await this.connection.hlen(this.cancelledKey)) <= this.history.perKind) return;
    const since = new Date(Date.now() - this.history.finishedMs).toISOString();
    const kept = Object.entries(await this.connection.hgetall(this.cancelledKey))
      .map(([id, text]) => ({ id, at: (JSON.parse(text) as JobInfo).updatedAt }))
      .sort((a, b) => b.at.localeCompare(a.at));
    const old = kept.filter((c, i) => i >= this.history.perKind || c.at < since).map((c) => c.id);
    if (old.length) await this.connection.hdel(this.cancelledKey, ...old);
  }

  async get(jobId: string): Promise<JobInfo | undefined> {
    return this.reachable(async () => {
      const { kind, id } = splitKey(jobId);
      if (!isKind(kind)) return undefined;
      const job = await this.queue(kind).getJob(id);
      if (job) return this.info(kind, job, await this.stateOf(job));
      const cancelled = await this.connection.hget(this.cancelledKey, jobId);
      return cancelled ? (JSON.parse(cancelled) as JobInfo) : undefined;
    });
  }

  /** Reads only the lists of the states asked for, the newest `limit` of each, knowing their state. */
  async list(filter: { states?: JobState[]; limit?: number } = {}): Promise<JobInfo[]> {
    return this.reachable(async () => {
      const limit = filter.limit ?? 100;
      const states = filter.states?.length ? filter.states : JOB_STATES;
      const out: JobInfo[] = [];
      for (const state of states) {
        const types = BULL_TYPES[state];
        if (!types) continue;
        for (const kind of JOB_KINDS)
          for (const job of await this.queue(kind).getJobs(types, 0, limit - 1))
            out.push(this.info(kind, job, state));
      }
      if (states.includes("cancelled"))
        for (const text of Object.values(await this.connection.hgetall(this.cancelledKey)))
          out.push(JSON.parse(text) as JobInfo);
      return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, limit);
    });
  }

  async counts(): Promise<Record<JobState, number>> {
    return this.reachable(async () => {
      const out = emptyCounts();
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
      out.cancelled = await this.connection.hlen(this.cancelledKey);
      return out;
    });
  }

  onDeadLetter(listener: DeadLetterListener): void {
    this.dead.add(listener);
  }

  /** Closes gracefully, or — Redis away — after CLOSE_WAIT_MS drops the connections. */
  async close(): Promise<void> {
    const graceful = (async () => {
      await Promise.all([...this.workers.values()].map((w) => w.close(true)));
      await Promise.all([...this.queues.values()].map((q) => q.close()));
      await this.connection.quit();
    })().catch(() => undefined);
    await Promise.race([graceful, sleep(CLOSE_WAIT_MS)]);
    for (const c of [this.connection, ...this.workerConnections]) c.disconnect();
  }
}
