/**
 * The embedded job queue: a lease queue in the store's own database (SQLite by default, Postgres when
 * the store is), on the store's job repository. A claim is one conditional UPDATE, so two workers
 * never get the same job; an expired lease makes the job claimable again; a stale lease token can
 * no longer complete or fail the job.
 */
import { randomUUID } from "node:crypto";
import type { JobRow } from "../store/repositories.js";
import type { Json, Store } from "../store/types.js";
import {
  type ClaimedJob,
  checkEnqueueOptions,
  DEFAULT_JOB_HISTORY,
  type DeadLetterListener,
  DeadLetters,
  type EnqueueOptions,
  emptyCounts,
  type JobFailure,
  type JobHistory,
  type JobInfo,
  type JobKind,
  type JobQueue,
  type JobState,
} from "./job-queue.js";
import { LeaseLostError } from "./queue-errors.js";

function info(r: JobRow): JobInfo {
  return {
    id: String(r.id),
    kind: r.kind as JobKind,
    payload: r.payload,
    state: r.state,
    attempts: r.attempts,
    maxAttempts: r.maxAttempts,
    lastError: r.lastError,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

/** Job ids of this queue are the rows' numbers; anything else names no job of it. */
const rowId = (jobId: string) => (/^\d+$/.test(jobId) ? Number(jobId) : undefined);

export interface StoreQueueOptions {
  /** The finished jobs kept (by age); default DEFAULT_JOB_HISTORY. */
  history?: JobHistory;
  /** How often a claim also deletes the finished jobs past their age; default a minute. */
  pruneEveryMs?: number;
}

export class StoreQueue implements JobQueue {
  private readonly dead = new DeadLetters();
  private prunedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly store: Store,
    private readonly opts: StoreQueueOptions = {},
  ) {}

  private get rows() {
    return this.store.jobs;
  }

  /** Deletes completed and cancelled jobs older than the history keeps them, and dead ones likewise. */
  private async prune(): Promise<void> {
    const now = this.store.clock.now();
    if (now - this.prunedAt < (this.opts.pruneEveryMs ?? 60_000)) return;
    this.prunedAt = now;
    const history = this.opts.history ?? DEFAULT_JOB_HISTORY;
    await this.rows.prune(now - history.finishedMs, now - history.deadMs);
  }

  async enqueue(
    kind: JobKind,
    payload: Json,
    opts: EnqueueOptions = {},
  ): Promise<{ id: string; deduplicated: boolean }> {
    checkEnqueueOptions(opts);
    // singleton keys are per kind, as on BullMQ; a claimed job clears its key (see claim)
    const key = opts.singletonKey === undefined ? null : `${kind}:${opts.singletonKey}`;
    const found = key ? await this.rows.findWaiting(key) : undefined;
    if (found !== undefined) return { id: String(found), deduplicated: true };
    const id = await this.rows.insert({
      kind,
      payload,
      priority: opts.priority ?? 0,
      delayMs: opts.delayMs ?? 0,
      maxAttempts: opts.maxAttempts ?? 3,
      backoffMs: opts.backoffMs ?? 1000,
      singletonKey: key,
    });
    if (id !== undefined) return { id: String(id), deduplicated: false };
    // a concurrent enqueue with the same singleton key won the unique index
    const winner = key ? await this.rows.findWaiting(key) : undefined;
    if (winner === undefined) throw new Error(`job ${kind}: singleton key ${key} is held, yet no job waits`);
    return { id: String(winner), deduplicated: true };
  }

  async claim(
    workerId: string,
    leaseMs: number,
    kinds?: readonly JobKind[],
  ): Promise<ClaimedJob | undefined> {
    await this.prune();
    // a job whose lease ran out with no attempts left is dead, not claimable again
    for (const row of await this.rows.deadLetterLapsed("lease expired with no attempts left"))
      await this.dead.emit(info(row));
    const token = randomUUID();
    // the claimed job gives up its singleton key: a later enqueue queues work after this run of it
    const row = await this.rows.claim(workerId, token, leaseMs, kinds);
    if (!row) return undefined;
    return { ...info(row), leaseToken: token, leaseExpiresAt: Date.parse(row.leaseExpiresAt!) };
  }

  async heartbeat(jobId: string, leaseToken: string, leaseMs: number): Promise<number> {
    const until = await this.rows.renewLease(Number(jobId), leaseToken, leaseMs);
    if (until === undefined) throw new LeaseLostError(jobId);
    return until;
  }

  async complete(jobId: string, leaseToken: string): Promise<void> {
    if (!(await this.rows.settle(Number(jobId), leaseToken, { state: "completed" })))
      throw new LeaseLostError(jobId);
  }

  async fail(jobId: string, leaseToken: string, error: JobFailure): Promise<"retrying" | "dead"> {
    const job = await this.rows.get(Number(jobId));
    if (!job || job.leaseToken !== leaseToken || job.state !== "active") throw new LeaseLostError(jobId);
    const retry = error.retryable && job.attempts < job.maxAttempts;
    const settled = await this.rows.settle(
      job.id,
      leaseToken,
      retry
        ? { state: "delayed", delayMs: job.backoffMs * 2 ** (job.attempts - 1), lastError: error.message }
        : { state: "dead", lastError: error.message },
    );
    if (!settled) throw new LeaseLostError(jobId);
    if (!retry) await this.dead.emit({ ...info(job), state: "dead", lastError: error.message });
    return retry ? "retrying" : "dead";
  }

  async release(
    jobId: string,
    leaseToken: string,
    opts: { delayMs?: number; reason?: string } = {},
  ): Promise<void> {
    const delayMs = opts.delayMs ?? 0;
    const settled = await this.rows.settle(Number(jobId), leaseToken, {
      state: delayMs > 0 ? "delayed" : "waiting",
      delayMs,
      lastError: opts.reason ?? null,
      handBack: true,
    });
    if (!settled) throw new LeaseLostError(jobId);
  }

  async cancel(jobId: string): Promise<boolean> {
    const id = rowId(jobId);
    return id !== undefined && this.rows.cancel(id);
  }

  async get(jobId: string): Promise<JobInfo | undefined> {
    const id = rowId(jobId);
    const row = id === undefined ? undefined : await this.rows.get(id);
    return row && info(row);
  }

  async list(filter: { states?: JobState[]; limit?: number } = {}): Promise<JobInfo[]> {
    // no row is ever `failed`: a failure is retried (delayed) or dead
    const states = filter.states?.filter((s) => s !== "failed");
    if (filter.states?.length && !states?.length) return [];
    return (await this.rows.list(states, filter.limit ?? 100)).map(info);
  }

  async counts(): Promise<Record<JobState, number>> {
    const out = emptyCounts();
    for (const [state, n] of await this.rows.counts()) out[state] = n;
    return out;
  }

  onDeadLetter(listener: DeadLetterListener): void {
    this.dead.add(listener);
  }

  async close(): Promise<void> {
    // the store owns the connection
  }
}
