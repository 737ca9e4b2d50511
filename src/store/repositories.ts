/**
 * The store's repositories beside runs, steps and events: project secrets, the figures /metrics
 * reads, engine concurrency slots and the embedded job queue's rows. Nothing outside `src/store/`
 * sees their tables; the queue and the worker build their semantics on these methods.
 */

/** Per-project secrets: stored beside the project, never returned by the API (only their names). */
export interface SecretsRepository {
  /** Stores (or replaces) the given secrets of a project in one statement: all or none. */
  set(projectId: number, secrets: Record<string, unknown>): Promise<void>;
  /** Secret names by project, sorted; every project asked for has an entry. */
  names(projectIds: number[]): Promise<Map<number, string[]>>;
  get(projectId: number, name: string): Promise<unknown>;
  /** The value of the secret `name` of every project that has one, by project. */
  byName(name: string): Promise<Map<number, unknown>>;
}

/** One figure of the event ledger that /metrics adds up: durations and QA verdicts. */
export interface LedgerFigure {
  id: number;
  eventType: string;
  durationMs: number | null;
  verdict: string | null;
}

export interface TokenFigure {
  engineId: string;
  model: string | null;
  phase: string;
  /** Input + output tokens charged. */
  tokens: number;
}

/** The aggregate reads behind /metrics, over every process's work. */
export interface StatsRepository {
  runsByStatus(): Promise<Map<string, number>>;
  stepsByStatus(): Promise<Map<string, number>>;
  tokensCharged(): Promise<TokenFigure[]>;
  /** `step_completed` and `qa_verdict` events after `afterId`, oldest first, at most `limit`. */
  ledgerFigures(afterId: number, limit: number): Promise<LedgerFigure[]>;
}

/**
 * Caps such as "at most 2 Codex runs at once" across every process on the database: a slot is a
 * row (key, slot number < cap) whose primary key makes over-booking impossible. A slot whose lease
 * lapsed is taken by the next acquirer — except within the grace after this process found the
 * database away, when its holder may not have been able to renew it yet.
 */
export interface SlotsRepository {
  /** A free slot under `cap` for `holder` until now + leaseMs: its token, or undefined when all are held. */
  acquire(key: string, cap: number, holder: string, leaseMs: number): Promise<string | undefined>;
  /** Extends the slot; false when it is no longer this token's (it lapsed and was taken). */
  renew(key: string, token: string, leaseMs: number): Promise<boolean>;
  release(key: string, token: string): Promise<void>;
}

export type JobRowState = "waiting" | "delayed" | "active" | "completed" | "dead" | "cancelled";

export interface JobRow {
  id: number;
  kind: string;
  payload: Record<string, unknown>;
  state: JobRowState;
  priority: number;
  runAt: string;
  attempts: number;
  maxAttempts: number;
  backoffMs: number;
  /** Kept while the job waits; a claim clears it. */
  singletonKey: string | null;
  leaseToken: string | null;
  leaseExpiresAt: string | null;
  workerId: string | null;
  lastError: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface NewJobRow {
  kind: string;
  payload: Record<string, unknown>;
  priority: number;
  delayMs: number;
  maxAttempts: number;
  backoffMs: number;
  singletonKey: string | null;
}

/** How a job held under a lease token ends, or goes back to the queue. */
export interface JobSettlement {
  state: "completed" | "dead" | "waiting" | "delayed";
  /** Waiting or delayed: it is due after this long (default at once). */
  delayMs?: number;
  /** Left as it is when absent. */
  lastError?: string | null;
  /** Handed back: the attempt its claim counted is given back, and it belongs to no worker. */
  handBack?: boolean;
}

/**
 * The embedded job queue's table. Claims are one conditional UPDATE, so two claimers never get the
 * same job; a stale lease token can no longer change its job. Leases that lapsed are claimable (and
 * dead-lettered when out of attempts) — except within the grace after this process found the
 * database away.
 */
export interface JobsRepository {
  /** The new job's id, or undefined when its singleton key is held by an open job already. */
  insert(job: NewJobRow): Promise<number | undefined>;
  /** The waiting or delayed job holding `singletonKey`. */
  findWaiting(singletonKey: string): Promise<number | undefined>;
  /** Active jobs whose lease lapsed with no attempts left, moved to dead; returns them. */
  deadLetterLapsed(reason: string): Promise<JobRow[]>;
  /**
   * Takes the runnable job (due, or active with a lapsed lease) of the lowest priority, then the
   * oldest, counting an attempt and clearing its singleton key.
   */
  claim(
    workerId: string,
    token: string,
    leaseMs: number,
    kinds?: readonly string[],
  ): Promise<JobRow | undefined>;
  /** Extends the lease of the job held under `token`; its new expiry (ms), or undefined when it is not held. */
  renewLease(id: number, token: string, leaseMs: number): Promise<number | undefined>;
  /** Ends or hands back the job held under `token`; false when it is no longer held. */
  settle(id: number, token: string, settlement: JobSettlement): Promise<boolean>;
  /** Cancels an open job; false when it was not open. */
  cancel(id: number): Promise<boolean>;
  get(id: number): Promise<JobRow | undefined>;
  /** The newest first. */
  list(states: readonly JobRowState[] | undefined, limit: number): Promise<JobRow[]>;
  counts(): Promise<Map<JobRowState, number>>;
  /** Deletes completed and cancelled jobs last changed before `finishedBefore`, dead ones before `deadBefore` (ms). */
  prune(finishedBefore: number, deadBefore: number): Promise<void>;
}
