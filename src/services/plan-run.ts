/**
 * `tgz plan`: from a task description to a planned run. The next protocol number (taken inside the
 * write transaction that inserts the run) and a branch and worktree `NNNN-<short-name>` off the
 * base branch; the planning engine writes the plan as JSON (validated against the published
 * planning schema); the artifacts and the spec are built from it and frozen on the run. A plan that
 * fails validation blocks the run with every error and writes no plan (the planning transcripts
 * stay, git-ignored, in the worktree).
 *
 * Planning holds the run's lease, like the runner: a second planner (another `tgz plan --run-id`, a
 * job the reconciler queued again) is refused with RunBusyError while this one lives, and takes over
 * once a dead planner's lease has lapsed. A run that already exists (created through the API with
 * only a description, or left blocked or `planning` by an earlier attempt) is planned in place with
 * the engine, model and inputs it was first planned with unless new ones are given; a planned run is
 * left as it is, and what an interrupted attempt left behind (worktree, branch) is removed first.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { assertKnownEngineSettings, settingsFor } from "../config/engine-settings.js";
import { withProjectDefaults } from "../config/load-config.js";
import type { EngineRequest, TokenUsage } from "../engines/engine-port.js";
import { checkpoint } from "../git/checkpoints.js";
import { branchExists, repoRoot } from "../git/git-command.js";
import {
  NUMBERED_NAME,
  namesInCheckout,
  nextProtocolNumber,
  PROTOCOLS_DIR,
  protocolName,
} from "../git/protocol-names.js";
import { protocolWorktreeOf } from "../git/run-worktree.js";
import {
  baseStart,
  createProtocolWorktree,
  type ProtocolWorktree,
  protocolWorktreesRoot,
  removeWorktree,
} from "../git/worktrees.js";
import { planningJsonSchema, planValidator } from "../planning/plan-schema.js";
import { specFromProtocolFolder, writePlanArtifacts } from "../planning/protocol-folder.js";
import { askForJson, type JsonAttempt } from "../runner/ask-for-json.js";
import { type BudgetAccount, charge, checkBudget, planningAccount } from "../runner/budget-guard.js";
import { onEnginePath } from "../runner/engine-path.js";
import { contentVersion, renderTemplate } from "../runner/resolve-step.js";
import type { RunnerDeps } from "../runner/run-context.js";
import { SHIPPED_PROMPTS_DIR } from "../runner/run-context.js";
import { holdRun, RunLeaseLostError } from "../runner/run-lease.js";
import { estimatedUsage, totalTokens } from "../runner/token-estimate.js";
import { errorMessage, HandoffError, InvalidInputError } from "../shared/errors.js";
import { TRANSCRIPTS_DIR } from "../shared/protocol-files.js";
import { EVENT } from "../store/event-types.js";
import type { ProtocolRun, StoreOps } from "../store/types.js";
import { freezeSpec } from "./create-run.js";
import { ensureProject } from "./project-service.js";

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
  /** The base branch of a new run (default: the project's); an existing run keeps its own. */
  base?: string | undefined;
  /** Default: what the run was first planned with, else the project's engine. */
  engine?: string | undefined;
  /** Default: what the run was first planned with, else `models.plan`. */
  model?: string | undefined;
  /** Inputs for the planning engine (e.g. `recording` for replay); default: the first attempt's. */
  inputs?: Record<string, unknown> | undefined;
  signal?: AbortSignal;
}

/** What a run is planned with, recorded on it (`templateConfig.planning`) so a re-plan uses it again. */
interface PlanningChoice {
  engine: string;
  model: string | null;
  inputs: Record<string, unknown>;
}

/** Statuses a run without a spec can be planned from (planning: an attempt that was interrupted). */
const PLANNABLE = new Set(["pending", "blocked", "planning"]);

function topLevelListing(dir: string): string {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.name !== ".git" && e.name !== PROTOCOLS_DIR)
    .map((e) => `- ${e.name}${e.isDirectory() ? "/" : ""}`)
    .sort()
    .join("\n");
}

const shortName = (task: string) => task.split(/\s+/).slice(0, 5).join(" ");

