/**
 * Which steps a run has, decided at import as CodeMachine 0.8 decides it after onboarding: the track
 * and conditions are import options (`--track`, `--condition`), else the choices CodeMachine's own
 * onboarding saved for this workflow in the repository, else its preselected answers (the first
 * track, no conditions); they are checked against what the workflow offers, and steps they hide are
 * left out with the reason recorded. Step fields the runner does not honour are reported as warnings.
 */
import { relative } from "node:path";
import type { Dialect } from "./dialect.js";
import { isRecord } from "./field-checks.js";
import type { PackageLocation } from "./find-package.js";
import { CodeMachineImportError } from "./import-errors.js";
import type { ModuleStep, WorkflowEntry } from "./resolve-workflow.js";
import type { SavedChoices } from "./saved-choices.js";

export interface Selection {
  track: string | undefined;
  conditions: string[];
}

export interface LeftOut {
  agent_id: string;
  entry: string;
  reason: string;
}

/** One onboarding question about conditions: a `conditionGroups` entry or one of its children. */
interface ConditionQuestion {
  label: string;
  multiSelect: boolean;
  /** Asked only for these tracks. */
  tracks: string[] | undefined;
  /** A child question: asked only when this condition was chosen. */
  parent: string | undefined;
  conditions: string[];
}

/** Track ids: 0.8 `tracks: {question, options: {id: …}}`, or an earlier flat `tracks: {id: …}`. */
function trackIds(template: Record<string, unknown>): string[] | undefined {
  const t = template.tracks;
  if (!isRecord(t)) return undefined;
  return Object.keys(isRecord(t.options) ? t.options : t).filter((k) => k !== "question");
}

const stringList = (v: unknown) =>
  Array.isArray(v) && v.every((x) => typeof x === "string") ? (v as string[]) : undefined;

/** `conditionGroups[]` with their `children` (keyed by the condition that asks them), or an earlier flat `conditions`. */
function conditionQuestions(template: Record<string, unknown>): ConditionQuestion[] | undefined {
  const out: ConditionQuestion[] = [];
  const add = (g: Record<string, unknown>, key: string, tracks: string[] | undefined, parent?: string) => {
    const name = typeof g.id === "string" ? g.id : key;
    const label = typeof g.question === "string" ? `"${g.question}" (${name})` : name;
    out.push({
      label,
      multiSelect: g.multiSelect === true,
      tracks,
      parent,
      conditions: isRecord(g.conditions) ? Object.keys(g.conditions) : [],
    });
    const children = g.children;
    if (isRecord(children))
      for (const [cond, child] of Object.entries(children))
        if (isRecord(child)) add(child, `${name}.children.${cond}`, tracks, cond);
    if (Array.isArray(children))
      children.forEach((child, i) => {
        if (isRecord(child)) add(child, `${name}.children[${i}]`, tracks);
      });
  };
  const groups = template.conditionGroups;
  const list = Array.isArray(groups) ? groups : isRecord(groups) ? Object.values(groups) : [];
  list.forEach((g, i) => {
    if (isRecord(g)) add(g, `conditionGroups[${i}]`, stringList(g.tracks));
  });
  if (isRecord(template.conditions))
    out.push({
      label: "conditions",
      multiSelect: true,
      tracks: undefined,
      parent: undefined,
      conditions: Object.keys(template.conditions),
    });
  return groups === undefined && template.conditions === undefined ? undefined : out;
}

