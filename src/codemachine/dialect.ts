/**
 * Which CodeMachine a workflow is written for, decided by what it uses rather than by its folder
 * layout alone: CodeMachine 0.8 ships its own workflows in 0.7's `config/` + `templates/workflows/`
 * layout, without a manifest. A workflow that uses anything only 0.8 has is read as 0.8 throughout
 * (tracks and conditions, chained prompts, built-in placeholders, undefined placeholders left as
 * written, `directive.json`, loopSteps counting steps only); otherwise as 0.7.
 */
import type { Catalog } from "./catalog.js";
import type { PackageLocation } from "./find-package.js";
import type { WorkflowEntry } from "./resolve-workflow.js";

export type Dialect = "0.7" | "0.8";

/** What the decision reads of a workflow (the legacy layout has no workflow file, hence no dividers). */
export interface WorkflowShape {
  template: Record<string, unknown>;
  entries: WorkflowEntry[];
  dividers: { ui: boolean; separator: boolean } | undefined;
}

export interface DialectChoice {
  dialect: Dialect;
  /** Why, in words: the 0.8-only features found, or what made it 0.7. */
  reason: string;
}

/** CodeMachine's placeholder syntax: `{name}` (required) and `{!name}` (optional). */
export const PLACEHOLDER = /\{(!)?([a-zA-Z_][a-zA-Z0-9_]*)\}/g;
/** CodeMachine 0.8's built-ins that need no choice: the runner provides them under the same names. */
export const STATIC_BUILTINS = new Set(["date", "datetime", "timestamp", "user_name"]);
/** Every 0.8 built-in, the onboarding's choices included. */
export const BUILTINS_08 = [...STATIC_BUILTINS, "project_name", "selected_track", "selected_conditions"];

/** Workflow fields only 0.8 reads. */
const TEMPLATE_FIELDS_08 = [
  "tracks",
  "conditionGroups",
  "conditions",
  "controller",
  "specification",
  "autonomousMode",
  "projectName",
];

/** The 0.8-only features a workflow uses, each named once with where it was first seen. */
export function features08(
  pkg: PackageLocation,
  workflow: WorkflowShape,
  catalog: Catalog,
  promptTexts: string[],
): string[] {
  const found = new Map<string, string>();
  const note = (feature: string, where = "") => {
    if (!found.has(feature)) found.set(feature, where ? `${feature} (${where})` : feature);
  };
  if (pkg.layout === "package") note("a codemachine.json manifest");
  if (workflow.dividers?.separator) note("separator()");
  for (const field of TEMPLATE_FIELDS_08) if (workflow.template[field] !== undefined) note(field);
  for (const e of workflow.entries) {
    if (e.type === "controller") note("controller()");
    if (e.type !== "module") continue;
    const at = `step ${e.agentId}`;
    if (e.interactive !== undefined) note("interactive", at);
    if (e.tracks) note("step tracks", at);
    if (e.conditions) note("step conditions", at);
    if (e.conditionsAny) note("conditionsAny", at);
    if (Array.isArray(e.promptPath)) note("a list of prompt files", at);
    if (e.chainedPromptsPath.length) note("chainedPromptsPath", at);
    if (e.subAgentTargets) note("mcp", at);
  }
  const defined = new Set([
    ...Object.keys(catalog.placeholders.userDir),
    ...Object.keys(catalog.placeholders.packageDir),
  ]);
  for (const text of promptTexts)
    for (const m of text.matchAll(PLACEHOLDER))
      if (BUILTINS_08.includes(m[2]!) && !defined.has(m[2]!)) note(`the built-in placeholder {${m[2]}}`);
  return [...found.values()];
}

/**
 * The dialect and why. `promptTexts` (the steps' prompt files) are only read for built-in
 * placeholders, so they are asked for only when nothing else shows 0.8.
 */
export function decideDialect(
  pkg: PackageLocation,
  workflow: WorkflowShape,
  catalog: Catalog,
  promptTexts: () => string[],
): DialectChoice {
  let features = features08(pkg, workflow, catalog, []);
  if (features.length === 0) features = features08(pkg, workflow, catalog, promptTexts());
  if (features.length) {
    const ui = workflow.dividers?.ui
      ? "; its resolveUI() dividers (0.7's name for separator) are not counted by loopSteps, as in 0.8"
      : "";
    return { dialect: "0.8", reason: `uses what only CodeMachine 0.8 has: ${features.join(", ")}${ui}` };
  }
  if (workflow.dividers?.ui)
    return {
      dialect: "0.7",
      reason: "uses resolveUI() (0.7's divider) and nothing only CodeMachine 0.8 has",
    };
  if (pkg.layout === "legacy")
    return {
      dialect: "0.7",
      reason: "the .codemachine/config layout of the Python-era tools, with nothing only CodeMachine 0.8 has",
    };
  return {
    dialect: "0.7",
    reason:
      "no codemachine.json manifest and nothing only CodeMachine 0.8 has (0.7 and 0.8 both use the config/ + templates/workflows/ layout)",
  };
}
