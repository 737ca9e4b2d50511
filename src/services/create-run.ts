/**
 * Creating a protocol run from a spec: the spec is validated, frozen on the run with its hash, its
 * folder copied into `.protocols/<run>/`, and the step rows created from it — in one transaction.
 * Asked for by a person (the API, `tgz run SPEC`: `check` given), a spec that would block the run at
 * its start is refused with every pointer and nothing is created. Otherwise (a queued import, a
 * plan) a spec that fails validation still creates the run, blocked, with one spec_validation_error
 * per error.
 */
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, extname, join, resolve } from "node:path";
import YAML from "yaml";
import type { EffectiveConfig } from "../config/load-config.js";
import type { EngineRegistry } from "../engines/engine-registry.js";
import {
  MAX_PROTOCOL_NAME,
  MAX_PROTOCOL_NUMBER,
  NUMBERED_NAME,
  namesInCheckout,
  nextProtocolNumber,
  protocolName as numberedName,
  PROTOCOLS_DIR,
  slugify,
} from "../git/protocol-names.js";
import type { ResolveRoots } from "../runner/resolve-step.js";
import { SHIPPED_PROMPTS_DIR } from "../runner/run-context.js";
import { validateRunSpec } from "../runner/validate-run.js";
import { InvalidInputError, TasksGodzillaError } from "../shared/errors.js";
import { isInside } from "../shared/paths.js";
import { FROZEN_SPEC_FILE } from "../shared/protocol-files.js";
import { specHash } from "../spec/canonical-hash.js";
import type { ProtocolSpec, StepSpec } from "../spec/schema.js";
import type { SpecError } from "../spec/spec-error.js";
import { validateSpec } from "../spec/validate-spec.js";
import { EVENT } from "../store/event-types.js";
import type { ProtocolRun, SpecMeta, Store, StoreOps } from "../store/types.js";
import { ensureProject, projectWorkspace } from "./project-service.js";
import { copySpecFolder } from "./spec-folder.js";

export class SpecFileError extends InvalidInputError {}

/** What a spec is checked against before a run is created from it. */
export interface SpecCheck {
  registry: EngineRegistry;
  configFor: (repoDir: string) => EffectiveConfig;
  promptLibrary?: string | undefined;
}

/** A spec that would block its run at start: refused before anything is created, with every pointer. */
export class SpecRefusedError extends TasksGodzillaError {
  readonly code = "spec_invalid";
  constructor(readonly errors: SpecError[]) {
    super(
      `the spec would block the run (${errors.length} error(s)); nothing was created: ${errors
        .map((e) => `${e.pointer || "/"}: ${e.message}`)
        .join("; ")}`,
    );
  }
}

/**
 * Every reason the spec would block a run at its start (`validateRunSpec`), config problems under
 * the pointer "" (the whole spec). The roots are those the run will have, when there is a checkout.
 */
function specProblems(raw: unknown, check: SpecCheck, configDir: string | null, roots?: ResolveRoots) {
  const config = check.configFor(configDir ?? process.cwd());
  const result = validateRunSpec(raw, { registry: check.registry, config, roots });
  return [...(result.config ? [{ pointer: "", message: result.config.message }] : []), ...result.errors].map(
    (e) => ({ pointer: e.pointer, message: e.message }),
  );
}

export function readSpecFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new SpecFileError(`cannot read spec ${path}: ${(err as Error).message}`);
  }
  try {
    return [".yaml", ".yml"].includes(extname(path)) ? YAML.parse(text) : JSON.parse(text);
  } catch (err) {
    throw new SpecFileError(
      `${path} is not valid ${extname(path) === ".json" ? "JSON" : "YAML"}: ${(err as Error).message}`,
    );
  }
}

export function inferStepType(step: StepSpec): string {
  if (step.step_type) return step.step_type;
  const id = step.id.toLowerCase();
  if (id.startsWith("00-") || id.includes("setup")) return "setup";
  return id.includes("qa") ? "qa" : "work";
}

