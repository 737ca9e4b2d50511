/**
 * The steps of a workflow: the helper calls a workflow file recorded (resolveStep, resolveModule,
 * resolveFolder, resolveUI / separator, controller) resolved against the catalog as CodeMachine's
 * resolvers do, with every option checked; literal step objects checked as CodeMachine's validator
 * checks them; and the legacy layout, whose main agents in order are the steps.
 */
import { existsSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { isInside } from "../shared/paths.js";
import type { Agent, Behavior, Catalog, ChainedEntry, ReasoningEffort } from "./catalog.js";
import { mcpTargets } from "./catalog.js";
import { describeValue, Fields, isRecord, REASONING_EFFORTS } from "./field-checks.js";
import type { PackageLocation } from "./find-package.js";
import { CodeMachineImportError } from "./import-errors.js";

export interface LoopSpec {
  steps: number;
  maxIterations: number | undefined;
  skip: string[];
}

export interface ModuleStep {
  type: "module";
  agentId: string;
  agentName: string;
  promptPath: string | string[];
  chainedPromptsPath: ChainedEntry[];
  engine: string | undefined;
  model: string | undefined;
  modelReasoningEffort: ReasoningEffort | undefined;
  executeOnce: boolean;
  interactive: boolean | undefined;
  tracks: string[] | undefined;
  conditions: string[] | undefined;
  conditionsAny: string[] | undefined;
  notCompletedFallback: string | undefined;
  /** Sub-agents the step may call (MCP agent-coordination targets); undefined: all of the workflow's. */
  subAgentTargets: string[] | undefined;
  loop?: LoopSpec | undefined;
  /** Agents the module's behaviour names for triggers. */
  triggers: string[];
  /** The file and entry, for messages: `steps[3] (resolveModule 'check')`. */
  file: string;
  where: string;
  /** The catalog file of the agent (or the workflow file for a literal step). */
  source: string;
}

export interface Divider {
  type: "ui" | "separator";
  text: string;
}

export interface ControllerEntry {
  type: "controller";
  agentId: string;
  options: unknown;
}

export type WorkflowEntry = ModuleStep | Divider | ControllerEntry;

export interface ResolvedWorkflow {
  /** The workflow object without its steps. */
  template: Record<string, unknown>;
  entries: WorkflowEntry[];
  /** Which divider helper the file used: 0.7's resolveUI or 0.8's separator. */
  dividers: { ui: boolean; separator: boolean };
}

const STEP_HELPERS = "resolveStep, resolveModule, resolveFolder, separator or resolveUI";

interface Context {
  catalog: Catalog;
  pkg: PackageLocation;
  warnings: string[];
}

function rel(ctx: Context, file: string): string {
  return relative(ctx.pkg.root, file) || file;
}

/** A step of `agent`, with the options `o` may override (the fields resolveStep / resolveModule take). */
function stepOf(ctx: Context, agent: Agent, o: Fields, source: string): ModuleStep {
  const promptPath = o.promptPath("promptPath") ?? agent.promptPath;
  if (promptPath === undefined)
    o.fail(
      "promptPath",
      `a prompt file path or a non-empty list of them (set promptPath on agent "${agent.id}" in ${rel(ctx, agent.file)} or in the step's options)`,
    );
  return {
    type: "module",
    agentId: agent.id,
    agentName: o.string("agentName") ?? agent.name ?? agent.id,
    promptPath,
    chainedPromptsPath: agent.chainedPromptsPath ?? [],
    engine: o.string("engine", "an engine id") ?? agent.engine,
    model: o.string("model") ?? agent.model,
    modelReasoningEffort: o.oneOf("modelReasoningEffort", REASONING_EFFORTS) ?? agent.modelReasoningEffort,
    executeOnce: o.boolean("executeOnce") ?? false,
    interactive: o.boolean("interactive"),
    tracks: o.stringList("tracks", "a list of track ids"),
    conditions: o.stringList("conditions", "a list of condition ids"),
    conditionsAny: o.stringList("conditionsAny", "a list of condition ids"),
    notCompletedFallback: o.string("notCompletedFallback", "an agent id"),
    subAgentTargets: mcpTargets(o) ?? agent.mcpTargets,
    triggers: [],
    file: o.file,
    where: o.where,
    source,
  };
}

/** A module's loop, as CodeMachine resolves it: only `{type: 'loop', action: 'stepBack'}` loops. */
function loopOf(ctx: Context, behavior: Behavior | undefined, o: Fields, skipIndex?: (n: number) => string) {
  const steps = o.positiveInt("loopSteps");
  const maxIterations = o.positiveInt("loopMaxIterations");
  const skip = o.stringList("loopSkip", "a list of agent ids");
  if (behavior?.type !== "loop" || behavior.action !== "stepBack") {
    if (behavior?.type === "loop")
      ctx.warnings.push(
        `${rel(ctx, o.file)}: ${o.where}: behavior type 'loop' without action 'stepBack' never loops in CodeMachine; the step gets no loop`,
      );
    for (const field of ["loopSteps", "loopMaxIterations", "loopSkip"].filter((f) => o.has(f)))
      ctx.warnings.push(
        `${rel(ctx, o.file)}: ${o.where}: ${field} has no effect, the module has no loop behavior`,
      );
    return undefined;
  }
  return {
    steps: steps ?? behavior.steps ?? 1,
    maxIterations: maxIterations ?? behavior.maxIterations,
    skip:
      skip ??
      (behavior.skip ?? []).map((s) => (typeof s === "number" && skipIndex ? skipIndex(s) : String(s))),
  };
}

function triggersOf(behavior: Behavior | undefined): string[] {
  const ids = [behavior?.type === "trigger" ? behavior.triggerAgentId : undefined, behavior?.trigger];
  return ids.filter((id): id is string => Boolean(id));
}

function unknownAgent(file: string, where: string, id: string, list: Agent[], from: string) {
  return new CodeMachineImportError(
    file,
    `${where}: no agent "${id}" in ${from} (known: ${list.map((a) => a.id).join(", ") || "none"})`,
  );
}

function folderSteps(ctx: Context, id: string, o: Fields): ModuleStep[] {
  const folder = ctx.catalog.main.find((a) => a.id === id && a.type === "folder");
  if (!folder)
    throw new CodeMachineImportError(
      o.file,
      `${o.where}: needs a {type: 'folder', id: '${id}'} entry in config/main.agents.js`,
    );
  const dir = [
    join(ctx.pkg.promptsDir, "templates", id),
    join(ctx.pkg.root, "prompts", "templates", id),
  ].find((d) => existsSync(d) && isInside(ctx.pkg.root, d));
  if (!dir)
    throw new CodeMachineImportError(
      o.file,
      `${o.where}: folder prompts/templates/${id}/ not found in the package`,
    );
  return readdirSync(dir)
    .map((f) => ({ f, m: /^(\d+)-(.+)\.[^.]+$/.exec(f) }))
    .filter((x) => x.m)
    .sort((a, b) => Number(a.m![1]) - Number(b.m![1]))
    .map(({ f, m }) =>
      stepOf(
        ctx,
        { ...folder, id: m![2]!, name: m![2]!, promptPath: join(dir, f) },
        o,
        rel(ctx, join(dir, f)),
      ),
    );
}

/** A step object written out in the workflow instead of made by a helper. */
function literalStep(ctx: Context, file: string, i: number, e: Record<string, unknown>): WorkflowEntry {
  if (e.type === "ui" || e.type === "separator") return { type: e.type, text: String(e.text ?? "") };
  if (e.type !== "module")
    throw new CodeMachineImportError(
      file,
      `steps[${i}]: expected a step (${STEP_HELPERS}), got ${describeValue(e)} with type ${describeValue(e.type)}`,
    );
  const agentId = Fields.of(file, `steps[${i}]`, e).requiredString("agentId", "an agent id");
  const o = Fields.of(file, `steps[${i}] (agent ${agentId})`, e);
  const agent: Agent = { id: agentId, name: o.requiredString("agentName"), file, index: i };
  const step = stepOf(ctx, agent, o, rel(ctx, file));
  const behavior = o.record("module")?.record("behavior");
  if (behavior) {
    // CodeMachine's validator: a literal module behaviour must be {type: 'loop', action: 'stepBack', steps > 0}
    if (behavior.value.type !== "loop") behavior.fail("type", "'loop'");
    if (behavior.value.action !== "stepBack") behavior.fail("action", "'stepBack'");
    step.loop = {
      steps: behavior.positiveInt("steps") ?? behavior.fail("steps", "a whole number above 0"),
      maxIterations: behavior.positiveInt("maxIterations"),
      skip: behavior.stringList("skip", "a list of agent ids") ?? [],
    };
  }
  return step;
}

function helperCall(ctx: Context, file: string, i: number, e: Record<string, unknown>): WorkflowEntry[] {
  const helper = String(e.$helper);
  const args = Array.isArray(e.args) ? e.args : [];
  if (helper === "resolveUI" || helper === "separator")
    return [{ type: helper === "resolveUI" ? "ui" : "separator", text: String(args[0] ?? "") }];
  const id = args[0];
  if (typeof id !== "string" || id.trim() === "")
    throw new CodeMachineImportError(
      file,
      `steps[${i}]: ${helper}(): the first argument must be an agent id (a string), got ${describeValue(id)}`,
    );
  const o = Fields.of(file, `steps[${i}] (${helper} '${id}')`, args[1], "an options object");
  if (helper === "controller") return [{ type: "controller", agentId: id, options: args[1] ?? {} }];
  if (helper === "resolveFolder") return folderSteps(ctx, id, o);
  if (helper === "resolveStep") {
    const agent = ctx.catalog.main.find((a) => a.id === id && a.type !== "folder");
    if (!agent) throw unknownAgent(file, o.where, id, ctx.catalog.main, "config/main.agents.js");
    return [stepOf(ctx, agent, o, rel(ctx, agent.file))];
  }
  const module = ctx.catalog.modules.find((a) => a.id === id);
  if (!module) throw unknownAgent(file, o.where, id, ctx.catalog.modules, "config/modules.js");
  const step = stepOf(ctx, module, o, rel(ctx, module.file));
  step.loop = loopOf(ctx, module.behavior, o);
  step.triggers = triggersOf(module.behavior);
  return [step];
}

/** The workflow file's value (`export default {...}`) as entries, helpers resolved. */
export function resolveWorkflow(
  file: string,
  value: unknown,
  catalog: Catalog,
  pkg: PackageLocation,
  warnings: string[],
): ResolvedWorkflow {
  const ctx: Context = { catalog, pkg, warnings };
  const t = Fields.of(file, "export default", value, "a workflow object {name, steps}");
  t.requiredString("name", "a workflow name");
  const steps = t.list("steps", `a list of steps (${STEP_HELPERS})`) ?? [];
  if (steps.length === 0) t.fail("steps", `a non-empty list of steps (${STEP_HELPERS})`);
  t.stringList("subAgentIds", "a list of sub-agent ids");
  const dividers = { ui: false, separator: false };
  const entries = steps.flat().flatMap((e, i): WorkflowEntry[] => {
    if (!isRecord(e))
      throw new CodeMachineImportError(
        file,
        `steps[${i}]: expected a step (${STEP_HELPERS}), got ${describeValue(e)}`,
      );
    if (e.$helper === "resolveUI") dividers.ui = true;
    if (e.$helper === "separator") dividers.separator = true;
    return e.$helper === undefined ? [literalStep(ctx, file, i, e)] : helperCall(ctx, file, i, e);
  });
  const { steps: _steps, ...template } = t.value;
  return { template, entries, dividers };
}

/** The legacy layout: every main agent (folders aside) is a step; a `moduleId` twin takes that module's loop. */
export function legacyEntries(catalog: Catalog, pkg: PackageLocation, warnings: string[]): WorkflowEntry[] {
  const ctx: Context = { catalog, pkg, warnings };
  const agents = catalog.main.filter((a) => a.type !== "folder");
  return agents.map((agent) => {
    const o = Fields.of(agent.file, `module.exports[${agent.index}] (agent ${agent.id})`, {});
    const step = stepOf(ctx, agent, o, rel(ctx, agent.file));
    if (agent.moduleId) {
      const module = catalog.modules.find((m) => m.id === agent.moduleId);
      if (!module)
        throw new CodeMachineImportError(
          agent.file,
          `${o.where}: moduleId: no module "${agent.moduleId}" in config/modules.js (known: ${catalog.modules.map((m) => m.id).join(", ") || "none"})`,
        );
      // the Python-era layout looped without an action, and its skip lists hold indices into this list
      const behavior = module.behavior && {
        ...module.behavior,
        action: module.behavior.action ?? "stepBack",
      };
      step.loop = loopOf(ctx, behavior, o, (n) => agents[n]?.id ?? String(n));
      step.triggers = triggersOf(module.behavior);
    }
    return step;
  });
}

/** A catalog agent outside the workflow's steps, as a trigger runs it: its own prompt, engine and model. */
export function agentStep(
  catalog: Catalog,
  pkg: PackageLocation,
  warnings: string[],
  agent: Agent,
): ModuleStep {
  const ctx: Context = { catalog, pkg, warnings };
  const o = Fields.of(agent.file, `module.exports[${agent.index}] (agent ${agent.id})`, {});
  // a sub-agent's prompt is its mirrored file
  return stepOf(ctx, { ...agent, promptPath: agent.promptPath ?? agent.mirrorPath }, o, rel(ctx, agent.file));
}
