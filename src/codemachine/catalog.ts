/** The agent catalog of a package: main agents, sub-agents, modules and placeholders, from config/*.js. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describeValue, Fields, isRecord, REASONING_EFFORTS } from "./field-checks.js";
import type { PackageLocation } from "./find-package.js";
import { CodeMachineImportError } from "./import-errors.js";

export type ReasoningEffort = (typeof REASONING_EFFORTS)[number];

/** A chained prompt (0.8): a file or folder, shown only for the given conditions / tracks. */
export interface ChainedEntry {
  path: string;
  conditions?: string[] | undefined;
  conditionsAny?: string[] | undefined;
  tracks?: string[] | undefined;
}

export interface Behavior {
  type: string;
  action?: string | undefined;
  steps?: number | undefined;
  maxIterations?: number | undefined;
  /** Agent ids; in the legacy layout also step indices. */
  skip?: (string | number)[] | undefined;
  /** `type: 'trigger'`: the agent the module calls. */
  triggerAgentId?: string | undefined;
  /** Legacy field of loop behaviours naming an agent to trigger. */
  trigger?: string | undefined;
}

export interface Agent {
  id: string;
  name?: string | undefined;
  description?: string | undefined;
  promptPath?: string | string[] | undefined;
  mirrorPath?: string | undefined;
  chainedPromptsPath?: ChainedEntry[] | undefined;
  engine?: string | undefined;
  model?: string | undefined;
  modelReasoningEffort?: ReasoningEffort | undefined;
  type?: string | undefined;
  behavior?: Behavior | undefined;
  /** Legacy layout: this main agent is the step of modules.js#moduleId. */
  moduleId?: string | undefined;
  /** 0.8 MCP access; `agent-coordination` targets name the sub-agents the agent may call. */
  mcpTargets?: string[] | undefined;
  /** Where it was declared: `config/main.agents.js` and its index there. */
  file: string;
  index: number;
}

export interface Catalog {
  main: Agent[];
  sub: Agent[];
  modules: Agent[];
  placeholders: { userDir: Record<string, string>; packageDir: Record<string, string> };
}

const CONFIG_FILES = ["main.agents.js", "sub.agents.js", "modules.js", "placeholders.js"] as const;

export function configFiles(pkg: PackageLocation): string[] {
  return CONFIG_FILES.map((f) => join(pkg.configDir, f)).filter((f) => existsSync(f));
}

function chainedEntries(f: Fields): ChainedEntry[] | undefined {
  const v = f.value.chainedPromptsPath;
  if (v === undefined) return undefined;
  const list = Array.isArray(v) ? v : [v];
  return list.map((entry, i) => {
    if (typeof entry === "string" && entry.trim() !== "") return { path: entry };
    if (!isRecord(entry)) return f.fail(`chainedPromptsPath[${i}]`, "a path or {path, conditions?, tracks?}");
    const e = Fields.of(f.file, `${f.where}: chainedPromptsPath[${i}]`, entry);
    return {
      path: e.requiredString("path", "a file or folder path"),
      conditions: e.stringList("conditions"),
      conditionsAny: e.stringList("conditionsAny"),
      tracks: e.stringList("tracks"),
    };
  });
}

function behaviorOf(f: Fields, legacy: boolean): Behavior | undefined {
  const b = f.record("behavior");
  if (!b) return undefined;
  // the Python-era layout also wrote stepBack / step_back for steps, and skip entries as step indices
  const steps =
    b.positiveInt("steps") ??
    (legacy ? (b.positiveInt("stepBack") ?? b.positiveInt("step_back")) : undefined);
  const skip = b.list("skip", "a list of agent ids");
  if (skip && !skip.every((s) => typeof s === "string" || (legacy && typeof s === "number")))
    b.fail("skip", "a list of agent ids");
  return {
    type: b.requiredString("type", "a behaviour type such as 'loop'"),
    action: b.string("action"),
    steps,
    maxIterations: b.positiveInt("maxIterations"),
    skip: skip as (string | number)[] | undefined,
    triggerAgentId: b.string("triggerAgentId"),
    trigger: b.string("trigger"),
  };
}

