/**
 * The Store on Kysely, one implementation for SQLite and Postgres. Every status change and its event
 * are written in one transaction; a conditional UPDATE makes concurrent movers lose with a typed error.
 */
import { type ExpressionBuilder, type Kysely, sql } from "kysely";
import type { Clock } from "../shared/clock.js";
import { NotFoundError } from "../shared/errors.js";
import type { Database } from "./db-schema.js";
import { JobRows } from "./job-rows.js";
import type { OutageWatch } from "./outage-watch.js";
import { toEvent, toProject, toProtocolRun, toStepRun } from "./row-mappers.js";
import { SecretRows } from "./secret-rows.js";
import { SlotRows } from "./slot-rows.js";
import { StatsQueries } from "./stats-queries.js";
import { canMoveProtocol, canMoveStep, type ProtocolStatus, type StepStatus } from "./status.js";
import {
  DuplicateNameError,
  IllegalTransitionError,
  isUniqueViolation,
  StatusConflictError,
} from "./store-errors.js";
import type {
  Event,
  EventInput,
  EventQuery,
  NewProject,
  NewProtocolRun,
  NewStepRun,
  Project,
  ProtocolRun,
  ProtocolRunPatch,
  RunPage,
  RunSearch,
  StepRun,
  StepRunPatch,
  StepState,
  Store,
  StoreOps,
  UsageRecord,
  UsageScope,
  UsageTotals,
  WebhookDelivery,
} from "./types.js";

const json = (value: unknown) => JSON.stringify(value ?? {});

/** Project id and spec hash per run: every event needs both, and neither changes often. */
type RunKeys = Map<number, { projectId: number; specHash: string | null }>;

type Dialect = Store["dialect"];

/** What every handle on one database shares, in a transaction or not. */
export interface StoreContext {
  dialect: Dialect;
  clock: Clock;
  outages: OutageWatch;
  runKeys: RunKeys;
}

/** The store's operations, in a transaction or not. */
export class KyselyOps implements StoreOps {
  readonly secrets: SecretRows;

  constructor(
    protected readonly db: Kysely<Database>,
    protected readonly context: StoreContext,
    private readonly inTransaction = false,
  ) {
    this.secrets = new SecretRows(db);
  }

  get dialect(): Dialect {
    return this.context.dialect;
  }

  private get runKeys(): RunKeys {
    return this.context.runKeys;
  }

  private now(): string {
    return new Date(this.context.clock.now()).toISOString();
  }

  /** The ISO time `ms` from now. */
  private after(ms: number): string {
    return new Date(this.context.clock.now() + ms).toISOString();
  }

  /**
   * Runs `fn` in a transaction, joining the current one when already inside it. Write transactions
   * take the database's write lock first: on SQLite `BEGIN IMMEDIATE` (a deferred BEGIN cannot wait
   * for another process's writer and fails with SQLITE_BUSY), on Postgres an advisory lock, so event
   * ids are handed out in commit order and a reader's `afterId` cursor never skips a late commit.
   */
  protected atomically<T>(fn: (ops: KyselyOps) => Promise<T>): Promise<T> {
    if (this.inTransaction) return fn(this);
    if (this.dialect === "sqlite") {
      return this.db.connection().execute(async (conn) => {
        await sql`BEGIN IMMEDIATE`.execute(conn);
        try {
          const result = await fn(new KyselyOps(conn, this.context, true));
          await sql`COMMIT`.execute(conn);
          return result;
        } catch (err) {
          await sql`ROLLBACK`.execute(conn).catch(() => undefined);
          throw err;
        }
      });
    }
    return this.db.transaction().execute(async (trx) => {
      await sql`SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':tasksgodzilla-writes'))`.execute(
        trx,
      );
      return fn(new KyselyOps(trx, this.context, true));
    });
  }

