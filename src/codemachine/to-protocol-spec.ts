/**
 * A CodeMachine workflow as one ProtocolSpec: a step per visible workflow step in order (dividers
 * dropped, but counted for loopSteps in the 0.7 dialect), engine and model from the step or its agent
 * (the project's default engine when neither names one),
 * a loop policy per looping module (fired by the agent's `loop` directive), the directive file on
 * every step, trigger-only steps for the catalog agents a trigger can name, the sub-agents in each
 * prompt, and the same outputs layout as planned protocols plus `aux.codemachine`.
 */
import type { QaPolicy } from "../spec/schema.js";
import type { Catalog } from "./catalog.js";
import type { Dialect, DialectChoice } from "./dialect.js";
import type { PackageLocation } from "./find-package.js";
import { ReadBudget } from "./import-limits.js";
import type { PlaceholderFile } from "./placeholder-files.js";
import { type PromptContext, packageFile, stepPromptText } from "./prompt-text.js";
import { agentStep, type ModuleStep, type WorkflowEntry } from "./resolve-workflow.js";
import type { LeftOut, Selection } from "./select-steps.js";

/** CodeMachine engine names → our engine ids; others are kept (and named by preflight) unless mapped. */
const ENGINE_IDS: Record<string, string> = {
  codex: "codex",
  claude: "claude-code",
  opencode: "opencode",
  gemini: "gemini",
};

/**
 * The loop limit written when neither loopMaxIterations nor behavior.maxIterations sets one.
 * CodeMachine has no limit there; an imported loop always has one.
 */
const DEFAULT_LOOP_LIMIT = 3;

