/** The embedded job queue's rows in `jobs`: claims, leases and settlements as conditional updates. */
import { type Kysely, type Selectable, sql } from "kysely";
import type { Clock } from "../shared/clock.js";
import type { Database, JobsTable } from "./db-schema.js";
import type { OutageWatch } from "./outage-watch.js";
import type { JobRow, JobRowState, JobSettlement, JobsRepository, NewJobRow } from "./repositories.js";
import { isUniqueViolation } from "./store-errors.js";
import type { Json, Store } from "./types.js";

const iso = (ms: number) => new Date(ms).toISOString();

function toJobRow(r: Selectable<JobsTable>): JobRow {
  return {
    id: Number(r.id),
    kind: r.kind,
    payload: JSON.parse(r.payload) as Json,
    state: r.state as JobRowState,
    priority: r.priority,
    runAt: r.run_at,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    backoffMs: r.backoff_ms,
    singletonKey: r.singleton_key,
    leaseToken: r.lease_token,
    leaseExpiresAt: r.lease_expires_at,
    workerId: r.worker_id,
    lastError: r.last_error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export class JobRows implements JobsRepository {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: Store["dialect"],
    private readonly clock: Clock,
    private readonly outages: OutageWatch,
  ) {}

  async insert(job: NewJobRow): Promise<number | undefined> {
    const now = this.clock.now();
    try {
      const row = await this.db
        .insertInto("jobs")
        .values({
          kind: job.kind,
          payload: JSON.stringify(job.payload),
          state: job.delayMs > 0 ? "delayed" : "waiting",
          priority: job.priority,
          run_at: iso(now + job.delayMs),
          attempts: 0,
          max_attempts: job.maxAttempts,
          backoff_ms: job.backoffMs,
          singleton_key: job.singletonKey,
          lease_token: null,
          lease_expires_at: null,
          worker_id: null,
          last_error: null,
          created_at: iso(now),
          updated_at: iso(now),
        })
        .returning("id")
        .executeTakeFirstOrThrow();
      return Number(row.id);
    } catch (err) {
      if (job.singletonKey !== null && isUniqueViolation(err)) return undefined;
      throw err;
    }
  }

  async findWaiting(singletonKey: string): Promise<number | undefined> {
    const row = await this.db
      .selectFrom("jobs")
      .select("id")
      .where("singleton_key", "=", singletonKey)
      .where("state", "in", ["waiting", "delayed"])
      .executeTakeFirst();
    return row && Number(row.id);
  }

  async deadLetterLapsed(reason: string): Promise<JobRow[]> {
    const rows = await this.db
      .updateTable("jobs")
      .set({ state: "dead", last_error: reason, lease_token: null, updated_at: iso(this.clock.now()) })
      .where("state", "=", "active")
      .where("lease_expires_at", "<", this.outages.lapsedBefore())
      .whereRef("attempts", ">=", "max_attempts")
      .returningAll()
      .execute();
    return rows.map(toJobRow);
  }

  async claim(
    workerId: string,
    token: string,
    leaseMs: number,
    kinds?: readonly string[],
  ): Promise<JobRow | undefined> {
    const now = iso(this.clock.now());
    const lapsed = this.outages.lapsedBefore();
    const kindFilter = kinds?.length ? sql`AND kind IN (${sql.join(kinds.map((k) => sql`${k}`))})` : sql``;
    const lock = this.dialect === "postgres" ? sql`FOR UPDATE SKIP LOCKED` : sql``;
    const result = await sql<Selectable<JobsTable>>`
      UPDATE jobs SET state = 'active', attempts = attempts + 1, lease_token = ${token},
        lease_expires_at = ${iso(this.clock.now() + leaseMs)}, worker_id = ${workerId}, singleton_key = NULL,
        updated_at = ${now}
      WHERE id = (
        SELECT id FROM jobs
        WHERE ((state IN ('waiting', 'delayed') AND run_at <= ${now}) OR (state = 'active' AND lease_expires_at < ${lapsed}))
        ${kindFilter}
        ORDER BY priority, run_at, id LIMIT 1 ${lock}
      )
      RETURNING *`.execute(this.db);
    const row = result.rows[0];
    return row && toJobRow(row);
  }

  /** Changes the job held under `token`, if it still is. */
  private async held(
    id: number,
    token: string,
    set: Partial<Record<keyof JobsTable, unknown>>,
  ): Promise<boolean> {
    const r = await this.db
      .updateTable("jobs")
      .set({ ...set, updated_at: iso(this.clock.now()) } as never)
      .where("id", "=", id)
      .where("lease_token", "=", token)
      .where("state", "=", "active")
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async renewLease(id: number, token: string, leaseMs: number): Promise<number | undefined> {
    const until = this.clock.now() + leaseMs;
    return (await this.held(id, token, { lease_expires_at: iso(until) })) ? until : undefined;
  }

  settle(id: number, token: string, s: JobSettlement): Promise<boolean> {
    const open = s.state === "waiting" || s.state === "delayed";
    return this.held(id, token, {
      state: s.state,
      lease_token: null,
      lease_expires_at: null,
      ...(open && { run_at: iso(this.clock.now() + (s.delayMs ?? 0)) }),
      ...(s.lastError !== undefined && { last_error: s.lastError }),
      ...(s.handBack && { attempts: sql`attempts - 1`, worker_id: null }),
    });
  }

  async cancel(id: number): Promise<boolean> {
    const r = await this.db
      .updateTable("jobs")
      .set({ state: "cancelled", lease_token: null, singleton_key: null, updated_at: iso(this.clock.now()) })
      .where("id", "=", id)
      .where("state", "in", ["waiting", "delayed", "active"])
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async get(id: number): Promise<JobRow | undefined> {
    const row = await this.db.selectFrom("jobs").selectAll().where("id", "=", id).executeTakeFirst();
    return row && toJobRow(row);
  }

  async list(states: readonly JobRowState[] | undefined, limit: number): Promise<JobRow[]> {
    let q = this.db.selectFrom("jobs").selectAll().orderBy("id", "desc").limit(limit);
    if (states?.length) q = q.where("state", "in", states);
    return (await q.execute()).map(toJobRow);
  }

  async counts(): Promise<Map<JobRowState, number>> {
    const rows = await this.db
      .selectFrom("jobs")
      .select((eb) => ["state", eb.fn.countAll<string | number>().as("n")])
      .groupBy("state")
      .execute();
    return new Map(rows.map((r) => [r.state as JobRowState, Number(r.n)]));
  }

  async prune(finishedBefore: number, deadBefore: number): Promise<void> {
    await this.db
      .deleteFrom("jobs")
      .where((eb) =>
        eb.or([
          eb.and([eb("state", "in", ["completed", "cancelled"]), eb("updated_at", "<", iso(finishedBefore))]),
          eb.and([eb("state", "=", "dead"), eb("updated_at", "<", iso(deadBefore))]),
        ]),
      )
      .execute();
  }
}
