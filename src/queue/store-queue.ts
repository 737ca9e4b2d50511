/**
 * The embedded job queue: a lease queue in the store's own database (SQLite by default, Postgres when
 * the store is). A claim is one conditional UPDATE, so two workers never get the same job; an expired
 * lease makes the job claimable again; a stale lease token can no longer complete or fail the job.
 */
import { randomUUID } from "node:crypto";
import { type Kysely, type Selectable, sql } from "kysely";
import type { ConcurrencySlotsTable, Database, JobsTable } from "../store/db-schema.js";
import type { Json } from "../store/types.js";
import type { ClaimedJob, EnqueueOptions, JobInfo, JobKind, JobQueue, JobState } from "./job-queue.js";
import { LeaseLostError } from "./queue-errors.js";

const STATES: JobState[] = ["waiting", "delayed", "active", "completed", "failed", "dead", "cancelled"];
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

export class StoreQueue implements JobQueue {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: "sqlite" | "postgres",
  ) {}

  async enqueue(
    kind: JobKind,
    payload: Json,
    opts: EnqueueOptions = {},
  ): Promise<{ id: string; deduplicated: boolean }> {
    const now = Date.now();
    const delay = opts.delayMs ?? 0;
    const existing = async () =>
      opts.singletonKey
        ? this.db
            .selectFrom("jobs")
            .select("id")
            .where("singleton_key", "=", opts.singletonKey)
            .where("state", "in", ["waiting", "delayed", "active"])
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
          singleton_key: opts.singletonKey ?? null,
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
    // a job whose lease ran out with no attempts left is dead, not claimable again
    await this.db
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
      .execute();
    const kindFilter = kinds?.length ? sql`AND kind IN (${sql.join(kinds.map((k) => sql`${k}`))})` : sql``;
    const lock = this.dialect === "postgres" ? sql`FOR UPDATE SKIP LOCKED` : sql``;
    const result = await sql<Selectable<JobsTable>>`
      UPDATE jobs SET state = 'active', attempts = attempts + 1, lease_token = ${token},
        lease_expires_at = ${iso(now + leaseMs)}, worker_id = ${workerId}, updated_at = ${iso(now)}
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

  async fail(
    jobId: string,
    leaseToken: string,
    error: { message: string; retryable: boolean },
  ): Promise<"retrying" | "dead"> {
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
    return retry ? "retrying" : "dead";
  }

  async cancel(jobId: string): Promise<boolean> {
    const r = await this.db
      .updateTable("jobs")
      .set({ state: "cancelled", lease_token: null, updated_at: iso(Date.now()) })
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
    const out = Object.fromEntries(STATES.map((s) => [s, 0])) as Record<JobState, number>;
    for (const r of rows) out[r.state as JobState] = Number(r.n);
    return out;
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
