/** Everything one run needs, loaded once from the store: the frozen spec, its hash and the roots. */
import { fileURLToPath } from "node:url";
import { type EffectiveConfig, withProjectDefaults } from "../config/load-config.js";
import type { EngineRegistry } from "../engines/engine-registry.js";
import { InvalidInputError } from "../shared/errors.js";
import { type NormalizedPolicy, normalizePolicies } from "../spec/normalize-policy.js";
import { ProtocolSpec, type StepSpec } from "../spec/schema.js";
import type { Project, ProtocolRun, Store } from "../store/types.js";
import type { ResolveRoots } from "./resolve-step.js";

/** The prompt library shipped with the package (`prompts/`). */
export const SHIPPED_PROMPTS_DIR = fileURLToPath(new URL("../../prompts/", import.meta.url));

export interface RunnerDeps {
  store: Store;
  registry: EngineRegistry;
  /** Loads the effective config for a repository. */
  configFor: (repoDir: string) => EffectiveConfig;
  promptLibrary?: string;
  /**
   * Waits for a slot of the engine's concurrency cap (shared by all workers) and returns its release.
   * Absent: no cap (the embedded single-process default).
   */
  engineGate?: (engineId: string, signal: AbortSignal) => Promise<() => Promise<void>>;
}

export interface RunContext {
  run: ProtocolRun;
  project: Project;
  spec: ProtocolSpec;
  specHash: string;
  config: EffectiveConfig;
  roots: ResolveRoots;
  /** Spec steps by id, with their index and normalised policies. */
  steps: Map<string, { spec: StepSpec; index: number; policies: NormalizedPolicy[] }>;
}

export async function loadRunContext(deps: RunnerDeps, runId: number): Promise<RunContext> {
  const run = await deps.store.getProtocolRun(runId);
  const project = await deps.store.getProject(run.projectId);
  const parsed = ProtocolSpec.safeParse(run.templateConfig.protocol_spec);
  if (!parsed.success)
    throw new InvalidInputError(
      run.templateConfig.protocol_spec === undefined
        ? `run ${runId} is not planned (it is ${run.status}); plan it with \`tgz plan --run-id ${runId}\``
        : `run ${runId} has no valid frozen protocol spec`,
    );
  const spec = parsed.data;
  const workspace = run.worktreePath ?? project.localPath ?? project.gitUrl;
  if (!run.protocolRoot) throw new InvalidInputError(`run ${runId} has no protocol folder`);
  const steps = new Map<string, { spec: StepSpec; index: number; policies: NormalizedPolicy[] }>();
  spec.steps.forEach((s, index) => {
    steps.set(s.id, { spec: s, index, policies: normalizePolicies(s, spec.steps) });
  });
  return {
    run,
    project,
    spec,
    specHash: run.templateConfig.spec_meta?.spec_hash ?? "",
    // the project's own checkout holds its config, also for runs in a protocol worktree
    config: withProjectDefaults(deps.configFor(project.localPath ?? workspace), project.defaultModels),
    roots: {
      workspace,
      protocolRoot: run.protocolRoot,
      promptLibrary: deps.promptLibrary ?? SHIPPED_PROMPTS_DIR,
    },
    steps,
  };
}