/** Refuses conditions the onboarding would not let a user choose together with `track`. */
function checkConditions(
  chosen: string[],
  track: string | undefined,
  questions: ConditionQuestion[] | undefined,
  fail: (message: string) => never,
  name: string,
): void {
  for (const c of chosen) {
    if (!questions) fail(`${name} ${c}: the workflow offers no conditions`);
    const q = questions.find((x) => x.conditions.includes(c));
    if (!q) {
      const all = questions.flatMap((x) => x.conditions);
      fail(`${name} ${c}: not a condition of the workflow (conditions: ${all.join(", ") || "none"})`);
    }
    if (q.tracks?.length && !(track && q.tracks.includes(track)))
      fail(
        `${name} ${c}: the question ${q.label} is asked only for track(s) ${q.tracks.join(", ")}, not for ${track ? `track ${track}` : "a run without a track"}`,
      );
    if (q.parent !== undefined && !chosen.includes(q.parent))
      fail(`${name} ${c}: the question ${q.label} is asked only when condition ${q.parent} is chosen`);
    const together = chosen.filter((x) => q.conditions.includes(x));
    if (!q.multiSelect && together.length > 1)
      fail(
        `${name} ${together.join(", ")}: the question ${q.label} takes one answer (it has no multiSelect: true)`,
      );
  }
}

export function checkSelection(
  template: Record<string, unknown>,
  dialect: Dialect,
  file: string,
  chosen: { track?: string | undefined; conditions?: string[] | undefined },
  saved: () => SavedChoices | undefined,
  warnings: string[],
): Selection {
  if (dialect === "0.7") {
    if (chosen.track !== undefined)
      throw new CodeMachineImportError(
        file,
        `--track ${chosen.track}: the workflow offers no tracks (it is read as CodeMachine 0.7)`,
      );
    if (chosen.conditions?.length)
      throw new CodeMachineImportError(
        file,
        `--condition ${chosen.conditions[0]}: the workflow offers no conditions (it is read as CodeMachine 0.7)`,
      );
    return { track: undefined, conditions: [] };
  }
  const tracks = trackIds(template);
  const questions = conditionQuestions(template);
  const fromFlags = chosen.track !== undefined || Boolean(chosen.conditions?.length);
  const fromFile = !fromFlags && (tracks?.length || questions) ? saved() : undefined;
  const blame = fromFile?.file ?? file;
  const fail = (message: string): never => {
    throw new CodeMachineImportError(blame, message);
  };
  const [trackName, conditionName] = fromFile
    ? ["selectedTrack", "selectedConditions"]
    : ["--track", "--condition"];
  let track = fromFile ? fromFile.track : chosen.track;
  const conditions = [...new Set(fromFile ? fromFile.conditions : (chosen.conditions ?? []))];
  if (track !== undefined && !tracks) fail(`${trackName} ${track}: the workflow offers no tracks`);
  if (track !== undefined && !tracks!.includes(track))
    fail(`${trackName} ${track}: not a track of the workflow (tracks: ${tracks!.join(", ")})`);
  if (track === undefined && tracks?.length) {
    track = tracks[0]!;
    const question =
      isRecord(template.tracks) && typeof template.tracks.question === "string"
        ? ` to "${template.tracks.question}"`
        : "";
    warnings.push(
      `no track chosen: track ${track}, the first answer${question} (${tracks.join(", ")}), which CodeMachine's onboarding preselects; choose another with --track`,
    );
  }
  checkConditions(conditions, track, questions, fail, conditionName);
  if (fromFile)
    warnings.push(
      `track ${track ?? "(none)"} and conditions ${conditions.join(", ") || "(none)"}, as chosen in CodeMachine's onboarding for this workflow (.codemachine/template.json); --track / --condition choose otherwise`,
    );
  return { track, conditions };
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
  // 0.8 sets `controller: controller('id')` on the workflow (earlier `controller: true`, the agent
  // chosen at onboarding); a controller() among the steps counts too
  const inSteps = entries.find((e) => e.type === "controller")?.agentId;
  const onTemplate = isRecord(template.controller)
    ? `'${String(template.controller.agentId)}'`
    : template.controller === true
      ? "(chosen at onboarding)"
      : undefined;
  const controller = inSteps !== undefined ? `'${inSteps}'` : onTemplate;
  if (controller !== undefined)
    warnings.push(
      `${file}: controller ${controller} is not run: no agent talks with the user before the run or drives its steps`,
    );
}