export interface CreateRunInput {
  /** The repository; its project is found or registered by path (unless `projectId` names one). */
  repoDir?: string;
  /** The project the run belongs to; it may have no local checkout (then the run has no folder yet). */
  projectId?: number;
  /** A spec file; its folder (prompts, recordings) is copied into the protocol folder. */
  specPath?: string;
  /** Or the spec itself, with the protocol folder already in place. */
  spec?: unknown;
  /** No spec: the run stays `pending` until it is planned (from its description). */
  unplanned?: boolean;
  /** For a run without a spec: written in its creating transaction (a queued import marks and moves it). */
  thenUnplanned?: (tx: StoreOps, run: ProtocolRun) => Promise<ProtocolRun>;
  /** Fill this existing pending/planning run (a queued import) instead of creating one. */
  intoRunId?: number;
  /** A name that already starts with `NNNN-` is kept as it is (it is the branch CI reports on). */
  name?: string;
  description?: string;
  baseBranch?: string;
  /** Where the steps run; default the project's checkout. */
  worktreePath?: string;
  /** The protocol folder; default `<worktree>/.protocols/<name>`. */
  protocolRoot?: string;
  /** Files written into the protocol folder before the spec is frozen (imported prompts), by relative path. */
  files?: Record<string, string>;
}

/** A run to be planned from its task description: `pending` without a spec until `start` plans it. */
export function createRunFromTask(
  store: Store,
  input: Omit<CreateRunInput, "spec" | "specPath" | "unplanned" | "files" | "intoRunId">,
): Promise<CreatedRun> {
  return createRunFromSpec(store, { ...input, unplanned: true });
}

export interface CreatedRun {
  run: ProtocolRun;
  errors: SpecError[];
}

/**
 * `tgz spec validate FILE [--repo DIR]`: what creating a run from the file would refuse, without
 * creating anything. With the repository, paths are checked on the roots the run would have: the
 * worktree, and a protocol folder holding the spec folder's files (as `tgz run` copies them).
 */
export function specFileProblems(path: string, check: SpecCheck, repoDir?: string): SpecError[] {
  const raw = readSpecFile(path);
  if (!repoDir) return specProblems(raw, check, null);
  let workspace: string;
  try {
    workspace = realpathSync(repoDir);
  } catch {
    throw new InvalidInputError(`repository folder ${repoDir} does not exist`);
  }
  const specDir = dirname(resolve(path));
  const metaName = (raw as { metadata?: { name?: unknown } })?.metadata?.name;
  const name = typeof metaName === "string" ? metaName : basename(path, extname(path));
  return specProblems(raw, check, workspace, {
    workspace,
    protocolRoot: join(workspace, PROTOCOLS_DIR, numberedName(0, slugify(name, 40, "protocol"))),
    promptLibrary: check.promptLibrary ?? SHIPPED_PROMPTS_DIR,
    ...(realpathSync(specDir) === workspace ? {} : { protocolFiles: specDir }),
  });
}

