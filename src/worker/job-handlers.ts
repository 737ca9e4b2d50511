/**
 * What each job kind does: the same use cases and runner the CLI calls, given the job's payload. Each
 * is idempotent, since a job may be delivered again after a worker died: runs continue where they
 * are, a planned run is not planned again, an import fills its run once.
 */
import type { EffectiveConfig } from "../config/load-config.js";
import { openRunPullRequest } from "../pr/open-run-pr.js";
import type { ClaimedJob, JobKind } from "../queue/job-queue.js";
import { ProtocolRunner } from "../runner/protocol-runner.js";
import type { RunnerDeps } from "../runner/run-context.js";
import { fillImport } from "../services/import-run.js";
import { planRun } from "../services/plan-run.js";
import { auditSpecs } from "../services/spec-audit.js";
import { InvalidInputError } from "../shared/errors.js";
import type { QaPolicy } from "../spec/schema.js";
import { rideOutages } from "../store/ride-outages.js";
import type { Json } from "../store/types.js";
import type { EngineSlotLostError, GateFactory, ProviderOf } from "./engine-gate.js";
import type { JobHandler, WorkerLogger } from "./job-worker.js";

function optionalNum(payload: Json, key: string): number | undefined {
  const v = payload[key];
  if (v == null) return undefined;
  if (typeof v !== "number" && !(typeof v === "string" && /^\d+$/.test(v)))
    throw new InvalidInputError(`job payload: ${key} must be a number`);
  return Number(v);
}

function num(payload: Json, key: string): number {
  const v = optionalNum(payload, key);
  if (v === undefined) throw new InvalidInputError(`job payload needs ${key}`);
  return v;
}

const text = (payload: Json, key: string) =>
  typeof payload[key] === "string" ? (payload[key] as string) : undefined;

/** The run a job is about, if any. */
export function runOfJob(payload: Json): number | undefined {
  return optionalNum(payload, "protocol_run_id");
}

export interface HandlerOptions {
  /** Engine caps: the gate of one job, whose lost slot hands the job back. */
  gate?: GateFactory | undefined;
  /** Told when the database goes away and comes back, as the handlers wait for it. */
  logger?: WorkerLogger;
}

/** The config of the project a job works in: the run's project, or the repository a plan job names. */
async function configOfJob(deps: RunnerDeps, payload: Json): Promise<EffectiveConfig | undefined> {
  const runId = runOfJob(payload);
  if (runId === undefined) {
    const repo = text(payload, "repo");
    return repo ? deps.configFor(repo) : undefined;
  }
  const run = await deps.store.getProtocolRun(runId);
  const project = await deps.store.getProject(run.projectId);
  // the project's own checkout holds its config, as for the runner
  return deps.configFor(project.localPath ?? run.worktreePath ?? project.gitUrl);
}

/** Engines' providers for the caps: the `provider` setting in the job's project config, read once. */
function providersOf(deps: RunnerDeps, payload: Json): ProviderOf {
  let config: Promise<EffectiveConfig | undefined> | undefined;
  return async (engineId) => {
    config ??= configOfJob(deps, payload);
    return (await config)?.engines[engineId]?.provider;
  };
}

/**
 * The deps of one piece of work (a job, or what the CLI runs in its own process): with the engine
 * caps' gate when there are caps; a slot it loses calls `abort`.
 */
export function depsForWork(
  deps: RunnerDeps,
  opts: HandlerOptions,
  payload: Json,
  abort: (err: EngineSlotLostError) => void,
): RunnerDeps {
  return opts.gate ? { ...deps, engineGate: opts.gate(abort, providersOf(deps, payload)) } : deps;
}

export function jobHandlers(given: RunnerDeps, opts: HandlerOptions = {}): Record<JobKind, JobHandler> {
  // a job outlives a database outage: its store calls wait for the database to come back
  const deps: RunnerDeps = {
    ...given,
    store: rideOutages(given.store, {
      onOutage: (r) =>
        r.state === "down"
          ? opts.logger?.warn({ error: r.error }, "database unreachable; jobs wait for it")
          : opts.logger?.info({ down_ms: r.downForMs }, "database reachable again; jobs go on"),
    }),
  };
  const depsOf = (job: ClaimedJob, abort: (err: EngineSlotLostError) => void) =>
    depsForWork(deps, opts, job.payload, abort);
  const runner = (job: ClaimedJob, abort: (err: EngineSlotLostError) => void) =>
    new ProtocolRunner(depsOf(job, abort));
  return {
    async execute_protocol(job, signal, abort) {
      await runner(job, abort).run(num(job.payload, "protocol_run_id"), { signal });
    },
    // the action that queued these moved the run and its step already; a run paused or blocked
    // since then is left as it is, and a step already done is not run again
    async execute_step(job, signal, abort) {
      await runner(job, abort).run(num(job.payload, "protocol_run_id"), {
        signal,
        only: { stepRunId: optionalNum(job.payload, "step_run_id") },
      });
    },
    async run_qa(job, signal, abort) {
      await runner(job, abort).run(num(job.payload, "protocol_run_id"), {
        signal,
        only: { stepRunId: optionalNum(job.payload, "step_run_id"), qaOnly: true },
      });
    },
    async plan(job, signal, abort) {
      const runId = runOfJob(job.payload);
      const task = text(job.payload, "task");
      const repo = text(job.payload, "repo");
      if (runId === undefined && (!task || !repo))
        throw new InvalidInputError("plan job needs a protocol_run_id, or a task and a repo");
      // planning into a run again leaves a planned run as it is
      const run = await planRun(depsOf(job, abort), {
        runId,
        task,
        repoDir: repo,
        name: text(job.payload, "name"),
        base: text(job.payload, "base"),
        engine: text(job.payload, "engine"),
        model: text(job.payload, "model"),
        inputs:
          typeof job.payload.inputs === "object"
            ? (job.payload.inputs as Record<string, unknown>)
            : undefined,
        signal,
      });
      if (job.payload.run === true && run.status === "planned")
        await runner(job, abort).run(run.id, { signal });
    },
    async open_pr(job) {
      await openRunPullRequest(
        deps.store,
        num(job.payload, "protocol_run_id"),
        process.env,
        text(job.payload, "remote"),
      );
    },
    async import(job) {
      await fillImport(deps.store, {
        // the id and creation time together name this job across redeliveries (ids restart with a new Redis)
        key: `${job.id}@${job.createdAt}`,
        path: text(job.payload, "path") ?? "",
        repo: text(job.payload, "repo") ?? "",
        workflow: text(job.payload, "workflow"),
        qa: text(job.payload, "qa") as QaPolicy | undefined,
        name: text(job.payload, "name"),
        runId: optionalNum(job.payload, "protocol_run_id"),
      });
    },
    async spec_audit(job) {
      await auditSpecs(deps.store, deps.configFor, {
        projectId: optionalNum(job.payload, "project_id"),
        runId: optionalNum(job.payload, "protocol_run_id"),
        backfill: job.payload.backfill === true,
      });
    },
  };
}