/** A new run for the task, numbered inside the transaction that inserts it; a missing base fails first. */
async function newRun(deps: RunnerDeps, input: PlanInput): Promise<ProtocolRun> {
  const task = input.task;
  if (!task) throw new InvalidInputError("planning needs a task description");
  const repo = await repoRoot(input.repoDir ?? process.cwd());
  const project = await ensureProject(deps.store, repo);
  const base = input.base ?? project.baseBranch;
  await baseStart(repo, base);
  const inCheckout = await namesInCheckout(repo);
  return deps.store.transaction(async (tx) => {
    const name = protocolName(
      await nextProtocolNumber(tx, project.id, inCheckout),
      input.name ?? shortName(task),
    );
    const run = await tx.createProtocolRun({
      projectId: project.id,
      protocolName: name,
      status: "pending",
      baseBranch: base,
      description: task,
      templateConfig: { task, branch: name },
    });
    await tx.appendEvent({
      protocolRunId: run.id,
      eventType: EVENT.protocolCreated,
      message: `Protocol ${name} created, to be planned on branch ${name} from ${base}`,
      metadata: { branch: name, base_branch: base, task },
    });
    return run;
  });
}

/**
 * The branch a run is planned on: the one an earlier attempt recorded, its name when that is
 * numbered already (an API run named `0007-x`) and no branch has it, else the next number. Call
 * inside the write transaction that records it, with what the repository holds read before it.
 */
async function branchFor(
  tx: StoreOps,
  run: ProtocolRun,
  repo: { inCheckout: string[]; nameIsBranch: boolean },
  short: string | undefined,
): Promise<string> {
  const recorded = run.templateConfig.branch;
  if (typeof recorded === "string") return recorded;
  if (NUMBERED_NAME.test(run.protocolName) && !repo.nameIsBranch) return run.protocolName;
  return protocolName(
    await nextProtocolNumber(tx, run.projectId, repo.inCheckout),
    short ?? run.protocolName,
  );
}

export async function planRun(deps: RunnerDeps, input: PlanInput): Promise<ProtocolRun> {
  const runId = input.runId ?? (await newRun(deps, input)).id;
  const hold = await holdRun(deps.store, runId, input.signal);
  // from here on planning waits out database outages, and writes only while it holds the run
  const held: RunnerDeps = { ...deps, store: hold.store };
  try {
    // read under the lease: an earlier planner may have finished meanwhile
    const run = await held.store.getProtocolRun(runId);
    if (run.templateConfig.protocol_spec !== undefined) return run;
    if (!PLANNABLE.has(run.status))
      throw new InvalidInputError(`run ${runId} is ${run.status} and has no spec; it cannot be planned`);
    return await planInto(held, run, input, hold.signal);
  } finally {
    await hold.release();
  }
}

/** The recorded choice of an earlier attempt, if the run has one. */
function recordedChoice(run: ProtocolRun): Partial<PlanningChoice> {
  const p = run.templateConfig.planning;
  return typeof p === "object" && p !== null && !Array.isArray(p) ? (p as Partial<PlanningChoice>) : {};
}

