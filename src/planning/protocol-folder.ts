/**
 * The protocol folder layout shared by planning, imports and backfill: `plan.md`, `context.md`,
 * `log.md`, numbered step files `NN-<slug>.md` (each opening with a one-line header of the planner's
 * per-step choices), and step outputs under `outputs/`. The spec is built from the folder, so a run
 * whose stored spec was lost can be rebuilt from it.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { sanitizeBranchName } from "../git/protocol-names.js";
import { TRANSCRIPTS_DIR } from "../shared/protocol-files.js";
import type { QaPolicy } from "../spec/schema.js";
import type { PlannedStep, PlanOutput } from "./plan-schema.js";

/** `01-<slug>.md` … `99-…`, then `100-…`: two digits at least, ordered by number. */
const STEP_FILE = /^(\d{2,})-[a-z0-9-]+\.md$/;
const HEADER = /^<!-- tasksgodzilla-step (\{.*\}) -->\n/;

interface StepHeader {
  title: string;
  kind: "setup" | "work";
  engine?: string | undefined;
  model?: string | undefined;
  qa?: QaPolicy | undefined;
}

export function stepFileName(index: number, step: Pick<PlannedStep, "slug">): string {
  return `${String(index + 1).padStart(2, "0")}-${sanitizeBranchName(step.slug)}.md`;
}

/**
 * Writes the plan's artifacts into `dir` all at once: they are written to a sibling folder first and
 * moved in place, so a failure never leaves a half-written plan that looks valid.
 */
export function writePlanArtifacts(dir: string, plan: PlanOutput, task: string): string[] {
  const staging = `${dir}.planning-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const files: Record<string, string> = {
    "plan.md": `# ${plan.title}\n\n## Task\n\n${task}\n\n## Plan\n\n${plan.summary}\n\n## Steps\n\n${plan.steps.map((s, i) => `${i + 1}. ${s.title} (\`${stepFileName(i, s)}\`)`).join("\n")}\n`,
    "context.md": `# Context\n\n${plan.context || "(none)"}\n`,
    "log.md": `# Log\n\n- ${new Date().toISOString()} planned ${plan.steps.length} steps\n`,
    // agent transcripts stay in the worktree as evidence but out of checkpoints and the PR
    ".gitignore": `${TRANSCRIPTS_DIR}/\n`,
  };
  plan.steps.forEach((s, i) => {
    const header: StepHeader = { title: s.title, kind: s.kind, engine: s.engine, model: s.model, qa: s.qa };
    files[stepFileName(i, s)] =
      `<!-- tasksgodzilla-step ${JSON.stringify(header)} -->\n# ${s.title}\n\n${s.prompt.trim()}\n`;
  });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(staging, name), text);
  mkdirSync(dirname(dir), { recursive: true });
  if (existsSync(dir)) {
    for (const name of Object.keys(files)) renameSync(join(staging, name), join(dir, name));
    rmSync(staging, { recursive: true, force: true });
  } else {
    renameSync(staging, dir);
  }
  return Object.keys(files);
}

const PLAN_SECTION = /\n## Plan\n\n([\s\S]*?)\n\n## Steps\n/;

/** The plan's summary as `plan.md` holds it, or null when the folder has no plan written by planning. */
export function readPlanSummary(dir: string): string | null {
  const file = join(dir, "plan.md");
  if (!existsSync(file)) return null;
  return PLAN_SECTION.exec(readFileSync(file, "utf8"))?.[1]?.trim() || null;
}

export const RETRY_ON_QA_FAILURE = {
  behavior: "loop",
  id: "retry-on-qa-failure",
  conditions: ["qa_failed"],
  step_back: 0,
  max_iterations: 2,
} as const;

export interface SpecDefaults {
  qaPolicy: QaPolicy;
  timeoutSeconds: number;
}

function readHeader(text: string): Partial<StepHeader> {
  const m = HEADER.exec(text);
  if (!m) return {};
  try {
    return JSON.parse(m[1]!) as Partial<StepHeader>;
  } catch {
    return {};
  }
}

const stepNumber = (file: string) => Number(STEP_FILE.exec(file)![1]);

/** Step files of a protocol folder, in order of their numbers. */
export function stepFiles(dir: string): string[] {
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => STEP_FILE.test(f))
        .sort((a, b) => stepNumber(a) - stepNumber(b) || a.localeCompare(b))
    : [];
}

/**
 * The ProtocolSpec of a protocol folder: one step per step file, prompt_ref the file itself, output a
 * separate file per step (the step file is never overwritten).
 */
export function specFromProtocolFolder(
  dir: string,
  name: string,
  defaults: SpecDefaults,
  metadata: Record<string, unknown> = {},
) {
  const steps = stepFiles(dir).map((file) => {
    const header = readHeader(readFileSync(join(dir, file), "utf8"));
    const id = file.replace(/\.md$/, "");
    // the planner's kind decides; only a folder without headers (written by hand) is guessed from names
    const setup = header.kind ? header.kind === "setup" : /^00-|setup/.test(id);
    return {
      id,
      name: header.title ?? id,
      prompt_ref: file,
      step_type: setup ? ("setup" as const) : ("work" as const),
      ...(header.engine ? { engine_id: header.engine } : {}),
      ...(header.model ? { model: header.model } : {}),
      outputs: { protocol: `outputs/${id}.md` },
      qa: setup
        ? { policy: "skip" as const, reason: "setup step" }
        : { policy: header.qa ?? defaults.qaPolicy },
      timeout_seconds: defaults.timeoutSeconds,
      // a work step whose QA fails is tried again (at most two loop-backs), restored to where it started
      ...(setup ? {} : { policies: [RETRY_ON_QA_FAILURE] }),
    };
  });
  return { version: 1, metadata: { name, ...metadata }, steps };
}