export async function createRunFromSpec(
  store: Store,
  input: CreateRunInput,
  check?: SpecCheck,
): Promise<CreatedRun> {
  const raw = input.spec ?? (input.specPath ? readSpecFile(input.specPath) : undefined);
  if (raw === undefined && !input.unplanned) throw new InvalidInputError("a spec or a spec file is required");
  if (input.intoRunId !== undefined) return fillRun(store, input.intoRunId, raw, input.files);
  const project = await projectFor(store, input);
  const workspace = input.worktreePath ?? projectWorkspace(project);
  const metaName = (raw as { metadata?: { name?: unknown } })?.metadata?.name;
  const baseName =
    input.name ??
    (typeof metaName === "string"
      ? metaName
      : input.specPath
        ? basename(input.specPath, extname(input.specPath))
        : "protocol");
  const givenName = keptName(input.name);
  // a project known only by its git URL has no checkout yet: the run is stored without a folder
  if (!input.protocolRoot && !workspace && (input.files || input.specPath))
    throw new InvalidInputError(
      `project ${project.id} has no local checkout to write the protocol folder in`,
    );
  // a run that could not be created leaves no folder behind to be mistaken for one
  let createdFolder: string | null = null;
  const inCheckout = !givenName && workspace ? await namesInCheckout(workspace) : [];
  const run = await store
    .transaction(async (tx) => {
      // numbered inside the write transaction, so concurrent creators take turns and never share a number
      const protocolName =
        givenName ??
        numberedName(await nextProtocolNumber(tx, project.id, inCheckout), slugify(baseName, 40, "protocol"));
      const protocolRoot =
        input.protocolRoot ?? (workspace ? join(workspace, PROTOCOLS_DIR, protocolName) : null);
      if (protocolRoot) {
        createdFolder = existsSync(protocolRoot) ? null : protocolRoot;
        writeFiles(protocolRoot, input.files);
        if (input.specPath && workspace) copySpecFolder(input.specPath, protocolRoot, workspace);
      }
      if (check && raw !== undefined) {
        // on the folder as the run will have it: its files are in place, the transaction not committed
        const roots =
          workspace && protocolRoot
            ? { workspace, protocolRoot, promptLibrary: check.promptLibrary ?? SHIPPED_PROMPTS_DIR }
            : undefined;
        const problems = specProblems(raw, check, project.localPath ?? workspace, roots);
        if (problems.length > 0) throw new SpecRefusedError(problems);
      }
      const created = await tx.createProtocolRun({
        projectId: project.id,
        protocolName,
        status: "pending",
        baseBranch: input.baseBranch ?? project.baseBranch,
        worktreePath: workspace,
        protocolRoot,
        description: input.description ?? null,
      });
      if (raw === undefined) {
        await tx.appendEvent({
          protocolRunId: created.id,
          eventType: EVENT.protocolCreated,
          message: `Protocol ${protocolName} created without a spec; starting it plans it`,
          metadata: { spec_hash: null, protocol_root: protocolRoot, spec_path: null },
        });
        return input.thenUnplanned ? input.thenUnplanned(tx, created) : created;
      }
      await tx.appendEvent({
        protocolRunId: created.id,
        eventType: EVENT.protocolCreated,
        message: `Protocol ${protocolName} created from spec ${specHash(raw)}`,
        metadata: {
          spec_hash: specHash(raw),
          protocol_root: protocolRoot,
          spec_path: input.specPath ?? null,
        },
        specHash: specHash(raw),
      });
      return freezeSpec(tx, created, raw);
    })
    .catch((err: unknown) => {
      if (createdFolder) rmSync(createdFolder, { recursive: true, force: true });
      throw err;
    });
  return { run, errors: run.templateConfig.spec_meta?.errors ?? [] };
}

/** A name starting with NNNN- is kept as it is: one that is no safe folder and branch name is refused, not renamed. */
function keptName(name: string | undefined): string | undefined {
  if (!name || !/^\d{4,}-/.test(name)) return undefined;
  if (name.length > MAX_PROTOCOL_NAME)
    throw new InvalidInputError(
      `protocol_name: at most ${MAX_PROTOCOL_NAME} characters (it is a folder and a branch name), got ${name.length}`,
    );
  const number = /^(\d+)-/.exec(name)![1]!;
  if (Number(number) > MAX_PROTOCOL_NUMBER)
    throw new InvalidInputError(
      `protocol_name: ${number} is larger than protocol numbers go (at most ${MAX_PROTOCOL_NUMBER}, so the next run can still be numbered)`,
    );
  if (!NUMBERED_NAME.test(name))
    throw new InvalidInputError(
      `protocol_name: "${name}" starts with NNNN-, so it is kept as the protocol's folder and branch name; it must be one path segment of letters, digits, ".", "_" and "-" (no "..", not ending in "." or ".lock")`,
    );
  return name;
}

