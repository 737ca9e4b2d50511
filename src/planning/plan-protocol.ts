/**
 * `tgz plan`: from a task description to a planned run. The next protocol number and a branch and
 * worktree `NNNN-<short-name>` off the base branch; the planning engine writes the plan as JSON
 * (validated against the published planning schema); the artifacts and the spec are built from it and
 * frozen on the run. A plan that fails validation blocks the run with every error and writes no plan
 * (the planning transcripts stay, git-ignored, in the worktree).
 *
 * A run that already exists (created through the API with only a description) is planned in place;
 * planning it again is safe: a planned run is left as it is, and what an interrupted attempt left
 * behind (worktree, branch) is removed before the new attempt.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { settingsFor } from "../config/engine-settings.js";
import type { EngineRequest, TokenUsage } from "../engines/engine-port.js";
import { checkpoint } from "../git/checkpoints.js";
import { branchExists, repoRoot } from "../git/git-command.js";
import { nextProtocolNumber, protocolName } from "../git/protocol-names.js";
import { createProtocolWorktree, protocolWorktreesRoot, removeWorktree } from "../git/worktrees.js";
import { askForJson, type JsonAttempt } from "../runner/ask-for-json.js";
import { contentVersion, renderTemplate } from "../runner/resolve-step.js";
import type { RunnerDeps } from "../runner/run-context.js";
import { SHIPPED_PROMPTS_DIR } from "../runner/run-context.js";
import { estimatedUsage, totalTokens } from "../runner/token-estimate.js";
import { freezeSpec, PROTOCOLS_DIR } from "../services/create-run.js";
import { ensureProject } from "../services/project-service.js";
import { InvalidInputError } from "../shared/errors.js";
import { isInside } from "../shared/paths.js";
import { EVENT } from "../store/event-types.js";
import type { Project, ProtocolRun } from "../store/types.js";
import { planningJsonSchema, planValidator } from "./plan-schema.js";
import { specFromProtocolFolder, TRANSCRIPTS_DIR, writePlanArtifacts } from "./protocol-folder.js";

export const PLANNING_PROMPT = "protocol-new.prompt.md";

export interface PlanInput {
  /** The task; for an existing run, default: its description. */
  task?: string | undefined;
  /** The repository; for an existing run, its project's. */
  repoDir?: string | undefined;
  /** Plan into this run (pending, or blocked/planning without a spec) instead of creating one. */
  runId?: number | undefined;
  /** Short name for the branch; default: from the task (or the existing run's name). */
  name?: string | undefined;
  base?: string | undefined;
  engine?: string | undefined;
  model?: string | undefined;
  /** Inputs for the planning engine (e.g. `recording` for replay). */
  inputs?: Record<string, unknown> | undefined;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

/** Statuses a run without a spec can be planned from (planning: an attempt that was interrupted). */
const PLANNABLE = new Set(["pending", "blocked", "planning"]);
const NUMBERED = /^\d{4}-[a-z0-9-]+$/;

function topLevelListing(dir: string): string {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.name !== ".git" && e.name !== PROTOCOLS_DIR)
    .map((e) => `- ${e.name}${e.isDirectory() ? "/" : ""}`)
    .sort()
    .join("\n");
}

const shortName = (task: string) => task.split(/\s+/).slice(0, 5).join(" ");

interface Target {
  repo: string;
  project: Project;
  task: string;
  base: string;
  name: string;
  existing: ProtocolRun | undefined;
}

async function newTarget(deps: RunnerDeps, input: PlanInput): Promise<Target> {
  if (!input.task) throw new InvalidInputError("planning needs a task description");
  const repo = await repoRoot(input.repoDir ?? process.cwd());
  const project = await ensureProject(deps.store, repo);
  const known = (await deps.store.listProtocolRuns(project.id)).map((r) => r.protocolName);
  const name = protocolName(await nextProtocolNumber(repo, known), input.name ?? shortName(input.task));
  return {
    repo,
    project,
    task: input.task,
    base: input.base ?? project.baseBranch,
    name,
    existing: undefined,
  };
}

