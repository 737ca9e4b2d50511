/**
 * The one validation of a spec against what will run it, used by `tgz spec validate`, by run
 * creation (the API, `tgz run SPEC`) and again when a run starts (files may have changed since):
 * the schema and the spec's own references, the project config's engine settings, every engine
 * registered, a prompt where the engine needs one, sandboxes the engine enforces, and — once the
 * repository is known — prompt, output, placeholder and engine file paths (replay's recording)
 * inside their roots, symlinks resolved. Each error carries its JSON pointer.
 */
import { UnknownEngineSettingsError, unknownEngineSettings } from "../config/engine-settings.js";
import type { EffectiveConfig } from "../config/load-config.js";
import type { EngineRegistry } from "../engines/engine-registry.js";
import { sandboxProblem } from "../engines/sandbox-problem.js";
import { ProtocolSpec, type StepSpec } from "../spec/schema.js";
import type { SpecError } from "../spec/spec-error.js";
import { validateSpec } from "../spec/validate-spec.js";
import { type ResolveRoots, resolvePromptPath, resolveStep, StepResolutionError } from "./resolve-step.js";
import type { RunContext } from "./run-context.js";

export interface StepValidationError extends SpecError {
  /** The step the error is about ("" for the spec as a whole). */
  stepId: string;
}

/** What the spec will run with. */
export interface ValidationTarget {
  registry: EngineRegistry;
  config: Pick<EffectiveConfig, "engine" | "engines" | "configFile" | "qa">;
  /** The repository is known: paths are checked inside these roots. */
  roots?: ResolveRoots | undefined;
  /** Steps not checked again (done already when a run resumes: a prompt may rightly be gone). */
  skip?: ReadonlySet<string> | undefined;
}

export interface RunSpecValidation {
  /** The spec, when its schema is valid. */
  spec?: ProtocolSpec;
  errors: StepValidationError[];
  /** Settings the config gives for engines that do not exist (the run blocks with `config_invalid`). */
  config?: UnknownEngineSettingsError;
}

const engineOf = (step: StepSpec, config: { engine: string }) => step.engine_id ?? config.engine;

export function engineIdFor(ctx: RunContext, stepId: string): string {
  return ctx.steps.get(stepId)?.spec.engine_id ?? ctx.config.engine;
}

export function validateRunSpec(raw: unknown, target: ValidationTarget): RunSpecValidation {
  const { registry, config } = target;
  const unknown = unknownEngineSettings(config, registry);
  const configProblem =
    unknown.length > 0
      ? new UnknownEngineSettingsError(unknown, registry.ids(), config.configFile)
      : undefined;
  const withConfig = (v: Omit<RunSpecValidation, "config">) =>
    configProblem ? { ...v, config: configProblem } : v;
  const checked = validateSpec(raw);
  const errors: StepValidationError[] = checked.errors.map((e) => {
    const steps = (raw as { steps?: { id?: unknown }[] } | null)?.steps;
    const id = Array.isArray(steps) ? steps[Number(e.pointer.split("/")[2])]?.id : undefined;
    return { ...e, stepId: typeof id === "string" ? id : "" };
  });
  // a spec whose references are wrong still has steps whose engines and paths can be checked
  const parsed = ProtocolSpec.safeParse(raw);
  if (!parsed.success) return withConfig({ errors });
  const spec = parsed.data;
  const known = registry.ids();
  spec.steps.forEach((step, index) => {
    if (target.skip?.has(step.id)) return;
    const push = (pointer: string, message: string) => errors.push({ stepId: step.id, pointer, message });
    const engineId = engineOf(step, config);
    const engine = registry.has(engineId) ? registry.get(engineId) : undefined;
    if (!engine) {
      push(`/steps/${index}/engine_id`, `unknown engine "${engineId}" (known: ${known.join(", ")})`);
    } else {
      // a mode the engine would not enforce is refused, not run unconfined
      const problem = sandboxProblem(engine, step.sandbox ?? undefined);
      if (problem) push(`/steps/${index}/sandbox`, problem);
    }
    const promptRequired = engine?.capabilities.promptRequired ?? true;
    const qaPolicy = step.qa?.policy ?? config.qa.policy;
    const qaEngineId = step.qa?.engine_id ?? config.qa.engine ?? engineId;
    const qaEngine = qaPolicy === "full" && registry.has(qaEngineId) ? registry.get(qaEngineId) : undefined;
    if (qaPolicy === "full" && !qaEngine)
      push(`/steps/${index}/qa/engine_id`, `unknown QA engine "${qaEngineId}" (known: ${known.join(", ")})`);
    const roots = target.roots;
    if (!roots) {
      if (promptRequired && !step.prompt_ref?.trim())
        push(
          `/steps/${index}/prompt_ref`,
          `step "${step.id}" has no prompt_ref, and its engine needs a prompt`,
        );
      return;
    }
    try {
      resolveStep(step, index, roots, {
        promptRequired,
        fileInputs: engine?.capabilities.fileInputs,
        qaFileInputs: qaEngine?.capabilities.fileInputs,
        placeholders: spec.placeholders,
        readFiles: false,
      });
    } catch (err) {
      if (!(err instanceof StepResolutionError)) throw err;
      push(err.pointer, err.message);
    }
    const qaPrompt = step.qa?.prompt ?? config.qa.prompt;
    if (qaPolicy === "full" && qaPrompt) {
      try {
        resolvePromptPath(qaPrompt, roots, `/steps/${index}/qa/prompt`);
      } catch (err) {
        if (!(err instanceof StepResolutionError)) throw err;
        push(err.pointer, err.message);
      }
    }
  });
  return withConfig({ spec, errors });
}

/** A run's spec checked again as it starts, on its own roots; steps already done are left out. */
export function validateRun(
  ctx: RunContext,
  registry: EngineRegistry,
  done: ReadonlySet<string> = new Set(),
): RunSpecValidation {
  return validateRunSpec(ctx.run.templateConfig.protocol_spec, {
    registry,
    config: ctx.config,
    roots: ctx.roots,
    skip: done,
  });
}
