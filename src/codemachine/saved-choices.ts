/**
 * The onboarding answers CodeMachine 0.8 saved for a repository: `.codemachine/template.json` holds
 * the active workflow and the track and conditions chosen for it. An import of that same workflow
 * into that repository takes them when no --track or --condition is given, as CodeMachine would.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { isInside } from "../shared/paths.js";
import { Fields } from "./field-checks.js";
import { CodeMachineImportError } from "./import-errors.js";

export interface SavedChoices {
  file: string;
  track: string | undefined;
  conditions: string[];
}

/** The saved choices for `workflowFile`, or undefined when none are saved for it. */
export function readSavedChoices(repoDir: string, workflowFile: string | null): SavedChoices | undefined {
  const file = join(repoDir, ".codemachine", "template.json");
  if (!workflowFile || !existsSync(file)) return undefined;
  if (!isInside(repoDir, file))
    throw new CodeMachineImportError(file, "leads outside the repository (a symlink?)");
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new CodeMachineImportError(
      file,
      `is not valid JSON (${(err as Error).message}); fix or remove it, or choose with --track / --condition`,
    );
  }
  const f = Fields.of(file, "CodeMachine's run state", value, "a JSON object");
  const active = f.string("activeTemplate", "a workflow file name");
  if (active === undefined || basename(active) !== basename(workflowFile)) return undefined;
  const track = f.string("selectedTrack", "a track id");
  const conditions = f.stringList("selectedConditions", "a list of condition ids") ?? [];
  if (track === undefined && conditions.length === 0) return undefined;
  return { file, track, conditions };
}
