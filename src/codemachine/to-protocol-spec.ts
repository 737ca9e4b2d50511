/**
 * A CodeMachine workflow as one ProtocolSpec: a step per workflow step in order (dividers dropped,
 * but counted for loopSteps in the 0.7 dialect), engine and model from the step or its agent, a loop
 * policy per looping module (fired by the agent's `loop` directive), the directive file on every step,
 * and the same outputs layout as planned protocols plus `aux.codemachine`.
 */
import type { QaPolicy } from "../spec/schema.js";
import type { Catalog } from "./catalog.js";
import type { PackageLocation } from "./find-package.js";
import { type PromptContext, stepPromptText } from "./prompt-text.js";
import type { ModuleStep, WorkflowEntry } from "./workflow-helpers.js";

export type Dialect = "0.7" | "0.8";

/** CodeMachine engine names → our engine ids; others are kept, so preflight names them. */
const ENGINE_IDS: Record<string, string> = {
  codex: "codex",
  claude: "claude-code",
  opencode: "opencode",
  gemini: "gemini",
};

export function directiveFor(dialect: Dialect) {
  const directive = ".codemachine/memory/directive.json";
  const behavior = ".codemachine/memory/behavior.json";
  return dialect === "0.8"
    ? { file: directive, alt_files: [behavior] }
    : { file: behavior, alt_files: [directive] };
}

/** Unique step ids: an agent that appears twice (e.g. git-commit) gets `-2`, `-3`, … */
function stepIds(steps: ModuleStep[]): string[] {
  const seen = new Map<string, number>();
  return steps.map((s) => {
    const n = (seen.get(s.agentId) ?? 0) + 1;
    seen.set(s.agentId, n);
    return n === 1 ? s.agentId : `${s.agentId}-${n}`;
  });
}

/** The step a module's loop rewinds to: `steps` back, counting dividers in the 0.7 dialect. */
function loopTarget(entries: WorkflowEntry[], moduleEntry: number, back: number, dialect: Dialect): number {
  const isStep = (e: WorkflowEntry | undefined) => e?.type === "module";
  if (dialect === "0.7") {
    let i = Math.max(0, moduleEntry - back);
    while (i < moduleEntry && !isStep(entries[i])) i++; // a divider target runs on to the next step
    return entries.slice(0, i).filter(isStep).length;
  }
  const position = entries.slice(0, moduleEntry).filter(isStep).length;
  return Math.max(0, position - back);
}

export interface SpecInput {
  pkg: PackageLocation;
  catalog: Catalog;
  entries: WorkflowEntry[];
  template: Record<string, unknown>;
  dialect: Dialect;
  qa: QaPolicy;
  repoDir: string;
}

export function toProtocolSpec(input: SpecInput) {
  const { entries, dialect } = input;
  const steps = entries.filter((e): e is ModuleStep => e.type === "module");
  const ids = stepIds(steps);
  const ctx: PromptContext = {
    pkg: input.pkg,
    catalog: input.catalog,
    repoDir: input.repoDir,
    files: {},
    placeholders: {},
    warnings: [],
  };
  const idOfAgent = (agentId: string) => ids[steps.findIndex((s) => s.agentId === agentId)];

  const specSteps = steps.map((step, i) => {
    const id = ids[i]!;
    ctx.files[`prompts/${id}.md`] = stepPromptText(ctx, step);
    const engine = step.engine ? (ENGINE_IDS[step.engine] ?? step.engine) : undefined;
    if (step.engine && !ENGINE_IDS[step.engine])
      ctx.warnings.push(
        `step ${id}: engine "${step.engine}" has no TasksGodzilla adapter; the run will stop before it with the known engines listed`,
      );
    const policies = [];
    if (step.loop) {
      const entryIndex = entries.indexOf(step);
      const target = ids[loopTarget(entries, entryIndex, step.loop.steps, dialect)] ?? id;
      const skip = step.loop.skip.map((agent) => {
        const sid = idOfAgent(agent);
        if (!sid)
          ctx.warnings.push(`step ${id}: loopSkip names "${agent}", which is not a step of this workflow`);
        return sid;
      });
      policies.push({
        behavior: "loop",
        id: step.agentId,
        conditions: ["directive:loop"],
        target_step: target,
        ...(step.loop.maxIterations !== undefined ? { max_iterations: step.loop.maxIterations } : {}),
        skip: skip.filter((s): s is string => Boolean(s)),
      });
    }
    return {
      id,
      name: step.agentName,
      ...(engine ? { engine_id: engine } : {}),
      ...(step.model ? { model: step.model } : {}),
      ...(step.modelReasoningEffort ? { reasoning_effort: step.modelReasoningEffort } : {}),
      prompt_ref: `prompts/${id}.md`,
      outputs: { protocol: `outputs/${id}.md`, aux: { codemachine: `aux/codemachine/${step.agentId}.md` } },
      step_type: "work" as const,
      qa: { policy: input.qa },
      ...(step.executeOnce ? { execute_once: true } : {}),
      directive: directiveFor(dialect),
      ...(policies.length ? { policies } : {}),
      metadata: {
        codemachine: {
          agent_id: step.agentId,
          source: step.source,
          ...(step.interactive !== undefined ? { interactive: step.interactive } : {}),
        },
      },
    };
  });

  const { steps: _steps, ...template } = input.template;
  const controller = entries.find((e) => e.type === "controller");
  const spec = {
    version: 1,
    metadata: {
      name: String(input.template.name ?? input.pkg.name),
      codemachine: {
        package: input.pkg.name,
        version: input.pkg.version,
        layout: input.pkg.layout,
        dialect,
        workflow: input.pkg.workflowFile,
        qa: input.qa,
        sub_agents: input.catalog.sub
          .filter((a) =>
            ((template.subAgentIds as string[] | undefined) ?? input.catalog.sub.map((x) => x.id)).includes(
              a.id,
            ),
          )
          .map((a) => ({ id: a.id, name: a.name ?? a.id, description: a.description ?? null })),
        ...(controller ? { controller } : {}),
      },
    },
    template,
    ...(Object.keys(ctx.placeholders).length ? { placeholders: ctx.placeholders } : {}),
    steps: specSteps,
  };
  return { spec, files: ctx.files, warnings: ctx.warnings };
}
