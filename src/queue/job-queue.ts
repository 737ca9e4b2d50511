/**
 * The JobQueue port: how the server hands work to workers. Adapters (the embedded lease queue on the
 * store's database, BullMQ on Redis) pass one conformance suite. Delivery is at-least-once, so every
 * job handler must be idempotent; the lease token is what makes a late completion from a dead worker
 * harmless.
 */
import type { Json } from "../store/types.js";

export const JOB_KINDS = ["plan", "execute_protocol", "open_pr", "import", "spec_audit"] as const;
export type JobKind = (typeof JOB_KINDS)[number];

export type JobState = "waiting" | "delayed" | "active" | "completed" | "failed" | "dead" | "cancelled";

export interface EnqueueOptions {
  delayMs?: number;
  /** Lower runs first; default 0. */
  priority?: number;
  /** At most one waiting/active job per key; a second enqueue returns the first job. */
  singletonKey?: string;
  /** Attempts before the job is dead-lettered; default 3. */
  maxAttempts?: number;
  /** Base of the exponential retry backoff; default 1000 ms. */
  backoffMs?: number;
}

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

export interface JobQueue {
  enqueue(
    kind: JobKind,
    payload: Json,
    opts?: EnqueueOptions,
  ): Promise<{ id: string; deduplicated: boolean }>;
  /** Takes the next runnable job, or undefined when there is none. */
  claim(workerId: string, leaseMs: number, kinds?: readonly JobKind[]): Promise<ClaimedJob | undefined>;
  /** Extends the lease; throws LeaseLostError when the token is no longer the job's. */
  heartbeat(jobId: string, leaseToken: string, leaseMs: number): Promise<number>;
  /** Throws LeaseLostError for a stale token. */
  complete(jobId: string, leaseToken: string): Promise<void>;
  /** Retries with backoff while attempts remain and the error is retryable, else dead-letters. */
  fail(
    jobId: string,
    leaseToken: string,
    error: { message: string; retryable: boolean },
  ): Promise<"retrying" | "dead">;
  cancel(jobId: string): Promise<boolean>;
  get(jobId: string): Promise<JobInfo | undefined>;
  list(filter?: { states?: JobState[]; limit?: number }): Promise<JobInfo[]>;
  counts(): Promise<Record<JobState, number>>;
  close(): Promise<void>;
}