  async createProject(input: NewProject): Promise<Project> {
    const t = this.now();
    const row = await this.db
      .insertInto("projects")
      .values({
        name: input.name,
        git_url: input.gitUrl,
        local_path: input.localPath ?? null,
        base_branch: input.baseBranch ?? "main",
        ci_provider: input.ciProvider ?? null,
        default_models: json(input.defaultModels),
        created_at: t,
        updated_at: t,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toProject(row);
  }

  async getProject(id: number): Promise<Project> {
    const row = await this.db.selectFrom("projects").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new NotFoundError("project", id);
    return toProject(row);
  }

  async findProjectByPath(localPath: string): Promise<Project | undefined> {
    const row = await this.db
      .selectFrom("projects")
      .selectAll()
      .where("local_path", "=", localPath)
      .orderBy("id")
      .executeTakeFirst();
    return row && toProject(row);
  }

  async listProjects(): Promise<Project[]> {
    return (await this.db.selectFrom("projects").selectAll().orderBy("id").execute()).map(toProject);
  }

  async createProtocolRun(input: NewProtocolRun): Promise<ProtocolRun> {
    const t = this.now();
    const row = await this.db
      .insertInto("protocol_runs")
      .values({
        project_id: input.projectId,
        protocol_name: input.protocolName,
        status: input.status ?? "pending",
        base_branch: input.baseBranch ?? "main",
        worktree_path: input.worktreePath ?? null,
        protocol_root: input.protocolRoot ?? null,
        description: input.description ?? null,
        template_config: json(input.templateConfig),
        template_source: input.templateSource == null ? null : json(input.templateSource),
        created_at: t,
        updated_at: t,
      })
      .returningAll()
      .executeTakeFirstOrThrow()
      .catch((err: unknown) => {
        throw isUniqueViolation(err) ? new DuplicateNameError(input.protocolName, err) : err;
      });
    return toProtocolRun(row);
  }

  async acquireRunLease(id: number, owner: string, ttlMs: number): Promise<ProtocolRun> {
    const row = await this.db
      .updateTable("protocol_runs")
      .set({ lease_owner: owner, lease_expires_at: this.after(ttlMs) })
      .where("id", "=", id)
      .where((eb) =>
        eb.or([
          eb("lease_owner", "is", null),
          eb("lease_owner", "=", owner),
          eb("lease_expires_at", "<", this.context.outages.lapsedBefore()),
        ]),
      )
      .returningAll()
      .executeTakeFirst();
    return row ? toProtocolRun(row) : this.getProtocolRun(id);
  }

  async renewRunLease(id: number, owner: string, ttlMs: number): Promise<boolean> {
    const r = await this.db
      .updateTable("protocol_runs")
      .set({ lease_expires_at: this.after(ttlMs) })
      .where("id", "=", id)
      .where("lease_owner", "=", owner)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async releaseRunLease(id: number, owner: string): Promise<void> {
    await this.db
      .updateTable("protocol_runs")
      .set({ lease_owner: null, lease_expires_at: null })
      .where("id", "=", id)
      .where("lease_owner", "=", owner)
      .execute();
  }

  async listUnleasedRuns(statuses: ProtocolStatus[]): Promise<ProtocolRun[]> {
    if (statuses.length === 0) return [];
    const rows = await this.db
      .selectFrom("protocol_runs")
      .selectAll()
      .where("status", "in", statuses)
      .where((eb) =>
        eb.or([
          eb("lease_owner", "is", null),
          eb("lease_expires_at", "<", this.context.outages.lapsedBefore()),
        ]),
      )
      .orderBy("id")
      .execute();
    return rows.map(toProtocolRun);
  }

  async getProtocolRun(id: number): Promise<ProtocolRun> {
    const row = await this.db.selectFrom("protocol_runs").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new NotFoundError("protocol run", id);
    return toProtocolRun(row);
  }

  async getProtocolStatus(id: number): Promise<ProtocolStatus> {
    const row = await this.db
      .selectFrom("protocol_runs")
      .select("status")
      .where("id", "=", id)
      .executeTakeFirst();
    if (!row) throw new NotFoundError("protocol run", id);
    return row.status as ProtocolStatus;
  }

  async listProtocolRuns(projectId?: number): Promise<ProtocolRun[]> {
    let q = this.db.selectFrom("protocol_runs").selectAll().orderBy("id");
    if (projectId !== undefined) q = q.where("project_id", "=", projectId);
    return (await q.execute()).map(toProtocolRun);
  }

  async searchProtocolRuns(search: RunSearch): Promise<RunPage> {
    let q = this.db.selectFrom("protocol_runs");
    if (search.statuses?.length) q = q.where("status", "in", search.statuses);
    if (search.projectIds?.length) q = q.where("project_id", "in", search.projectIds);
    if (search.excludeProjectIds?.length) q = q.where("project_id", "not in", search.excludeProjectIds);
    for (const word of (search.text ?? "").toLowerCase().split(/\s+/).filter(Boolean)) {
      // LIKE's wildcards in a search word are literal
      const pattern = `%${word.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      q = q.where((eb) =>
        eb.or([
          eb(eb.fn("lower", ["protocol_name"]), "like", sql<string>`${pattern} escape '\\'`),
          eb(eb.fn("lower", ["description"]), "like", sql<string>`${pattern} escape '\\'`),
        ]),
      );
    }
    const counted = await q
      .select((eb) => eb.fn.countAll<number | string>().as("n"))
      .executeTakeFirstOrThrow();
    let page = q.selectAll().orderBy("id", "desc").limit(search.limit);
    if (search.beforeId !== undefined) page = page.where("id", "<", search.beforeId);
    return { runs: (await page.execute()).map(toProtocolRun), total: Number(counted.n) };
  }

  async updateProtocolRun(id: number, patch: ProtocolRunPatch): Promise<ProtocolRun> {
    const row = await this.db
      .updateTable("protocol_runs")
      .set({
        ...(patch.worktreePath !== undefined && { worktree_path: patch.worktreePath }),
        ...(patch.protocolRoot !== undefined && { protocol_root: patch.protocolRoot }),
        ...(patch.description !== undefined && { description: patch.description }),
        ...(patch.templateConfig !== undefined && { template_config: json(patch.templateConfig) }),
        ...(patch.templateSource !== undefined && {
          template_source: patch.templateSource === null ? null : json(patch.templateSource),
        }),
        updated_at: this.now(),
      })
      .where("id", "=", id)
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new NotFoundError("protocol run", id);
    this.runKeys.delete(id);
    return toProtocolRun(row);
  }

  transitionProtocol(
    id: number,
    to: ProtocolStatus,
    event: Omit<EventInput, "protocolRunId" | "stepRunId">,
    opts: { expectedFrom?: ProtocolStatus } = {},
  ): Promise<ProtocolRun> {
    return this.atomically(async (ops) => {
      const current = await ops.getProtocolRun(id);
      const from = current.status;
      if (opts.expectedFrom && from !== opts.expectedFrom)
        throw new StatusConflictError("protocol", id, opts.expectedFrom, from);
      if (!canMoveProtocol(from, to)) throw new IllegalTransitionError("protocol", id, from, to);
      const row = await ops.db
        .updateTable("protocol_runs")
        .set({ status: to, updated_at: this.now() })
        .where("id", "=", id)
        .where("status", "=", from)
        .returningAll()
        .executeTakeFirst();
      if (!row) throw new StatusConflictError("protocol", id, from, "changed concurrently");
      await ops.appendEvent({ ...event, protocolRunId: id, metadata: { ...event.metadata, from, to } });
      return toProtocolRun(row);
    });
  }

  async createStepRuns(protocolRunId: number, steps: NewStepRun[]): Promise<StepRun[]> {
    if (steps.length === 0) return [];
    const t = this.now();
    const rows = await this.db
      .insertInto("step_runs")
      .values(
        steps.map((s) => ({
          protocol_run_id: protocolRunId,
          step_index: s.stepIndex,
          step_name: s.stepName,
          step_type: s.stepType ?? "work",
          status: "pending",
          retries: 0,
          model: s.model ?? null,
          engine_id: s.engineId ?? null,
          policy: JSON.stringify(s.policy ?? []),
          runtime_state: "{}",
          summary: s.summary ?? null,
          created_at: t,
          updated_at: t,
        })),
      )
      .returningAll()
      .execute();
    return rows.map(toStepRun).sort((a, b) => a.stepIndex - b.stepIndex);
  }

  async getStepRun(id: number): Promise<StepRun> {
    const row = await this.db.selectFrom("step_runs").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new NotFoundError("step run", id);
    return toStepRun(row);
  }

  async listStepRuns(protocolRunId: number): Promise<StepRun[]> {
    const rows = await this.db
      .selectFrom("step_runs")
      .selectAll()
      .where("protocol_run_id", "=", protocolRunId)
      .orderBy("step_index")
      .orderBy("id")
      .execute();
    return rows.map(toStepRun);
  }

  async listStepStates(protocolRunId: number): Promise<StepState[]> {
    // the one flag read in SQL, instead of parsing every step's whole state
    const triggered =
      this.dialect === "sqlite"
        ? sql<number | string | null>`json_extract(runtime_state, '$.triggered')`
        : sql<number | string | null>`(runtime_state::json ->> 'triggered')`;
    const rows = await this.db
      .selectFrom("step_runs")
      .select(["id", "step_name", "step_index", "status", triggered.as("triggered")])
      .where("protocol_run_id", "=", protocolRunId)
      .orderBy("step_index")
      .orderBy("id")
      .execute();
    return rows.map((r) => ({
      id: r.id,
      stepName: r.step_name,
      stepIndex: r.step_index,
      status: r.status as StepStatus,
      triggered: r.triggered === 1 || r.triggered === "true",
    }));
  }

  async updateStepRun(id: number, patch: StepRunPatch): Promise<StepRun> {
    const row = await this.db
      .updateTable("step_runs")
      .set(stepPatch(patch, this.now()))
      .where("id", "=", id)
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new NotFoundError("step run", id);
    return toStepRun(row);
  }

  transitionStep(
    id: number,
    to: StepStatus,
    event: Omit<EventInput, "protocolRunId" | "stepRunId">,
    opts: { expectedFrom?: StepStatus; patch?: StepRunPatch } = {},
  ): Promise<StepRun> {
    return this.atomically(async (ops) => {
      const current = await ops.getStepRun(id);
      const from = current.status;
      if (opts.expectedFrom && from !== opts.expectedFrom)
        throw new StatusConflictError("step", id, opts.expectedFrom, from);
      if (!canMoveStep(from, to)) throw new IllegalTransitionError("step", id, from, to);
      const row = await ops.db
        .updateTable("step_runs")
        .set({ ...stepPatch(opts.patch ?? {}, this.now()), status: to })
        .where("id", "=", id)
        .where("status", "=", from)
        .returningAll()
        .executeTakeFirst();
      if (!row) throw new StatusConflictError("step", id, from, "changed concurrently");
      await ops.appendEvent({
        ...event,
        protocolRunId: current.protocolRunId,
        stepRunId: id,
        metadata: { ...event.metadata, from, to },
      });
      return toStepRun(row);
    });
  }

  private async keysOf(protocolRunId: number) {
    const cached = this.runKeys.get(protocolRunId);
    if (cached) return cached;
    const run = await this.getProtocolRun(protocolRunId);
    const keys = { projectId: run.projectId, specHash: run.templateConfig.spec_meta?.spec_hash ?? null };
    this.runKeys.set(protocolRunId, keys);
    return keys;
  }

  appendEvent(input: EventInput): Promise<Event> {
    // one INSERT is its own transaction on SQLite, whose single writer keeps ids in commit order;
    // Postgres needs the write lock that atomically() takes for that
    if (this.dialect === "sqlite") return this.insertEvent(input);
    return this.atomically((ops) => ops.insertEvent(input));
  }

  private async insertEvent(input: EventInput): Promise<Event> {
    const keys = await this.keysOf(input.protocolRunId);
    const row = await this.db
      .insertInto("events")
      .values({
        protocol_run_id: input.protocolRunId,
        step_run_id: input.stepRunId ?? null,
        project_id: keys.projectId,
        event_type: input.eventType,
        message: input.message,
        metadata: json(input.metadata),
        spec_hash: input.specHash === undefined ? keys.specHash : input.specHash,
        created_at: this.now(),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toEvent(row);
  }

  async listEvents(query: EventQuery): Promise<Event[]> {
    let q = this.db.selectFrom("events").selectAll();
    if (query.protocolRunId !== undefined) q = q.where("protocol_run_id", "=", query.protocolRunId);
    if (query.stepRunId !== undefined) q = q.where("step_run_id", "=", query.stepRunId);
    if (query.projectId !== undefined) q = q.where("project_id", "=", query.projectId);
    const excluded = query.excludeProjectIds;
    if (excluded?.length)
      q = q.where((eb) => eb.or([eb("project_id", "is", null), eb("project_id", "not in", excluded)]));
    if (query.eventTypes?.length) q = q.where("event_type", "in", query.eventTypes);
    if (query.afterId !== undefined) q = q.where("id", ">", query.afterId);
    const rows = await q
      .orderBy("id", query.newestFirst ? "desc" : "asc")
      .limit(query.limit ?? 1000)
      .execute();
    return rows.map(toEvent);
  }

  async recordWebhookDelivery(input: WebhookDelivery): Promise<boolean> {
    const inserted = await this.db
      .insertInto("webhook_deliveries")
      .values({
        provider: input.provider,
        delivery_id: input.deliveryId,
        protocol_run_id: input.protocolRunId,
        received_at: this.now(),
      })
      .onConflict((oc) => oc.columns(["provider", "delivery_id"]).doNothing())
      .returning("delivery_id")
      .executeTakeFirst();
    return inserted !== undefined;
  }

  async findWebhookDelivery(provider: string, deliveryId: string): Promise<WebhookDelivery | undefined> {
    const row = await this.db
      .selectFrom("webhook_deliveries")
      .select(["protocol_run_id"])
      .where("provider", "=", provider)
      .where("delivery_id", "=", deliveryId)
      .executeTakeFirst();
    return row ? { provider, deliveryId, protocolRunId: row.protocol_run_id } : undefined;
  }

  async recordUsage(input: UsageRecord): Promise<void> {
    const keys = await this.keysOf(input.protocolRunId);
    await this.db
      .insertInto("token_usage")
      .values({
        protocol_run_id: input.protocolRunId,
        step_run_id: input.stepRunId ?? null,
        project_id: keys.projectId,
        phase: input.phase,
        engine_id: input.engineId,
        model: input.model,
        input_tokens: input.usage.input,
        cached_input_tokens: input.usage.cachedInput,
        output_tokens: input.usage.output,
        reasoning_tokens: input.usage.reasoning,
        estimated: input.usage.estimated ? 1 : 0,
        created_at: this.now(),
      })
      .execute();
  }

  async sumUsage(scope: UsageScope): Promise<UsageTotals> {
    let q = this.db.selectFrom("token_usage").select(usageSums);
    if (scope.projectId !== undefined) q = q.where("project_id", "=", scope.projectId);
    if (scope.protocolRunId !== undefined) q = q.where("protocol_run_id", "=", scope.protocolRunId);
    if (scope.stepRunId !== undefined) q = q.where("step_run_id", "=", scope.stepRunId);
    if (scope.phase !== undefined) q = q.where("phase", "=", scope.phase);
    return usageTotals(await q.executeTakeFirstOrThrow());
  }

  async sumUsageByStep(protocolRunId: number): Promise<Map<number, UsageTotals>> {
    const rows = await this.db
      .selectFrom("token_usage")
      .select((eb) => ["step_run_id", ...usageSums(eb)])
      .where("protocol_run_id", "=", protocolRunId)
      .where("step_run_id", "is not", null)
      .groupBy("step_run_id")
      .execute();
    return new Map(rows.map((r) => [Number(r.step_run_id), usageTotals(r)]));
  }
}

/** The sums behind UsageTotals, for one select. */
const usageSums = (eb: ExpressionBuilder<Database, "token_usage">) => [
  eb.fn.sum<string | number | null>("input_tokens").as("input"),
  eb.fn.sum<string | number | null>("cached_input_tokens").as("cached"),
  eb.fn.sum<string | number | null>("output_tokens").as("output"),
  eb.fn.sum<string | number | null>("reasoning_tokens").as("reasoning"),
  eb.fn.sum<string | number | null>("estimated").as("estimated"),
  eb.fn.countAll<string | number>().as("calls"),
];

type UsageRow = Record<
  "input" | "cached" | "output" | "reasoning" | "estimated" | "calls",
  string | number | null
>;

function usageTotals(r: UsageRow): UsageTotals {
  // Postgres returns SUM/COUNT of integers as bigint strings
  const n = (v: string | number | null) => Number(v ?? 0);
  return {
    input: n(r.input),
    cachedInput: n(r.cached),
    output: n(r.output),
    reasoning: n(r.reasoning),
    total: n(r.input) + n(r.output),
    estimatedCalls: n(r.estimated),
    calls: n(r.calls),
  };
}

function stepPatch(patch: StepRunPatch, now: string) {
  return {
    ...(patch.retries !== undefined && { retries: patch.retries }),
    ...(patch.model !== undefined && { model: patch.model }),
    ...(patch.engineId !== undefined && { engine_id: patch.engineId }),
    ...(patch.runtimeState !== undefined && { runtime_state: json(patch.runtimeState) }),
    ...(patch.summary !== undefined && { summary: patch.summary }),
    updated_at: now,
  };
}

export class KyselyStore extends KyselyOps implements Store {
  readonly stats: StatsQueries;
  readonly slots: SlotRows;
  readonly jobs: JobRows;

  constructor(db: Kysely<Database>, context: Omit<StoreContext, "runKeys">) {
    super(db, { ...context, runKeys: new Map() });
    this.stats = new StatsQueries(db, context.dialect);
    this.slots = new SlotRows(db, context.clock, context.outages);
    this.jobs = new JobRows(db, context.dialect, context.clock, context.outages);
  }

  get clock(): Clock {
    return this.context.clock;
  }

  /** Runs `fn` in one transaction: everything it writes through `tx` commits or rolls back together. */
  transaction<T>(fn: (tx: KyselyOps) => Promise<T>): Promise<T> {
    return this.atomically(fn);
  }

  close(): Promise<void> {
    return this.db.destroy();
  }
}
