/**
 * What each job kind does: the same services the CLI calls, given the job's payload. Each is
 * idempotent, since a job may be delivered again after a worker died: runs continue where they are,
 * a planned run is not planned again, an import fills its run once.
 */
import { importCodemachine } from "../codemachine/import-codemachine.js";
import type { EffectiveConfig } from "../config/load-config.js";
import { planProtocol } from "../planning/plan-protocol.js";
import { openRunPullRequest } from "../pr/open-run-pr.js";
import type { ClaimedJob, JobKind } from "../queue/job-queue.js";
import { ProtocolRunner } from "../runner/protocol-runner.js";
import type { RunnerDeps } from "../runner/run-context.js";
import { createRunFromSpec } from "../services/create-run.js";
import { ensureProject } from "../services/project-service.js";
import { auditSpecs } from "../services/spec-audit.js";
import { InvalidInputError } from "../shared/errors.js";
import type { QaPolicy } from "../spec/schema.js";
import { rideOutages } from "../store/ride-outages.js";
import type { Json, ProtocolRun } from "../store/types.js";
import type { EngineGate, EngineSlotLostError, ProviderOf } from "./engine-gate.js";
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
  gate?: (onLost: (err: EngineSlotLostError) => void, providerOf: ProviderOf) => EngineGate;
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
  /** The deps of one job: with its gate when there are caps. */
  const depsOf = (job: ClaimedJob, abort: (err: EngineSlotLostError) => void): RunnerDeps =>
    opts.gate ? { ...deps, engineGate: opts.gate(abort, providersOf(deps, job.payload)) } : deps;
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
      const run = await planProtocol(depsOf(job, abort), {
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
      await openRunPullRequest(deps.store, num(job.payload, "protocol_run_id"), process.env);
    },
    import: (job) => importOnce(deps, job),
    async spec_audit(job) {
      await auditSpecs(deps.store, deps.configFor, {
        projectId: optionalNum(job.payload, "project_id"),
        runId: optionalNum(job.payload, "protocol_run_id"),
        backfill: job.payload.backfill === true,
      });
    },
  };
}

/**
 * What a queued CodeMachine import reads, kept on its run (`template_source.codemachine_import`):
 * the run says it is an import, and a lost job can be queued again from it.
 */
export interface ImportSource {
  workspace_path: string;
  workflow: string | null;
  qa: string | null;
}

export function importSourceOf(run: ProtocolRun): ImportSource | undefined {
  const source = (run.templateSource as { codemachine_import?: unknown } | null)?.codemachine_import;
  return source && typeof (source as ImportSource).workspace_path === "string"
    ? (source as ImportSource)
    : undefined;
}

/** The import job of a run marked with its source: the API queues it, the reconciler again. */
export function importJobOf(
  run: ProtocolRun,
  source: ImportSource,
): { kind: "import"; payload: Json; singletonKey: string } {
  return {
    kind: "import",
    payload: {
      protocol_run_id: run.id,
      path: source.workspace_path,
      repo: source.workspace_path,
      workflow: source.workflow,
      qa: source.qa,
      name: run.protocolName,
    },
    singletonKey: `import:${run.id}`,
  };
}

/**
 * An import fills one run with the imported spec, once. The run is the payload's (created by the
 * API), or one this job creates and marks with its identity, found again on a redelivery.
 */
async function importOnce(deps: RunnerDeps, job: ClaimedJob): Promise<void> {
  const path = text(job.payload, "path");
  const repo = text(job.payload, "repo");
  if (!path || !repo) throw new InvalidInputError("import job needs path and repo");
  const imported = await importCodemachine(path, {
    repoDir: repo,
    workflow: text(job.payload, "workflow"),
    qa: text(job.payload, "qa") as QaPolicy | undefined,
  });
  const name = text(job.payload, "name") ?? imported.name;
  const given = optionalNum(job.payload, "protocol_run_id");
  const run =
    given !== undefined ? await deps.store.getProtocolRun(given) : await runOfImport(deps, job, repo, name);
  if (run.templateConfig.protocol_spec !== undefined) return; // filled by an earlier delivery
  await createRunFromSpec(deps.store, { intoRunId: run.id, spec: imported.spec, files: imported.files });
}

async function runOfImport(deps: RunnerDeps, job: ClaimedJob, repo: string, name: string) {
  // the id and creation time together name this job across redeliveries (ids restart with a new Redis)
  const key = `${job.id}@${job.createdAt}`;
  const project = await ensureProject(deps.store, repo);
  const earlier = (await deps.store.listProtocolRuns(project.id)).find(
    (r) => r.templateSource?.import_job === key,
  );
  if (earlier) return earlier;
  const { run } = await createRunFromSpec(deps.store, { projectId: project.id, unplanned: true, name });
  return deps.store.updateProtocolRun(run.id, { templateSource: { import_job: key } });
}