async function projectFor(store: Store, input: CreateRunInput) {
  if (input.projectId !== undefined) return store.getProject(input.projectId);
  if (!input.repoDir) throw new InvalidInputError("a repository folder or a project id is required");
  return ensureProject(store, input.repoDir);
}

function writeFiles(protocolRoot: string, files: Record<string, string> | undefined): void {
  mkdirSync(protocolRoot, { recursive: true });
  for (const [rel, text] of Object.entries(files ?? {})) {
    const target = resolve(protocolRoot, rel);
    if (!isInside(protocolRoot, target))
      throw new InvalidInputError(`file ${rel} would be written outside the protocol folder`);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, text);
  }
}

/** A queued import freezes its spec into the run the API created for it. */
async function fillRun(
  store: Store,
  runId: number,
  raw: unknown,
  files: Record<string, string> | undefined,
): Promise<CreatedRun> {
  const existing = await store.getProtocolRun(runId);
  if (raw === undefined) throw new InvalidInputError("a spec or a spec file is required");
  if (!["pending", "planning"].includes(existing.status))
    throw new InvalidInputError(
      `protocol run ${runId} is ${existing.status}; only a pending or planning run can be filled`,
    );
  if (existing.protocolRoot) writeFiles(existing.protocolRoot, files);
  const run = await store.transaction((tx) => freezeSpec(tx, existing, raw));
  return { run, errors: run.templateConfig.spec_meta?.errors ?? [] };
}

/**
 * Freezes a spec on a run: written to `protocol-spec.json` in the protocol folder, stored with its hash
 * and validation, and the step rows created — or, when invalid, the run blocked with every pointer.
 * Call inside a transaction.
 */
export async function freezeSpec(tx: StoreOps, run: ProtocolRun, raw: unknown): Promise<ProtocolRun> {
  const validation = validateSpec(raw);
  const hash = specHash(raw);
  if (run.protocolRoot)
    writeFileSync(join(run.protocolRoot, FROZEN_SPEC_FILE), `${JSON.stringify(raw, null, 2)}\n`);
  const specMeta: SpecMeta = {
    status: validation.ok ? "valid" : "invalid",
    errors: validation.errors,
    validated_at: new Date().toISOString(),
    spec_hash: hash,
  };
  await tx.updateProtocolRun(run.id, {
    templateConfig: {
      ...run.templateConfig,
      protocol_spec: raw as Record<string, unknown>,
      spec_meta: specMeta,
    },
  });
  if (!validation.ok) {
    for (const e of validation.errors) {
      await tx.appendEvent({
        protocolRunId: run.id,
        eventType: EVENT.specValidationError,
        message: `${e.pointer || "/"}: ${e.message}`,
        metadata: { pointer: e.pointer, error: e.message },
      });
    }
    return tx.transitionProtocol(run.id, "blocked", {
      eventType: EVENT.protocolBlocked,
      message: `Spec invalid (${validation.errors.length} error(s)); nothing executed`,
      metadata: { reason: "spec_validation_error" },
    });
  }
  await tx.createStepRuns(run.id, stepRowsFromSpec(validation.spec));
  return tx.transitionProtocol(run.id, "planned", {
    eventType: EVENT.protocolPlanned,
    message: `Protocol planned with ${validation.spec.steps.length} steps`,
    metadata: { steps_created: validation.spec.steps.length, spec_hash: hash, spec_validated: true },
  });
}

export function stepRowsFromSpec(spec: ProtocolSpec) {
  return spec.steps.map((s, i) => ({
    stepIndex: i,
    stepName: s.id,
    stepType: inferStepType(s),
    engineId: s.engine_id ?? null,
    model: s.model ?? null,
    policy: (s.policies ?? []) as Record<string, unknown>[],
    summary: s.description ?? null,
  }));
}
