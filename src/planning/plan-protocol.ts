/**
 * `tgz plan`: from a task description to a planned run. The next protocol number and a branch and
 * worktree `NNNN-<short-name>` off the base branch; the planning engine writes the plan as JSON
 * (validated against the published planning schema); the artifacts and the spec are built from it and
 * frozen on the run. A plan that fails validation blocks the run with the reason and writes nothing.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { dataDir } from "../config/data-paths.js";
import { projectKey, settingsFor } from "../config/engine-settings.js";
import type { EngineRequest, TokenUsage } from "../engines/engine-port.js";
import { checkpoint } from "../git/checkpoints.js";
import { repoRoot } from "../git/git-command.js";
import { nextProtocolNumber, protocolName } from "../git/protocol-names.js";
import { createProtocolWorktree } from "../git/worktrees.js";
import { askForJson } from "../runner/ask-for-json.js";
import { EVENT } from "../runner/event-types.js";
import { contentVersion, renderTemplate } from "../runner/resolve-step.js";
import type { RunnerDeps } from "../runner/run-context.js";
import { SHIPPED_PROMPTS_DIR } from "../runner/run-context.js";
import { estimatedUsage, totalTokens } from "../runner/token-estimate.js";
import { freezeSpec, PROTOCOLS_DIR } from "../services/create-run.js";
import { ensureProject } from "../services/project-service.js";
import { extractJson } from "../shared/extract-json.js";
import type { ProtocolRun } from "../store/types.js";
import { PlanOutput, planningJsonSchema } from "./plan-schema.js";
import { specFromProtocolFolder, writePlanArtifacts } from "./protocol-folder.js";

export const PLANNING_PROMPT = "protocol-new.prompt.md";

export interface PlanInput {
  task: string;
  repoDir: string;
  /** Short name for the branch; default: from the task. */
  name?: string | undefined;
  base?: string | undefined;
  engine?: string | undefined;
  model?: string | undefined;
  /** Inputs for the planning engine (e.g. `recording` for replay). */
  inputs?: Record<string, unknown> | undefined;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

const REPAIR_PREFIX =
  "Your previous answer could not be read as the required JSON plan (see the schema). Reply again with " +
  "ONLY one JSON object with title, summary, context and steps. Your previous answer was:\n\n";

function topLevelListing(dir: string): string {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.name !== ".git" && e.name !== PROTOCOLS_DIR)
    .map((e) => `- ${e.name}${e.isDirectory() ? "/" : ""}`)
    .sort()
    .join("\n");
}

export async function planProtocol(deps: RunnerDeps, input: PlanInput): Promise<ProtocolRun> {
  const env = input.env ?? process.env;
  const repo = await repoRoot(input.repoDir);
  const config = deps.configFor(repo);
  const project = await ensureProject(deps.store, repo);
  const base = input.base ?? project.baseBranch;
  const known = (await deps.store.listProtocolRuns(project.id)).map((r) => r.protocolName);
  const name = protocolName(
    await nextProtocolNumber(repo, known),
    input.name ?? input.task.split(/\s+/).slice(0, 5).join(" "),
  );
  const worktree = await createProtocolWorktree({
    repo,
    base,
    name,
    worktreesRoot: join(dataDir(env), "worktrees", projectKey(repo)),
  });
  const protocolRoot = join(worktree.path, PROTOCOLS_DIR, name);
  const engineId = input.engine ?? config.engine;
  const model = input.model ?? config.models.plan ?? null;

  let run = await deps.store.transaction(async (tx) => {
    const created = await tx.createProtocolRun({
      projectId: project.id,
      protocolName: name,
      status: "pending",
      baseBranch: base,
      worktreePath: worktree.path,
      protocolRoot,
      description: input.task,
      templateConfig: { task: input.task, base_commit: worktree.baseCommit },
    });
    await tx.appendEvent({
      protocolRunId: created.id,
      eventType: EVENT.protocolCreated,
      message: `Protocol ${name} created on branch ${name} from ${base}`,
      metadata: { branch: name, base_branch: base, worktree: worktree.path, task: input.task },
    });
    return tx.transitionProtocol(created.id, "planning", {
      eventType: EVENT.planningStarted,
      message: `Planning with ${engineId}${model ? ` (${model})` : ""}`,
      metadata: { engine_id: engineId, model },
    });
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
    task: input.task,
    protocol_name: name,
    base_branch: base,
    repo_files: topLevelListing(worktree.path),
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
  const answer = await askForJson(
    engine,
    request,
    (text) => extractJson(text, PlanOutput),
    REPAIR_PREFIX,
    input.signal ?? new AbortController().signal,
    (n) => join(protocolRoot, "logs", `plan.${n}.jsonl`),
  );
  const usage: TokenUsage[] = [];
  for (const a of answer.attempts) {
    const u = a.call.result.usage ?? estimatedUsage(a.prompt, a.call.result.finalMessage);
    usage.push(u);
    await deps.store.recordUsage({ protocolRunId: run.id, phase: "plan", engineId, model, usage: u });
  }
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
  if (!answer.ok) {
    const reason =
      answer.reason === "engine_failed"
        ? `planning engine failed (${answer.error.kind}): ${answer.error.message}`
        : "the planner's answer is not a valid plan, even after one repair retry";
    return fail(reason, {
      ...callMeta,
      reason: answer.reason === "engine_failed" ? "planning_engine_failed" : "invalid_plan",
    });
  }

  const plan = answer.value;
  const files = writePlanArtifacts(protocolRoot, plan, input.task);
  const spec = specFromProtocolFolder(
    protocolRoot,
    name,
    { qaPolicy: config.qa.policy, timeoutSeconds: config.timeoutSeconds },
    {
      title: plan.title,
      task: input.task,
      planned_by: { engine_id: engineId, model, prompt_version: promptVersion },
    },
  );
  run = await deps.store.transaction(async (tx) => {
    await tx.appendEvent({
      protocolRunId: run.id,
      eventType: EVENT.planningCompleted,
      message: `Planned ${plan.steps.length} steps: ${plan.title}`,
      metadata: { ...callMeta, files, steps: spec.steps.map((s) => s.id) },
    });
    return freezeSpec(tx, await tx.getProtocolRun(run.id), spec);
  });
  // the plan, its spec and the planning transcript are the branch's first commit
  const saved = await checkpoint(worktree.path, `${name}: plan (${plan.steps.length} steps)`);
  await deps.store.appendEvent({
    protocolRunId: run.id,
    eventType: EVENT.checkpointCreated,
    message: `Checkpoint ${saved.commit.slice(0, 10)} with the plan`,
    metadata: { commit: saved.commit, changed: saved.changed },
  });
  return run;
}
