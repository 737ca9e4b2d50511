/**
 * The embedded job queue: a lease queue in the store's own database (SQLite by default, Postgres when
 * the store is). A claim is one conditional UPDATE, so two workers never get the same job; an expired
 * lease makes the job claimable again; a stale lease token can no longer complete or fail the job.
 */
import { randomUUID } from "node:crypto";
import { type Kysely, type Selectable, sql } from "kysely";
import type { ConcurrencySlotsTable, Database, JobsTable } from "../store/db-schema.js";
import type { Json } from "../store/types.js";
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

const iso = (ms: number) => new Date(ms).toISOString();

function info(r: Selectable<JobsTable>): JobInfo {
  return {
    id: String(r.id),
    kind: r.kind as JobKind,
    payload: JSON.parse(r.payload) as Json,
    state: r.state as JobState,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    lastError: r.last_error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export interface StoreQueueOptions {
  /** The finished jobs kept (by age); default DEFAULT_JOB_HISTORY. */
  history?: JobHistory;
  /** How often a claim also deletes the finished jobs past their age; default a minute. */
  pruneEveryMs?: number;
}

export class StoreQueue implements JobQueue {
  private readonly dead = new DeadLetters();
  private prunedAt = 0;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: "sqlite" | "postgres",
    private readonly opts: StoreQueueOptions = {},
  ) {}

  /** Deletes completed and cancelled jobs older than the history keeps them, and dead ones likewise. */
  private async prune(now: number): Promise<void> {
    if (now - this.prunedAt < (this.opts.pruneEveryMs ?? 60_000)) return;
    this.prunedAt = now;
    const history = this.opts.history ?? DEFAULT_JOB_HISTORY;
    await this.db
      .deleteFrom("jobs")
      .where((eb) =>
        eb.or([
          eb.and([
            eb("state", "in", ["completed", "cancelled"]),
            eb("updated_at", "<", iso(now - history.finishedMs)),
          ]),
          eb.and([eb("state", "=", "dead"), eb("updated_at", "<", iso(now - history.deadMs))]),
        ]),
      )
      .execute();
  }

  async enqueue(
    kind: JobKind,
    payload: Json,
    opts: EnqueueOptions = {},
  ): Promise<{ id: string; deduplicated: boolean }> {
    checkEnqueueOptions(opts);
    const now = Date.now();
    const delay = opts.delayMs ?? 0;
    // singleton keys are per kind, as on BullMQ; a claimed job clears its key (see claim)
    const key = opts.singletonKey === undefined ? null : `${kind}:${opts.singletonKey}`;
    const existing = async () =>
      key
        ? this.db
            .selectFrom("jobs")
            .select("id")
            .where("singleton_key", "=", key)
            .where("state", "in", ["waiting", "delayed"])
            .executeTakeFirst()
        : undefined;
    const found = await existing();
    if (found) return { id: String(found.id), deduplicated: true };
    try {
      const row = await this.db
        .insertInto("jobs")
        .values({
          kind,
          payload: JSON.stringify(payload),
          state: delay > 0 ? "delayed" : "waiting",
          priority: opts.priority ?? 0,
          run_at: iso(now + delay),
          attempts: 0,
          max_attempts: opts.maxAttempts ?? 3,
          backoff_ms: opts.backoffMs ?? 1000,
          singleton_key: key,
          lease_token: null,
          lease_expires_at: null,
          worker_id: null,
          last_error: null,
          created_at: iso(now),
          updated_at: iso(now),
        })
        .returning("id")
        .executeTakeFirstOrThrow();
      return { id: String(row.id), deduplicated: false };
    } catch (err) {
      // a concurrent enqueue with the same singleton key won the unique index
      const winner = await existing();
      if (winner) return { id: String(winner.id), deduplicated: true };
      throw err;
    }
  }

  async claim(
    workerId: string,
    leaseMs: number,
    kinds?: readonly JobKind[],
  ): Promise<ClaimedJob | undefined> {
    const now = Date.now();
    const token = randomUUID();
    await this.prune(now);
    // a job whose lease ran out with no attempts left is dead, not claimable again
    const lapsed = await this.db
      .updateTable("jobs")
      .set({
        state: "dead",
        last_error: "lease expired with no attempts left",
        lease_token: null,
        updated_at: iso(now),
      })
      .where("state", "=", "active")
      .where("lease_expires_at", "<", iso(now))
      .whereRef("attempts", ">=", "max_attempts")
      .returningAll()
      .execute();
    for (const row of lapsed) await this.dead.emit(info(row));
    const kindFilter = kinds?.length ? sql`AND kind IN (${sql.join(kinds.map((k) => sql`${k}`))})` : sql``;
    const lock = this.dialect === "postgres" ? sql`FOR UPDATE SKIP LOCKED` : sql``;
    // the claimed job gives up its singleton key: a later enqueue queues work after this run of it
    const result = await sql<Selectable<JobsTable>>`
      UPDATE jobs SET state = 'active', attempts = attempts + 1, lease_token = ${token},
        lease_expires_at = ${iso(now + leaseMs)}, worker_id = ${workerId}, singleton_key = NULL,
        updated_at = ${iso(now)}
      WHERE id = (
        SELECT id FROM jobs
        WHERE ((state IN ('waiting', 'delayed') AND run_at <= ${iso(now)}) OR (state = 'active' AND lease_expires_at < ${iso(now)}))
        ${kindFilter}
        ORDER BY priority, run_at, id LIMIT 1 ${lock}
      )
      RETURNING *`.execute(this.db);
    const row = result.rows[0];
    if (!row) return undefined;
    return { ...info(row), leaseToken: token, leaseExpiresAt: now + leaseMs };
  }

  private async owned(
    jobId: string,
    token: string,
    set: Partial<Record<keyof JobsTable, unknown>>,
  ): Promise<void> {
    const r = await this.db
      .updateTable("jobs")
      .set({ ...set, updated_at: iso(Date.now()) } as never)
      .where("id", "=", Number(jobId))
      .where("lease_token", "=", token)
      .where("state", "=", "active")
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) throw new LeaseLostError(jobId);
  }

  async heartbeat(jobId: string, leaseToken: string, leaseMs: number): Promise<number> {
    const until = Date.now() + leaseMs;
    await this.owned(jobId, leaseToken, { lease_expires_at: iso(until) });
    return until;
  }

  complete(jobId: string, leaseToken: string): Promise<void> {
    return this.owned(jobId, leaseToken, { state: "completed", lease_token: null, lease_expires_at: null });
  }

  async fail(jobId: string, leaseToken: string, error: JobFailure): Promise<"retrying" | "dead"> {
    const job = await this.db
      .selectFrom("jobs")
      .selectAll()
      .where("id", "=", Number(jobId))
      .executeTakeFirst();
    if (!job || job.lease_token !== leaseToken || job.state !== "active") throw new LeaseLostError(jobId);
    const retry = error.retryable && job.attempts < job.max_attempts;
    const delay = job.backoff_ms * 2 ** (job.attempts - 1);
    await this.owned(jobId, leaseToken, {
      state: retry ? "delayed" : "dead",
      run_at: retry ? iso(Date.now() + delay) : job.run_at,
      last_error: error.message,
      lease_token: null,
      lease_expires_at: null,
    });
    if (!retry) await this.dead.emit({ ...info(job), state: "dead", lastError: error.message });
    return retry ? "retrying" : "dead";
  }

  async release(
    jobId: string,
    leaseToken: string,
    opts: { delayMs?: number; reason?: string } = {},
  ): Promise<void> {
    const delay = opts.delayMs ?? 0;
    await this.owned(jobId, leaseToken, {
      state: delay > 0 ? "delayed" : "waiting",
      run_at: iso(Date.now() + delay),
      attempts: sql`attempts - 1`,
      last_error: opts.reason ?? null,
      lease_token: null,
      lease_expires_at: null,
      worker_id: null,
    });
  }

  async cancel(jobId: string): Promise<boolean> {
    if (!/^\d+$/.test(jobId)) return false;
    const r = await this.db
      .updateTable("jobs")
      .set({ state: "cancelled", lease_token: null, singleton_key: null, updated_at: iso(Date.now()) })
      .where("id", "=", Number(jobId))
      .where("state", "in", ["waiting", "delayed", "active"])
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async get(jobId: string): Promise<JobInfo | undefined> {
    if (!/^\d+$/.test(jobId)) return undefined;
    const row = await this.db
      .selectFrom("jobs")
      .selectAll()
      .where("id", "=", Number(jobId))
      .executeTakeFirst();
    return row && info(row);
  }

  async list(filter: { states?: JobState[]; limit?: number } = {}): Promise<JobInfo[]> {
    let q = this.db
      .selectFrom("jobs")
      .selectAll()
      .orderBy("id", "desc")
      .limit(filter.limit ?? 100);
    if (filter.states?.length) q = q.where("state", "in", filter.states);
    return (await q.execute()).map(info);
  }

  async counts(): Promise<Record<JobState, number>> {
    const rows = await this.db
      .selectFrom("jobs")
      .select((eb) => ["state", eb.fn.countAll<string | number>().as("n")])
      .groupBy("state")
      .execute();
    const out = emptyCounts();
    for (const r of rows) out[r.state as JobState] = Number(r.n);
    return out;
  }

  onDeadLetter(listener: DeadLetterListener): void {
    this.dead.add(listener);
  }

  async close(): Promise<void> {
    // the store owns the connection
  }
}

/**
 * Caps such as "at most 2 Codex runs at once" across every worker of the database: a slot is a row
 * (key, slot number < cap) whose primary key makes over-booking impossible; expired slots are reclaimed.
 */
export class ConcurrencySlots {
  constructor(private readonly db: Kysely<Database>) {}

  async acquire(key: string, cap: number, holder: string, leaseMs: number): Promise<string | undefined> {
    const now = Date.now();
    await this.db
      .deleteFrom("concurrency_slots")
      .where("slot_key", "=", key)
      .where("expires_at", "<", iso(now))
      .execute();
    const token = randomUUID();
    for (let slot = 0; slot < cap; slot++) {
      const row: ConcurrencySlotsTable = {
        slot_key: key,
        slot_no: slot,
        holder,
        token,
        expires_at: iso(now + leaseMs),
      };
      const inserted = await this.db
        .insertInto("concurrency_slots")
        .values(row)
        .onConflict((oc) => oc.columns(["slot_key", "slot_no"]).doNothing())
        .returning("token")
        .executeTakeFirst();
      if (inserted) return token;
    }
    return undefined;
  }

  async renew(key: string, token: string, leaseMs: number): Promise<boolean> {
    const r = await this.db
      .updateTable("concurrency_slots")
      .set({ expires_at: iso(Date.now() + leaseMs) })
      .where("slot_key", "=", key)
      .where("token", "=", token)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async release(key: string, token: string): Promise<void> {
    await this.db
      .deleteFrom("concurrency_slots")
      .where("slot_key", "=", key)
      .where("token", "=", token)
      .execute();
  }
}