async function planInto(
  deps: RunnerDeps,
  existing: ProtocolRun,
  input: PlanInput,
  signal: AbortSignal,
): Promise<ProtocolRun> {
  const task = input.task ?? existing.description;
  if (!task) throw new InvalidInputError(`run ${existing.id} has no description to plan from; pass a task`);
  const project = await deps.store.getProject(existing.projectId);
  const repo = await repoRoot(project.localPath ?? project.gitUrl);
  const base = existing.baseBranch;
  await baseStart(repo, base);
  const config = withProjectDefaults(deps.configFor(repo), project.defaultModels);
  assertKnownEngineSettings(config, deps.registry);
  const earlier = recordedChoice(existing);
  const choice: PlanningChoice = {
    engine: input.engine ?? earlier.engine ?? config.engine,
    model: input.model ?? earlier.model ?? config.models.plan ?? null,
    inputs: input.inputs ?? earlier.inputs ?? {},
  };
  const engineId = choice.engine;
  const model = choice.model;
  // an earlier attempt for this run left a worktree without a plan: start again from the base
  const leftover = protocolWorktreeOf(existing, config.dataDir);
  if (leftover) await removeWorktree(repo, leftover.path, leftover.branch, true);
  const inRepo = {
    inCheckout: await namesInCheckout(repo),
    nameIsBranch: await branchExists(repo, existing.protocolName),
  };
  const named = await deps.store.transaction(async (tx) => {
    const branch = await branchFor(tx, existing, inRepo, input.name);
    return tx.updateProtocolRun(existing.id, {
      description: existing.description ?? task,
      templateConfig: { ...existing.templateConfig, task, branch, planning: { ...choice } },
    });
  });
  const name = named.templateConfig.branch as string;

  const fail = (
    reason: string,
    metadata: Record<string, unknown>,
    eventType: typeof EVENT.planningFailed | typeof EVENT.budgetExceeded = EVENT.planningFailed,
  ) =>
    deps.store.transaction(async (tx) => {
      await tx.appendEvent({ protocolRunId: existing.id, eventType, message: reason, metadata });
      const now = await tx.getProtocolRun(existing.id);
      // a run cancelled while it was planned stays cancelled
      if (now.status === "cancelled") return now;
      return tx.transitionProtocol(existing.id, "blocked", {
        eventType: EVENT.protocolBlocked,
        message: `Planning failed: ${reason}`,
        metadata: { reason: metadata.reason },
      });
    });

  let worktree: ProtocolWorktree;
  try {
    worktree = await createProtocolWorktree({
      repo,
      base,
      name,
      worktreesRoot: protocolWorktreesRoot(repo, config.dataDir),
    });
  } catch (err) {
    await fail(`cannot create the worktree of branch ${name}: ${errorMessage(err)}`, {
      reason: "worktree_failed",
      branch: name,
    });
    throw err;
  }
  const protocolRoot = join(worktree.path, PROTOCOLS_DIR, name);

  let run = await deps.store.transaction(async (tx) => {
    const updated = await tx.updateProtocolRun(existing.id, {
      worktreePath: worktree.path,
      protocolRoot,
      templateConfig: { ...named.templateConfig, base_commit: worktree.baseCommit },
    });
    const started = {
      eventType: EVENT.planningStarted,
      message: `Planning with ${engineId}${model ? ` (${model})` : ""} on branch ${name} from ${base}`,
      metadata: {
        engine_id: engineId,
        model,
        branch: name,
        base_branch: base,
        base_ref: worktree.baseRef,
        base_commit: worktree.baseCommit,
        worktree: worktree.path,
      },
    };
    if (updated.status !== "planning") return tx.transitionProtocol(updated.id, "planning", started);
    await tx.appendEvent({ protocolRunId: updated.id, ...started });
    return updated;
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
    inputs: choice.inputs,
    env: { TASKSGODZILLA_RUN_ID: String(run.id), TASKSGODZILLA_PROTOCOL_DIR: protocolRoot },
    sandbox: "read-only",
    outputSchema: planningJsonSchema(),
    timeoutMs: config.timeoutSeconds * 1000,
    maxOutputBytes: config.maxOutputBytes,
    settings,
  };
  // planning is an engine call on the runner's path: budget, engine cap, usage charged to the run
  const account = planningAccount(deps.store, run, config);
  const path = await onEnginePath({
    account,
    phase: "plan",
    engineId,
    prompt,
    gate: deps.engineGate,
    signal,
    call: async () => {
      const answer = await askForJson({
        engine,
        request,
        schema: planValidator(deps.registry.ids()),
        answerName: "plan",
        signal,
        // the planner works in this worktree: a link it planted there is not followed
        transcriptPath: (n) => ({
          path: join(protocolRoot, TRANSCRIPTS_DIR, `plan.${n}.jsonl`),
          roots: [protocolRoot],
        }),
        retries: config.engineRetries,
      });
      return { answer, usage: await recordCalls(deps, account, run, engineId, model, answer.attempts) };
    },
  });
  if (!path.ok)
    return fail(
      path.refused.message,
      { ...path.refused.metadata, reason: "budget_exceeded", engine_id: engineId },
      EVENT.budgetExceeded,
    );
  const { answer, usage } = path.value;
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
  if (signal.aborted) {
    // the run is someone else's now (a lost lease), or goes to the job's next claimer: write nothing
    if (signal.reason instanceof RunLeaseLostError || signal.reason instanceof HandoffError)
      return deps.store.getProtocolRun(run.id);
    return fail(`planning was interrupted; plan it again with \`tgz plan --run-id ${run.id}\``, {
      ...callMeta,
      reason: "interrupted",
    });
  }
  const over = await checkBudget(account, "plan", null);
  if (!over.ok)
    return fail(
      over.message,
      { ...over.metadata, ...callMeta, reason: "budget_exceeded" },
      EVENT.budgetExceeded,
    );
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
  account: BudgetAccount,
  run: ProtocolRun,
  engineId: string,
  model: string | null,
  attempts: JsonAttempt[],
): Promise<TokenUsage[]> {
  const usage: TokenUsage[] = [];
  for (const [i, a] of attempts.entries()) {
    const u = a.call.result.usage ?? estimatedUsage(a.prompt, a.call.result.finalMessage);
    usage.push(u);
    await charge(account, "plan", engineId, model, u);
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
