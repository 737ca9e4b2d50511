/**
 * The JobQueue port: how the server hands work to workers. Adapters (the embedded lease queue on the
 * store's database, BullMQ on Redis) pass one conformance suite. Delivery is at-least-once, so every
 * job handler must be idempotent; the lease token is what makes a late completion from a dead worker
 * harmless.
 */
import { InvalidInputError } from "../shared/errors.js";
import type { Json } from "../store/types.js";

export const JOB_KINDS = [
  "plan",
  "execute_protocol",
  "execute_step",
  "run_qa",
  "open_pr",
  "import",
  "spec_audit",
] as const;
export type JobKind = (typeof JOB_KINDS)[number];

export type JobState = "waiting" | "delayed" | "active" | "completed" | "failed" | "dead" | "cancelled";

export const JOB_STATES: readonly JobState[] = [
  "waiting",
  "delayed",
  "active",
  "completed",
  "failed",
  "dead",
  "cancelled",
];

/** Priorities BullMQ can order (it has 2^21 levels); the embedded queue keeps to the same range. */
export const PRIORITY_RANGE = 1_000_000;

export interface EnqueueOptions {
  delayMs?: number;
  /** Lower runs first, across every kind; default 0; within ±PRIORITY_RANGE. */
  priority?: number;
  /**
   * At most one waiting (or delayed) job of this kind per key: a second enqueue returns the first
   * job. A claimed job frees its key, so work asked for while a job runs is queued after it.
   */
  singletonKey?: string;
  /** Claims before the job is dead-lettered (failures and lapsed leases alike); default 3. */
  maxAttempts?: number;
  /** Base of the exponential retry backoff; default 1000 ms. */
  backoffMs?: number;
}

export function checkEnqueueOptions(opts: EnqueueOptions): void {
  const p = opts.priority ?? 0;
  if (!Number.isInteger(p) || Math.abs(p) > PRIORITY_RANGE)
    throw new InvalidInputError(`job priority must be an integer within ±${PRIORITY_RANGE}, got ${p}`);
  const attempts = opts.maxAttempts ?? 3;
  if (!Number.isInteger(attempts) || attempts < 1)
    throw new InvalidInputError(`job maxAttempts must be a positive integer, got ${attempts}`);
}

/**
 * How much of the finished jobs a queue keeps: completed and cancelled ones for `finishedMs`, dead
 * ones (what someone looks into) for `deadMs`; BullMQ also keeps at most `perKind` of each per kind.
 */
export interface JobHistory {
  finishedMs: number;
  deadMs: number;
  perKind: number;
}

export const DEFAULT_JOB_HISTORY: JobHistory = {
  finishedMs: 24 * 3600_000,
  deadMs: 7 * 24 * 3600_000,
  perKind: 1000,
};

export interface JobInfo {
  id: string;
  kind: JobKind;
  payload: Json;
  state: JobState;
  attempts: number;
  maxAttempts: number;
  lastError: string | null;
  createdAt: string;
  updatedAt: string;
}

/** A claimed job: the worker owns it until `leaseExpiresAt` unless it heartbeats. */
export interface ClaimedJob extends JobInfo {
  leaseToken: string;
  leaseExpiresAt: number;
}

export interface JobFailure {
  message: string;
  retryable: boolean;
}

/** Called for each job this process moves to `dead`; the queue waits for it before going on. */
export type DeadLetterListener = (job: JobInfo) => Promise<void>;

export interface JobQueue {
  enqueue(
    kind: JobKind,
    payload: Json,
    opts?: EnqueueOptions,
  ): Promise<{ id: string; deduplicated: boolean }>;
  /**
   * Takes the runnable job with the lowest priority (then the oldest), or undefined when there is
   * none. A job found with its lease lapsed and no attempts left is dead-lettered instead.
   */
  claim(workerId: string, leaseMs: number, kinds?: readonly JobKind[]): Promise<ClaimedJob | undefined>;
  /** Extends the lease; throws LeaseLostError when the token is no longer the job's. */
  heartbeat(jobId: string, leaseToken: string, leaseMs: number): Promise<number>;
  /** Throws LeaseLostError for a stale token. */
  complete(jobId: string, leaseToken: string): Promise<void>;
  /** Retries with backoff while attempts remain and the error is retryable, else dead-letters. */
  fail(jobId: string, leaseToken: string, error: JobFailure): Promise<"retrying" | "dead">;
  /**
   * Hands a claimed job back without using up its attempt: waiting again, or delayed by `delayMs`
   * (a worker stopping, a run another runner holds). Throws LeaseLostError for a stale token.
   */
  release(jobId: string, leaseToken: string, opts?: { delayMs?: number; reason?: string }): Promise<void>;
  /** Cancels a waiting, delayed or active job (the worker holding an active one loses its lease). */
  cancel(jobId: string): Promise<boolean>;
  get(jobId: string): Promise<JobInfo | undefined>;
  list(filter?: { states?: JobState[]; limit?: number }): Promise<JobInfo[]>;
  counts(): Promise<Record<JobState, number>>;
  onDeadLetter(listener: DeadLetterListener): void;
  close(): Promise<void>;
}

/** The dead-letter listeners of one queue handle. */
export class DeadLetters {
  private readonly listeners: DeadLetterListener[] = [];

  add(listener: DeadLetterListener): void {
    this.listeners.push(listener);
  }

  async emit(job: JobInfo): Promise<void> {
    for (const l of this.listeners) await l(job);
  }
}

export const emptyCounts = (): Record<JobState, number> =>
  Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