export function mcpTargets(f: Fields): string[] | undefined {
  const list = f.list("mcp", "a list of {server, only?, targets?}");
  if (!list) return undefined;
  const targets: string[] = [];
  let restricted = false;
  list.forEach((entry, i) => {
    const e = Fields.of(f.file, `${f.where}: mcp[${i}]`, entry);
    if (e.string("server") !== "agent-coordination") return;
    const t = e.stringList("targets", "a list of agent ids");
    if (t) {
      restricted = true;
      targets.push(...t);
    }
  });
  return restricted ? targets : undefined;
}

function readAgent(file: string, index: number, value: unknown, legacy: boolean): Agent {
  const f = Fields.of(file, `module.exports[${index}]`, value, "an agent object");
  const id = f.requiredString("id", "an agent id");
  const a = Fields.of(file, `module.exports[${index}] (agent ${id})`, value);
  return {
    id,
    name: a.string("name"),
    // a description may be empty
    description: typeof a.value.description === "string" ? a.value.description : a.string("description"),
    promptPath: a.promptPath("promptPath"),
    mirrorPath: a.string("mirrorPath", "a prompt file path"),
    chainedPromptsPath: chainedEntries(a),
    // `engineId` is how the Python-era layout named the engine
    engine: a.string("engine", "an engine id") ?? (legacy ? a.string("engineId", "an engine id") : undefined),
    model: a.string("model"),
    modelReasoningEffort: a.oneOf("modelReasoningEffort", REASONING_EFFORTS),
    type: a.string("type"),
    behavior: behaviorOf(a, legacy),
    moduleId: legacy ? a.string("moduleId", "a module id") : undefined,
    mcpTargets: mcpTargets(a),
    file,
    index,
  };
}

function readAgents(file: string, value: unknown, legacy: boolean): Agent[] {
  // the Python-era layout documented `export default { agents: [...] }`
  const list = legacy && isRecord(value) && Array.isArray(value.agents) ? value.agents : value;
  if (!Array.isArray(list))
    throw new CodeMachineImportError(
      file,
      `module.exports: expected a list of agents, got ${describeValue(value)}`,
    );
  return list.map((v, i) => readAgent(file, i, v, legacy));
}

function pathMap(file: string, where: string, value: unknown): Record<string, string> {
  const f = Fields.of(file, where, value, "an object of name: file path");
  for (const key of Object.keys(f.value)) f.requiredString(key, "a file path or dir/*.ext");
  return f.value as Record<string, string>;
}

function readPlaceholders(file: string, value: unknown): Catalog["placeholders"] {
  const f = Fields.of(file, "module.exports", value, "an object {userDir, packageDir}");
  // a flat object is read as userDir, as CodeMachine does
  if (!f.has("userDir") && !f.has("packageDir"))
    return { userDir: pathMap(file, "module.exports", value), packageDir: {} };
  return {
    userDir: pathMap(file, "module.exports.userDir", f.value.userDir ?? {}),
    packageDir: pathMap(file, "module.exports.packageDir", f.value.packageDir ?? {}),
  };
}

/** The catalog from the evaluated config files (`values` by file; a missing file is empty). */
export function readCatalog(pkg: PackageLocation, values: Map<string, unknown>): Catalog {
  const legacy = pkg.layout === "legacy";
  const agents = (name: string) => {
    const file = join(pkg.configDir, name);
    return values.has(file) ? readAgents(file, values.get(file), legacy) : [];
  };
  const placeholders = join(pkg.configDir, "placeholders.js");
  return {
    main: agents("main.agents.js"),
    sub: agents("sub.agents.js"),
    modules: agents("modules.js"),
    placeholders: values.has(placeholders)
      ? readPlaceholders(placeholders, values.get(placeholders))
      : { userDir: {}, packageDir: {} },
  };
}
