/**
 * Run-time validation of a frozen spec before anything executes: the spec's own references, engines
 * known, prompts and outputs resolvable inside their roots. Each error carries its JSON pointer.
 */
import type { EngineRegistry } from "../engines/engine-registry.js";
import { sandboxProblem } from "../engines/sandbox-problem.js";
import { checkReferences } from "../spec/check-references.js";
import type { SpecError } from "../spec/validate-spec.js";
import { resolvePromptPath, resolveStep, StepResolutionError } from "./resolve-step.js";
import type { RunContext } from "./run-context.js";

export interface StepValidationError extends SpecError {
  stepId: string;
}

export function engineIdFor(ctx: RunContext, stepId: string): string {
  return ctx.steps.get(stepId)?.spec.engine_id ?? ctx.config.engine;
}

export function validateRun(ctx: RunContext, registry: EngineRegistry): StepValidationError[] {
  const errors: StepValidationError[] = [];
  const known = registry.list().map((e) => e.id);
  for (const [stepId, { spec, index }] of ctx.steps) {
    const push = (pointer: string, message: string) => errors.push({ stepId, pointer, message });
    const engineId = engineIdFor(ctx, stepId);
    if (!registry.has(engineId)) {
      push(`/steps/${index}/engine_id`, `unknown engine "${engineId}" (known: ${known.join(", ")})`);
    } else {
      // a mode the engine would not enforce is refused, not run unconfined
      const problem = sandboxProblem(registry.get(engineId), spec.sandbox ?? undefined);
      if (problem) push(`/steps/${index}/sandbox`, problem);
    }
    try {
      const promptRequired = registry.has(engineId)
        ? registry.get(engineId).capabilities.promptRequired
        : true;
      resolveStep(spec, index, ctx.roots, {
        promptRequired,
        placeholders: ctx.spec.placeholders,
        readFiles: false,
      });
    } catch (err) {
      if (!(err instanceof StepResolutionError)) throw err;
      push(err.pointer, err.message);
    }
    const qaPolicy = spec.qa?.policy ?? ctx.config.qa.policy;
    if (qaPolicy === "full") {
      const qaEngine = spec.qa?.engine_id ?? ctx.config.qa.engine ?? engineId;
      if (!registry.has(qaEngine)) {
        push(`/steps/${index}/qa/engine_id`, `unknown QA engine "${qaEngine}" (known: ${known.join(", ")})`);
      }
      const qaPrompt = spec.qa?.prompt ?? ctx.config.qa.prompt;
      if (qaPrompt) {
        try {
          resolvePromptPath(qaPrompt, ctx.roots, `/steps/${index}/qa/prompt`);
        } catch (err) {
          if (!(err instanceof StepResolutionError)) throw err;
          push(err.pointer, err.message);
        }
      }
    }
  }
  for (const e of checkReferences(ctx.spec)) {
    const index = Number(e.pointer.split("/")[2]);
    errors.push({ ...e, stepId: ctx.spec.steps[index]?.id ?? "" });
  }
  return errors;
}
