/** Row shapes and the Store contract shared by the SQLite and Postgres implementations. */
import type { Clock } from "../shared/clock.js";
import type { TokenUsage } from "../shared/token-usage.js";
import type { EventType } from "./event-types.js";
import type { JobsRepository, SecretsRepository, SlotsRepository, StatsRepository } from "./repositories.js";
import type { ProtocolStatus, StepStatus } from "./status.js";

export type Json = Record<string, unknown>;

export interface Project {
  id: number;
  name: string;
  /** Local path of the repository (or a clone URL). */
  gitUrl: string;
  localPath: string | null;
  baseBranch: string;
  ciProvider: string | null;
  /** Per-role default models: {plan, exec, qa}. */
  defaultModels: Json;
  createdAt: string;
  updatedAt: string;
}

export interface NewProject {
  name: string;
  gitUrl: string;
  localPath?: string | null;
  baseBranch?: string;
  ciProvider?: string | null;
  defaultModels?: Json;
}

export interface SpecMeta {
  status: "valid" | "invalid" | "missing";
  errors: { pointer: string; message: string }[];
  validated_at: string;
  spec_hash: string | null;
}

export interface TemplateConfig extends Json {
  protocol_spec?: Json;
  spec_meta?: SpecMeta;
}

export interface ProtocolRun {
  id: number;
  projectId: number;
  protocolName: string;
  status: ProtocolStatus;
  baseBranch: string;
  worktreePath: string | null;
  protocolRoot: string | null;
  description: string | null;
  templateConfig: TemplateConfig;
  templateSource: Json | null;
  /** The runner executing this run right now, until `leaseExpiresAt` (ISO) unless it renews. */
  leaseOwner: string | null;
  leaseExpiresAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface NewProtocolRun {
  projectId: number;
  protocolName: string;
  status?: ProtocolStatus;
  baseBranch?: string;
  worktreePath?: string | null;
  protocolRoot?: string | null;
  description?: string | null;
  templateConfig?: TemplateConfig;
  templateSource?: Json | null;
}

export type ProtocolRunPatch = Partial<
  Pick<ProtocolRun, "worktreePath" | "protocolRoot" | "description" | "templateConfig" | "templateSource">
>;

export interface StepRun {
  id: number;
  protocolRunId: number;
  stepIndex: number;
  /** The spec step id; unique within a run. */
  stepName: string;
  stepType: string;
  status: StepStatus;
  retries: number;
  model: string | null;
  engineId: string | null;
  /** The step's policies, as in the spec. */
  policy: Json[];
  /** Loop counters, trigger depth, session ids, last outputs … */
  runtimeState: Json;
  summary: string | null;
  createdAt: string;
  updatedAt: string;
}

export type StepState = Pick<StepRun, "id" | "stepName" | "stepIndex" | "status"> & {
  /** Set when a trigger queued the step (a trigger-only step may then run). */
  triggered: boolean;
};

export interface NewStepRun {
  stepIndex: number;
  stepName: string;
  stepType?: string;
  model?: string | null;
  engineId?: string | null;
  policy?: Json[];
  summary?: string | null;
}

/** Fields that may change with (or without) a status change. `null` clears a field. */
export type StepRunPatch = Partial<
  Pick<StepRun, "retries" | "model" | "engineId" | "runtimeState" | "summary">
>;

export interface EventInput {
  protocolRunId: number;
  stepRunId?: number | null;
  /** Written events come from the catalogue; read ones are strings (older versions had others). */
  eventType: EventType;
  message: string;
  metadata?: Json;
  /** Filled from the run's frozen spec when omitted. */
  specHash?: string | null;
}

export interface Event {
  /** Monotonic sequence: the order events were written in. */
  id: number;
  protocolRunId: number;
  stepRunId: number | null;
  projectId: number;
  eventType: string;
  message: string;
  metadata: Json;
  specHash: string | null;
  createdAt: string;
}

export interface EventQuery {
  protocolRunId?: number;
  stepRunId?: number;
  projectId?: number;
  /** Leave out the events of these projects. */
  excludeProjectIds?: number[];
  eventTypes?: string[];
  /** Only events with id > afterId (cursor). */
  afterId?: number;
  /** Default 1000. */
  limit?: number;
  /** The newest first (default: oldest first). */
  newestFirst?: boolean;
}

/** Which runs a list shows: every filter is optional; newest first, a page at a time. */
export interface RunSearch {
  /** Words found in the run's name or description (case-insensitive; all must match). */
  text?: string;
  statuses?: string[];
  projectIds?: number[];
  /** Leave out the runs of these projects (guarded ones the caller may not see). */
  excludeProjectIds?: number[];
  /** Only runs with id < beforeId (the cursor of the next page). */
  beforeId?: number;
  limit: number;
}

/** A page of runs, newest first, and how many runs match in all. */
export interface RunPage {
  runs: ProtocolRun[];
  total: number;
}

/** A CI delivery already applied to a run, kept so the provider's redelivery changes nothing. */
export interface WebhookDelivery {
  provider: string;
  deliveryId: string;
  protocolRunId: number;
}

export type UsagePhase = "plan" | "exec" | "qa";

export interface UsageRecord {
  protocolRunId: number;
  stepRunId?: number | null;
  phase: UsagePhase;
  engineId: string;
  model: string | null;
  usage: TokenUsage;
}

export interface UsageScope {
  projectId?: number;
  protocolRunId?: number;
  stepRunId?: number;
  phase?: UsagePhase;
}

/** Charged tokens (input + output) and the reported/estimated split. */
export interface UsageTotals {
  input: number;
  cachedInput: number;
  output: number;
  reasoning: number;
  total: number;
  estimatedCalls: number;
  calls: number;
}

/** Everything the services and the runner read and write. Every method is usable inside a transaction. */
export interface StoreOps {
  /** Per-project secrets (written with their project in one transaction). */
  readonly secrets: SecretsRepository;