/** The existing run to plan into, or the run itself when it is planned already. */
async function existingTarget(
  deps: RunnerDeps,
  input: PlanInput,
  runId: number,
): Promise<Target | ProtocolRun> {
  const run = await deps.store.getProtocolRun(runId);
  if (run.templateConfig.protocol_spec !== undefined) return run;
  if (!PLANNABLE.has(run.status))
    throw new InvalidInputError(`run ${runId} is ${run.status} and has no spec; it cannot be planned`);
  const task = input.task ?? run.description;
  if (!task) throw new InvalidInputError(`run ${runId} has no description to plan from; pass a task`);
  const project = await deps.store.getProject(run.projectId);
  const repo = await repoRoot(project.localPath ?? project.gitUrl);
  const previous = run.templateConfig.branch;
  const known = (await deps.store.listProtocolRuns(project.id)).map((r) => r.protocolName);
  const name =
    typeof previous === "string"
      ? previous
      : NUMBERED.test(run.protocolName) && !(await branchExists(repo, run.protocolName))
        ? run.protocolName
        : protocolName(await nextProtocolNumber(repo, known), input.name ?? run.protocolName);
  return { repo, project, task, base: input.base ?? run.baseBranch, name, existing: run };
}

export async function planProtocol(deps: RunnerDeps, input: PlanInput): Promise<ProtocolRun> {
  const env = input.env ?? process.env;
  const signal = input.signal ?? new AbortController().signal;
  const found = input.runId !== undefined ? await existingTarget(deps, input, input.runId) : undefined;
  if (found && !("repo" in found)) return found;
  const { repo, project, task, base, name, existing } = found ?? (await newTarget(deps, input));
  const config = deps.configFor(repo);
  const worktreesRoot = protocolWorktreesRoot(repo, env);
  // an earlier attempt for this run left a worktree without a plan: start again from the base
  if (
    existing?.templateConfig.branch === name &&
    existing.worktreePath &&
    isInside(worktreesRoot, existing.worktreePath)
  )
    await removeWorktree(repo, existing.worktreePath, name, true);
  const worktree = await createProtocolWorktree({ repo, base, name, worktreesRoot });
  const protocolRoot = join(worktree.path, PROTOCOLS_DIR, name);
  const engineId = input.engine ?? config.engine;
  const model = input.model ?? config.models.plan ?? null;
  const gitState = { task, base_commit: worktree.baseCommit, branch: name };

  let run = await deps.store.transaction(async (tx) => {
    const created = existing
      ? await tx.updateProtocolRun(existing.id, {
          worktreePath: worktree.path,
          protocolRoot,
          templateConfig: { ...existing.templateConfig, ...gitState },
        })
      : await tx.createProtocolRun({
          projectId: project.id,
          protocolName: name,
          status: "pending",
          baseBranch: base,
          worktreePath: worktree.path,
          protocolRoot,
          description: task,
          templateConfig: gitState,
        });
    await tx.appendEvent({
      protocolRunId: created.id,
      eventType: EVENT.protocolCreated,
      message: `Protocol ${created.protocolName} ${existing ? "gets" : "created on"} branch ${name} from ${base}`,
      metadata: {
        branch: name,
        base_branch: base,
        worktree: worktree.path,
        task,
        existing: Boolean(existing),
      },
    });
    const started = {
      eventType: EVENT.planningStarted,
      message: `Planning with ${engineId}${model ? ` (${model})` : ""}`,
      metadata: { engine_id: engineId, model },
    };
    if (created.status !== "planning") return tx.transitionProtocol(created.id, "planning", started);
    await tx.appendEvent({ protocolRunId: created.id, ...started });
    return created;
  });

  const fail = (reason: string, metadata: Record<string, unknown>) =>
    deps.store.transaction(async (tx) => {
      await tx.appendEvent({
        protocolRunId: run.id,
        eventType: EVENT.planningFailed,
        message: reason,
        metadata,
      });
      return tx.transitionProtocol(run.id, "blocked", {
        eventType: EVENT.protocolBlocked,
        message: `Planning failed: ${reason}`,
        metadata: { reason: metadata.reason },
      });
    });

  if (!deps.registry.has(engineId))
    return fail(`unknown engine "${engineId}" (known: ${deps.registry.ids().join(", ")})`, {
      reason: "unknown_engine",
      engine_id: engineId,
    });
  const engine = deps.registry.get(engineId);
  const settings = settingsFor(config.engines, engineId, config.engineHomeRoot);
  const pre = await engine.preflight(settings);
  if (!pre.ok) {
    return fail(
      `engine ${engineId} unavailable: ${pre.problems.map((p) => `${p.message} — fix: ${p.fix}`).join("; ")}`,
      { reason: "engine_unavailable", engine_id: engineId, problems: pre.problems },
    );
  }

  const promptLibrary = deps.promptLibrary ?? SHIPPED_PROMPTS_DIR;
  const template = readFileSync(join(promptLibrary, PLANNING_PROMPT), "utf8");
  const promptVersion = contentVersion(PLANNING_PROMPT, template);
  const prompt = renderTemplate(template, {
    task,
    protocol_name: name,
    base_branch: base,
    repo_files: topLevelListing(worktree.path),
    engines: deps.registry.ids().join(", "),
  });
  const request: EngineRequest = {
    role: "plan",
    prompt,
    cwd: worktree.path,
    model: model ?? undefined,
    inputs: input.inputs ?? {},
    env: { TASKSGODZILLA_RUN_ID: String(run.id), TASKSGODZILLA_PROTOCOL_DIR: protocolRoot },
    sandbox: "read-only",
    outputSchema: planningJsonSchema(),
    timeoutMs: config.timeoutSeconds * 1000,
    maxOutputBytes: config.maxOutputBytes,
    settings,
  };
  const answer = await askForJson({
    engine,
    request,
    schema: planValidator(deps.registry.ids()),
    answerName: "plan",
    signal,
    transcriptPath: (n) => join(protocolRoot, TRANSCRIPTS_DIR, `plan.${n}.jsonl`),
    retries: config.engineRetries,
  });
  const usage = await recordCalls(deps, run, engineId, model, answer.attempts);
  const callMeta = {
    engine_id: engineId,
    model,
    prompt_versions: { plan: promptVersion },
    usage: {
      total: usage.reduce((n, u) => n + totalTokens(u), 0),
      estimated: usage.some((u) => u.estimated),
      calls: usage.length,
    },
    duration_ms: answer.attempts.reduce((n, a) => n + a.call.result.durationMs, 0),
  };
  if (signal.aborted)
    return fail("planning was interrupted; plan the run again to retry", {
      ...callMeta,
      reason: "interrupted",
    });
  if (!answer.ok) {
    if (answer.reason === "engine_failed") {
      return fail(`planning engine failed (${answer.error.kind}): ${answer.error.message}`, {
        ...callMeta,
        reason: "planning_engine_failed",
        error: answer.error,
      });
    }
    return fail(
      `the planner's answer is not a valid plan, even after a repair retry: ${answer.errors.map((e) => `${e.pointer || "/"}: ${e.message}`).join("; ")}`,
      { ...callMeta, reason: "invalid_plan", errors: answer.errors },
    );
  }

  const plan = answer.value;
  const files = writePlanArtifacts(protocolRoot, plan, task);
  const spec = specFromProtocolFolder(
    protocolRoot,
    name,
    { qaPolicy: config.qa.policy, timeoutSeconds: config.timeoutSeconds },
    {
      title: plan.title,
      task,
      planned_by: { engine_id: engineId, model, prompt_version: promptVersion },
    },
  );
  const repaired = answer.attempts.flatMap((a) => a.invalid ?? []);
  run = await deps.store.transaction(async (tx) => {
    await tx.appendEvent({
      protocolRunId: run.id,
      eventType: EVENT.planningCompleted,
      message: `Planned ${plan.steps.length} steps: ${plan.title}`,
      metadata: {
        ...callMeta,
        files,
        steps: spec.steps.map((s) => s.id),
        ...(repaired.length > 0 ? { repaired_errors: repaired } : {}),
      },
    });
    return freezeSpec(tx, await tx.getProtocolRun(run.id), spec);
  });
  // the plan and its spec are the branch's first commit
  const saved = await checkpoint(worktree.path, `${name}: plan (${plan.steps.length} steps)`);
  await deps.store.appendEvent({
    protocolRunId: run.id,
    eventType: EVENT.checkpointCreated,
    message: `Checkpoint ${saved.commit.slice(0, 10)} with the plan`,
    metadata: { commit: saved.commit, changed: saved.changed },
  });
  return run;
}

/** Charges every planning call to the run, and records each engine retry as its event. */
async function recordCalls(
  deps: RunnerDeps,
  run: ProtocolRun,
  engineId: string,
  model: string | null,
  attempts: JsonAttempt[],
): Promise<TokenUsage[]> {
  const usage: TokenUsage[] = [];
  for (const [i, a] of attempts.entries()) {
    const u = a.call.result.usage ?? estimatedUsage(a.prompt, a.call.result.finalMessage);
    usage.push(u);
    await deps.store.recordUsage({ protocolRunId: run.id, phase: "plan", engineId, model, usage: u });
    if (a.retry) {
      await deps.store.appendEvent({
        protocolRunId: run.id,
        eventType: EVENT.engineRetry,
        message: `${engineId}: ${a.retry.error.kind}: planning call ${i + 1} retried in ${a.retry.delayMs} ms`,
        metadata: {
          engine_id: engineId,
          model,
          phase: "plan",
          attempt: i + 1,
          delay_ms: a.retry.delayMs,
          error: a.retry.error,
          usage: { total: totalTokens(u), estimated: u.estimated },
        },
      });
    }
  }
  return usage;
}