/** How a prompt names the agent a trigger directive runs (also in example text: only catalog agents count). */
const TRIGGER_MENTION = /["']?triggerAgentId["']?\s*:\s*["']([A-Za-z0-9_.-]+)["']/g;

function directiveFor(dialect: Dialect) {
  const directive = ".codemachine/memory/directive.json";
  const behavior = ".codemachine/memory/behavior.json";
  return dialect === "0.8"
    ? { file: directive, alt_files: [behavior] }
    : { file: behavior, alt_files: [directive] };
}

/** Unique step ids: an agent that appears twice (e.g. git-commit) gets `-2`, `-3`, … */
function stepIds(steps: ModuleStep[]): string[] {
  const taken = new Set<string>();
  const seen = new Map<string, number>();
  return steps.map((s) => {
    let n = seen.get(s.agentId) ?? 0;
    let id: string;
    do {
      n++;
      id = n === 1 ? s.agentId : `${s.agentId}-${n}`;
    } while (taken.has(id));
    seen.set(s.agentId, n);
    taken.add(id);
    return id;
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
  /** The visible entries: steps the selection hides are already left out. */
  entries: WorkflowEntry[];
  leftOut: LeftOut[];
  template: Record<string, unknown>;
  dialect: DialectChoice;
  selection: Selection;
  placeholderFiles: Map<string, PlaceholderFile>;
  qa: QaPolicy;
  /** The project's default engine: what a step whose agent names none runs on. */
  defaultEngine: string;
  repoDir: string;
  /** CodeMachine engine name → engine id, over ENGINE_IDS. */
  engines: Record<string, string>;
  knownEngines: readonly string[];
  warnings: string[];
}

/**
 * Catalog agents a trigger can name that are not steps: those module trigger behaviours name, and
 * those a prompt's `"triggerAgentId": "x"` names when x is an agent (other names are example text).
 */
function triggerTargets(input: SpecInput, steps: ModuleStep[], prompts: string[]): ModuleStep[] {
  const { catalog } = input;
  const agents = [...catalog.main.filter((a) => a.type !== "folder"), ...catalog.modules, ...catalog.sub];
  const named = new Set(steps.flatMap((s) => s.triggers));
  for (const text of prompts)
    for (const m of text.matchAll(TRIGGER_MENTION)) if (agents.some((a) => a.id === m[1])) named.add(m[1]!);
  const inWorkflow = new Set(steps.map((s) => s.agentId));
  return [...named]
    .filter((id) => !inWorkflow.has(id))
    .flatMap((id) => {
      const agent = agents.find((a) => a.id === id);
      if (!agent || (agent.promptPath === undefined && agent.mirrorPath === undefined)) {
        input.warnings.push(
          `a trigger names agent "${id}", which ${agent ? "has no prompt" : "is not in the catalog"}; a trigger directive naming it blocks the run`,
        );
        return [];
      }
      return [agentStep(catalog, input.pkg, input.warnings, agent)];
    });
}

interface SubAgent {
  id: string;
  name: string;
  description: string | null;
  file: string;
  dynamic: boolean;
}

/** The template's subAgentIds, their prompts copied into the protocol folder as CodeMachine mirrors them. */
function mirrorSubAgents(input: SpecInput, ctx: PromptContext): SubAgent[] {
  const ids = (input.template.subAgentIds as string[] | undefined) ?? [];
  const found = ids.flatMap((id) => {
    const agent = input.catalog.sub.find((a) => a.id === id);
    if (!agent) {
      input.warnings.push(`subAgentIds names "${id}", which is not in config/sub.agents.js`);
      return [];
    }
    const file = `codemachine/agents/${id}.md`;
    const asker = { file: agent.file, where: `module.exports[${agent.index}] (agent ${id})` };
    // without a mirrorPath the file starts empty: a main agent writes the prompt ("dynamic" sub-agent)
    ctx.files[file] = agent.mirrorPath
      ? ctx.budget.read(packageFile(ctx, agent.mirrorPath, asker, "mirrorPath"), asker, "mirrorPath")
      : "";
    return [
      {
        id,
        name: agent.name ?? id,
        description: agent.description ?? null,
        file,
        dynamic: !agent.mirrorPath,
      },
    ];
  });
  if (found.length)
    ctx.files["codemachine/agents/agents-config.json"] = `${JSON.stringify(
      found.map(({ id, name, description }) => ({ id, name, description })),
      null,
      2,
    )}\n`;
  return found;
}

/** The prompt section that tells a main agent which sub-agents it has and where their prompts are. */
function subAgentSection(agents: SubAgent[]): string {
  if (agents.length === 0) return "";
  const lines = agents.map(
    (a) =>
      `- \`${a.id}\` (${a.name})${a.description ? `: ${a.description}` : ""}. Prompt: {{protocol_dir}}/${a.file}${a.dynamic ? " (empty until you write it)" : ""}`,
  );
  return `\n\n---\n\n## Sub-agents\n\nHelpers you may hand work to. Each one's instructions are in its prompt file: follow them yourself or give them to a sub-agent of your own.\n\n${lines.join("\n")}\n`;
}

export function toProtocolSpec(input: SpecInput) {
  const { entries } = input;
  const { dialect } = input.dialect;
  const ctx: PromptContext = {
    pkg: input.pkg,
    catalog: input.catalog,
    repoDir: input.repoDir,
    budget: new ReadBudget(input.pkg.root),
    dialect,
    selection: input.selection,
    placeholderFiles: input.placeholderFiles,
    files: {},
    placeholders: {},
    warnings: input.warnings,
  };
  const steps = entries.filter((e): e is ModuleStep => e.type === "module");
  const prompts = steps.map((s) => stepPromptText(ctx, s));
  const triggerOnly = triggerTargets(input, steps, prompts);
  const all = [...steps, ...triggerOnly];
  const texts = [...prompts, ...triggerOnly.map((s) => stepPromptText(ctx, s))];
  const ids = stepIds(all);
  const subAgents = mirrorSubAgents(input, ctx);

  const specSteps = all.map((step, i) => {
    const id = ids[i]!;
    const isTriggerOnly = i >= steps.length;
    const visibleTo = subAgents.filter((a) => !step.subAgentTargets || step.subAgentTargets.includes(a.id));
    ctx.files[`prompts/${id}.md`] = texts[i]! + subAgentSection(visibleTo);
    const mapped = step.engine
      ? (input.engines[step.engine] ?? ENGINE_IDS[step.engine] ?? step.engine)
      : input.defaultEngine;
    if (!step.engine)
      input.warnings.push(
        `step ${id}: agent "${step.agentId}" names no engine (nor does the step); it runs on ${mapped}, the project's default engine (CodeMachine would take its first authenticated engine)`,
      );
    if (step.engine && !input.knownEngines.includes(mapped))
      input.warnings.push(
        `step ${id}: engine "${step.engine}" has no TasksGodzilla engine, so preflight blocks the whole run before any step runs; map it with --engine ${step.engine}=<engine> (engines: ${input.knownEngines.join(", ")})`,
      );
    const policies = [];
    if (step.loop) {
      const target = ids[loopTarget(entries, entries.indexOf(step), step.loop.steps, dialect)] ?? id;
      // CodeMachine skips by agent id: every step of a listed agent
      const skip = step.loop.skip.flatMap((agent) => {
        const of = steps.flatMap((s, j) => (s.agentId === agent ? [ids[j]!] : []));
        if (of.length === 0)
          input.warnings.push(`step ${id}: loopSkip names "${agent}", which is not a step of this workflow`);
        return of;
      });
      if (step.loop.maxIterations === undefined)
        input.warnings.push(
          `step ${id}: no loop limit (loopMaxIterations / behavior.maxIterations); the loop stops after ${DEFAULT_LOOP_LIMIT} iterations`,
        );
      policies.push({
        behavior: "loop",
        id: step.agentId,
        conditions: ["directive:loop"],
        target_step: target,
        max_iterations: step.loop.maxIterations ?? DEFAULT_LOOP_LIMIT,
        skip,
      });
    }
    return {
      id,
      name: step.agentName,
      agent_id: step.agentId,
      ...(isTriggerOnly ? { trigger_only: true } : {}),
      engine_id: mapped,
      ...(step.model ? { model: step.model } : {}),
      ...(step.modelReasoningEffort ? { reasoning_effort: step.modelReasoningEffort } : {}),
      prompt_ref: `prompts/${id}.md`,
      outputs: { protocol: `outputs/${id}.md`, aux: { codemachine: `aux/codemachine/${id}.md` } },
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
          ...(visibleTo.length ? { sub_agents: visibleTo.map((a) => a.id) } : {}),
          ...(isTriggerOnly ? { trigger_only: "a trigger names this agent; it is not a workflow step" } : {}),
        },
      },
    };
  });

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
        dialect_reason: input.dialect.reason,
        workflow: input.pkg.workflowFile,
        qa: input.qa,
        selected_track: input.selection.track ?? null,
        selected_conditions: input.selection.conditions,
        ...(input.leftOut.length ? { left_out: input.leftOut } : {}),
        sub_agents: subAgents.map(({ id, name, description }) => ({ id, name, description })),
        ...(controller ? { controller } : {}),
      },
    },
    template: input.template,
    ...(Object.keys(ctx.placeholders).length ? { placeholders: ctx.placeholders } : {}),
    steps: specSteps,
  };
  return { spec, files: ctx.files };
}
