/**
 * Creating a run from a CodeMachine workflow package: imported now (a package that cannot be
 * imported creates nothing), or queued (the run is created `planning`, marked with what the import
 * reads, and an `import` job fills it once, however often it is delivered).
 */
import { type ImportOptions, importCodemachine } from "../codemachine/import-codemachine.js";
import { InvalidInputError } from "../shared/errors.js";
import type { QaPolicy } from "../spec/schema.js";
import { EVENT } from "../store/event-types.js";
import type { Json, ProtocolRun, Store } from "../store/types.js";
import { type CreatedRun, type CreateRunInput, createRunFromSpec, type SpecCheck } from "./create-run.js";
import type { ActionOutcome, JobRequest } from "./dispatch.js";
import { ensureProject } from "./project-service.js";

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

/** The import job of a run marked with its source: queued on import, and again by the reconciler. */
export function importJobOf(run: ProtocolRun, source: ImportSource): JobRequest {
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

/** Where an imported run goes: a project (by id, or by the repository folder) and its names. */
export type ImportTarget = Pick<
  CreateRunInput,
  "projectId" | "repoDir" | "name" | "description" | "baseBranch" | "worktreePath"
>;

export interface ImportedRun extends CreatedRun {
  warnings: string[];
}

/**
 * Imported before anything is created: a package that cannot be imported, or whose spec would block
 * the run at its start, leaves no run behind.
 */
export async function importRunNow(
  store: Store,
  path: string,
  opts: ImportOptions,
  target: ImportTarget,
  check: SpecCheck,
): Promise<ImportedRun> {
  const imported = await importCodemachine(path, { knownEngines: check.registry.ids(), ...opts });
  const created = await createRunFromSpec(
    store,
    {
      ...target,
      name: target.name ?? imported.name,
      description: target.description ?? `CodeMachine workflow ${imported.name}`,
      spec: imported.spec,
      files: imported.files,
    },
    check,
  );
  return { ...created, warnings: imported.warnings };
}

/**
 * A run `planning`, marked as an import in the transaction that creates it; its `import` job is
 * dispatched after that commit (a lost job is queued again by the reconciler from what the run says).
 */
export async function queueImport(
  store: Store,
  source: ImportSource,
  target: ImportTarget,
): Promise<ActionOutcome> {
  const { run } = await createRunFromSpec(store, {
    ...target,
    unplanned: true,
    thenUnplanned: async (tx, created) => {
      await tx.updateProtocolRun(created.id, { templateSource: { codemachine_import: { ...source } } });
      return tx.transitionProtocol(created.id, "planning", {
        eventType: EVENT.importEnqueued,
        message: `Import of ${source.workspace_path} queued`,
        metadata: { workspace_path: source.workspace_path },
      });
    },
  });
  return { run, job: importJobOf(run, source), message: "import queued" };
}

export interface ImportJob {
  /** The job's identity across redeliveries: its id and creation time. */
  key: string;
  path: string;
  repo: string;
  workflow?: string | undefined;
  qa?: QaPolicy | undefined;
  name?: string | undefined;
  /** The run the API created for it; without one the job creates a run, marked with `key`. */
  runId?: number | undefined;
}

/**
 * An import job fills one run with the imported spec, once: the run the API created for it, or one
 * this job creates and marks with its identity, found again on a redelivery.
 */
export async function fillImport(store: Store, job: ImportJob): Promise<ProtocolRun> {
  if (!job.path || !job.repo) throw new InvalidInputError("import job needs path and repo");
  const imported = await importCodemachine(job.path, {
    repoDir: job.repo,
    workflow: job.workflow,
    qa: job.qa,
  });
  const name = job.name ?? imported.name;
  const run =
    job.runId !== undefined ? await store.getProtocolRun(job.runId) : await runOfImport(store, job, name);
  if (run.templateConfig.protocol_spec !== undefined) return run; // filled by an earlier delivery
  return (await createRunFromSpec(store, { intoRunId: run.id, spec: imported.spec, files: imported.files }))
    .run;
}

async function runOfImport(store: Store, job: ImportJob, name: string): Promise<ProtocolRun> {
  const project = await ensureProject(store, job.repo);
  const marked = (r: ProtocolRun) => (r.templateSource as Json | null)?.import_job === job.key;
  const earlier = (await store.listProtocolRuns(project.id)).find(marked);
  if (earlier) return earlier;
  const { run } = await createRunFromSpec(store, { projectId: project.id, unplanned: true, name });
  return store.updateProtocolRun(run.id, { templateSource: { import_job: job.key } });
}