  createProject(input: NewProject): Promise<Project>;
  getProject(id: number): Promise<Project>;
  findProjectByPath(localPath: string): Promise<Project | undefined>;
  listProjects(): Promise<Project[]>;

  createProtocolRun(input: NewProtocolRun): Promise<ProtocolRun>;
  getProtocolRun(id: number): Promise<ProtocolRun>;
  /** Only the run's status: cheap enough to ask before every step. */
  getProtocolStatus(id: number): Promise<ProtocolStatus>;
  listProtocolRuns(projectId?: number): Promise<ProtocolRun[]>;
  /** Runs matching a search, newest first, one page; `total` counts every match (the cursor aside). */
  searchProtocolRuns(search: RunSearch): Promise<RunPage>;
  updateProtocolRun(id: number, patch: ProtocolRunPatch): Promise<ProtocolRun>;
  /**
   * Moves a run to `to` (rejecting illegal moves with IllegalTransitionError, and a concurrent change
   * with StatusConflictError when `expectedFrom` is given) and appends `event` in the same transaction.
   */
  transitionProtocol(
    id: number,
    to: ProtocolStatus,
    event: Omit<EventInput, "protocolRunId" | "stepRunId">,
    opts?: { expectedFrom?: ProtocolStatus },
  ): Promise<ProtocolRun>;

  /**
   * Takes the run's lease for `owner` until now + ttlMs when it is free, expired or already `owner`'s.
   * Returns the run as it now is; `leaseOwner` tells whether the lease was won.
   */
  acquireRunLease(id: number, owner: string, ttlMs: number): Promise<ProtocolRun>;
  /** Extends `owner`'s lease; false when it was lost (expired and taken, or released). */
  renewRunLease(id: number, owner: string, ttlMs: number): Promise<boolean>;
  releaseRunLease(id: number, owner: string): Promise<void>;
  /** Runs in one of `statuses` that no live runner holds (no lease, or an expired one). */
  listUnleasedRuns(statuses: ProtocolStatus[]): Promise<ProtocolRun[]>;

  createStepRuns(protocolRunId: number, steps: NewStepRun[]): Promise<StepRun[]>;
  getStepRun(id: number): Promise<StepRun>;
  listStepRuns(protocolRunId: number): Promise<StepRun[]>;
  /** Which steps are where, without their JSON fields: what the runner needs to pick the next one. */
  listStepStates(protocolRunId: number): Promise<StepState[]>;
  updateStepRun(id: number, patch: StepRunPatch): Promise<StepRun>;
  /** Like transitionProtocol, for steps; `patch` is written in the same transaction. */
  transitionStep(
    id: number,
    to: StepStatus,
    event: Omit<EventInput, "protocolRunId" | "stepRunId">,
    opts?: { expectedFrom?: StepStatus; patch?: StepRunPatch },
  ): Promise<StepRun>;

  appendEvent(input: EventInput): Promise<Event>;
  listEvents(query: EventQuery): Promise<Event[]>;

  /**
   * Records a webhook delivery by its provider's delivery id, once: false (and nothing written) when
   * that delivery was recorded before.
   */
  recordWebhookDelivery(input: WebhookDelivery): Promise<boolean>;
  findWebhookDelivery(provider: string, deliveryId: string): Promise<WebhookDelivery | undefined>;

  recordUsage(input: UsageRecord): Promise<void>;
  sumUsage(scope: UsageScope): Promise<UsageTotals>;
  /** A run's totals per step run, in one query; steps without calls are absent. */
  sumUsageByStep(protocolRunId: number): Promise<Map<number, UsageTotals>>;
}

/**
 * The store port: the only way to the database. Every error it raises because the database is away
 * is a StoreUnavailableError (an InfrastructureError).
 */
export interface Store extends StoreOps {
  readonly dialect: "sqlite" | "postgres";
  /** The time every timestamp and lease of this store is measured by; what builds on it shares it. */
  readonly clock: Clock;
  /** The figures /metrics reads. */
  readonly stats: StatsRepository;
  /** Engine concurrency slots shared by every process on the database. */
  readonly slots: SlotsRepository;
  /** The embedded job queue's rows. */
  readonly jobs: JobsRepository;
  /** Runs `fn` in one transaction; everything it writes commits or rolls back together. */
  transaction<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
