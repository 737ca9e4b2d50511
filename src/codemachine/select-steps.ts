/**
 * Which steps a run has, decided at import as CodeMachine 0.8 decides it after onboarding: the track
 * and conditions are import options (`--track`, `--condition`), checked against the ones the
 * workflow offers, and steps they hide are left out with the reason recorded. Step fields the runner
 * does not honour are reported as warnings.
 */
import { relative } from "node:path";
import { isRecord } from "./field-checks.js";
import type { PackageLocation } from "./find-package.js";
import { CodeMachineImportError } from "./import-errors.js";
import type { ModuleStep, WorkflowEntry } from "./resolve-workflow.js";

export type Dialect = "0.7" | "0.8";

export interface Selection {
  track: string | undefined;
  conditions: string[];
}

export interface LeftOut {
  agent_id: string;
  entry: string;
  reason: string;
}

/** Track ids: 0.8 `tracks: {question, options: {id: …}}`, or an earlier flat `tracks: {id: …}`. */
function trackIds(template: Record<string, unknown>): string[] | undefined {
  const t = template.tracks;
  if (!isRecord(t)) return undefined;
  return Object.keys(isRecord(t.options) ? t.options : t).filter((k) => k !== "question");
}

/** Condition ids: `conditionGroups[].conditions` (and their children), or an earlier flat `conditions`. */
function conditionIds(template: Record<string, unknown>): string[] | undefined {
  const ids: string[] = [];
  const walk = (groups: unknown) => {
    for (const g of Array.isArray(groups) ? groups : isRecord(groups) ? Object.values(groups) : []) {
      if (!isRecord(g)) continue;
      if (isRecord(g.conditions)) ids.push(...Object.keys(g.conditions));
      walk(g.children);
    }
  };
  walk(template.conditionGroups);
  if (isRecord(template.conditions)) ids.push(...Object.keys(template.conditions));
  return template.conditionGroups === undefined && template.conditions === undefined ? undefined : ids;
}

export function checkSelection(
  template: Record<string, unknown>,
  dialect: Dialect,
  file: string,
  chosen: { track?: string | undefined; conditions?: string[] | undefined },
): Selection {
  const tracks = dialect === "0.8" ? trackIds(template) : undefined;
  const conditions = dialect === "0.8" ? conditionIds(template) : undefined;
  const track = chosen.track;
  if (track !== undefined && !tracks)
    throw new CodeMachineImportError(file, `--track ${track}: the workflow offers no tracks`);
  if (track !== undefined && !tracks!.includes(track))
    throw new CodeMachineImportError(
      file,
      `--track ${track}: not a track of the workflow (tracks: ${tracks!.join(", ")})`,
    );
  if (track === undefined && tracks?.length) {
    const question =
      isRecord(template.tracks) && typeof template.tracks.question === "string"
        ? ` "${template.tracks.question}"`
        : "";
    throw new CodeMachineImportError(
      file,
      `the workflow asks for a track${question}: choose one with --track (tracks: ${tracks.join(", ")})`,
    );
  }
  for (const c of chosen.conditions ?? []) {
    if (!conditions)
      throw new CodeMachineImportError(file, `--condition ${c}: the workflow offers no conditions`);
    if (!conditions.includes(c))
      throw new CodeMachineImportError(
        file,
        `--condition ${c}: not a condition of the workflow (conditions: ${conditions.join(", ") || "none"})`,
      );
  }
  return { track, conditions: [...new Set(chosen.conditions ?? [])] };
}

/** Why CodeMachine 0.8 hides the step for this selection, or undefined when it runs. */
function hiddenBecause(step: ModuleStep, selection: Selection): string | undefined {
  const { track } = selection;
  if (step.tracks?.length && track && !step.tracks.includes(track))
    return `track "${track}" is not among the step's tracks (${step.tracks.join(", ")})`;
  const missing = (step.conditions ?? []).filter((c) => !selection.conditions.includes(c));
  if (missing.length) return `condition(s) not chosen: ${missing.join(", ")}`;
  return undefined;
}

export function selectSteps(
  entries: WorkflowEntry[],
  dialect: Dialect,
  selection: Selection,
  pkg: PackageLocation,
  warnings: string[],
): { entries: WorkflowEntry[]; leftOut: LeftOut[] } {
  const leftOut: LeftOut[] = [];
  const kept = entries.filter((e) => {
    if (e.type !== "module") return true;
    const at = `${relative(pkg.root, e.file) || e.file}: ${e.where}`;
    if (e.notCompletedFallback !== undefined)
      warnings.push(
        dialect === "0.7"
          ? `${at}: notCompletedFallback '${e.notCompletedFallback}' is not run: after a crash the unfinished step simply runs again, with no fallback agent first`
          : `${at}: notCompletedFallback is ignored, as CodeMachine 0.8 ignores it`,
      );
    if (e.interactive === true)
      warnings.push(
        `${at}: interactive: true has no effect: the run does not wait for the user after the step`,
      );
    if (dialect === "0.7") {
      for (const field of ["tracks", "conditions", "conditionsAny"] as const)
        if (e[field])
          warnings.push(`${at}: ${field} is ignored: CodeMachine 0.7 has no tracks or conditions`);
      return true;
    }
    if (e.conditionsAny)
      warnings.push(
        `${at}: conditionsAny is ignored on steps, as in CodeMachine (it applies to chained prompts)`,
      );
    const reason = hiddenBecause(e, selection);
    if (reason) leftOut.push({ agent_id: e.agentId, entry: e.where, reason });
    return !reason;
  });
  return { entries: kept, leftOut };
}

/**
 * Workflow fields asking CodeMachine to wait for the user or to let a controller agent drive (`file`
 * names the workflow, relative to the package): the spec keeps them, the unattended run does not.
 */
export function reportSessionFields(
  template: Record<string, unknown>,
  entries: WorkflowEntry[],
  file: string,
  warnings: string[],
): void {
  if (template.autonomousMode === "false" || template.autonomousMode === "never")
    warnings.push(
      `${file}: autonomousMode '${template.autonomousMode}' has no effect: the run does not wait for the user between steps`,
    );
  // 0.8 sets `controller: controller('id')` on the workflow; a controller() among the steps counts too
  const inSteps = entries.find((e) => e.type === "controller")?.agentId;
  const onTemplate = isRecord(template.controller) ? template.controller.agentId : undefined;
  const controller = inSteps ?? onTemplate;
  if (controller !== undefined)
    warnings.push(
      `${file}: controller '${String(controller)}' is not run: no agent talks with the user before the run or drives its steps`,
    );
}
