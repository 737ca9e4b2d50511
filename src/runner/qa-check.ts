/**
 * QA as declared on the step, in parts the runner sequences (so it can check the budget before the
 * agent is asked): the deterministic light checks, the QA agent's prompt, and the agent's verdict,
 * which must parse. An error is never a pass.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import type { Engine, EngineRequest, EngineSettings, TokenUsage } from "../engines/engine-port.js";
import { changedBetween, changedPaths, snapshotTree } from "../git/worktree-changes.js";
import { errorMessage } from "../shared/errors.js";
import { tail } from "../shared/text.js";
import type { QaPolicy, StepSpec } from "../spec/schema.js";
import { askForJson, type JsonAttempt } from "./ask-for-json.js";
import type { EngineCall, TranscriptTarget } from "./call-engine.js";
import { runCheckCommand } from "./check-command.js";
import { QA_VERDICT_JSON_SCHEMA, type QaVerdict, QaVerdictSchema } from "./qa-verdict.js";
import {
  contentVersion,
  type ResolveRoots,
  renderTemplate,
  resolvePromptPath,
  type StepOutputs,
} from "./resolve-step.js";

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

export interface QaAgentCall {
  engineId: string;
  model: string | null;
  promptVersion: string;
  usage: TokenUsage | undefined;
  prompt: string;
  call: EngineCall;
  /** Set when this call failed retryably and was made again (an `engine_retry` event). */
  retry?: JsonAttempt["retry"];
}

export interface QaOutcome {
  policy: QaPolicy;
  /** `refused`: the agent was not asked, because its engine path refused it (a budget). */
  status: "skipped" | "pass" | "fail" | "error" | "refused";
  reason: string;
  checks: CheckResult[];
  verdict?: QaVerdict;
  /** The agent calls made (full QA): the first answer and the repair retry, if any. */
  agentCalls: QaAgentCall[];
}

export interface QaInput {
  step: StepSpec;
  policy: QaPolicy;
  roots: ResolveRoots;
  outputs: StepOutputs;
  /** The QA agent's inputs, placeholders rendered. */
  qaInputs: Record<string, unknown>;
  prompt: string;
  finalMessage: string;
  checks: string[];
  /** The step's engine may succeed with no output (see EngineCapabilities.emptyOutputAllowed). */
  emptyOutputAllowed: boolean;
  /** The worktree snapshot from before the step: light QA then fails when the step changed nothing. */
  changesSince: string | null;
  timeoutMs: number;
  /** The QA agent's idle limit (see EngineRequest.idleTimeoutMs). */
  idleTimeoutMs?: number | undefined;
  maxOutputBytes: number;
  env: Record<string, string>;
  signal: AbortSignal;
  agent?: {
    engine: Engine;
    model: string | null;
    promptRef: string;
    sandbox?: EngineRequest["sandbox"];
    settings?: EngineSettings;
  };
  transcriptPath: (attempt: number) => TranscriptTarget;
  /**
   * The runner's engine path around the QA agent's call (budget, engine slot): makes the call and
   * returns its answer, or undefined when it was refused.
   */
  onEnginePath?: <T>(prompt: string, call: () => Promise<T>) => Promise<T | undefined>;
  /** Extra QA agent calls after a retryable engine failure (config `engine_retries`); default none. */
  engineRetries?: number;
}

async function lightChecks(input: QaInput): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const [name, path] of [
    ["protocol", input.outputs.protocol],
    ...Object.entries(input.outputs.aux),
  ] as const) {
    const exists = existsSync(path);
    const empty = exists && statSync(path).size === 0;
    const ok = exists && (!empty || input.emptyOutputAllowed);
    results.push({
      name: `output:${name}`,
      ok,
      detail: !exists
        ? `${path} is missing`
        : empty
          ? `${path} is empty (the step produced no output)${ok ? "; its engine allows that" : ""}`
          : path,
    });
  }
  for (const command of input.checks) {
    const r = await runCheckCommand(
      command,
      input.roots.workspace,
      input.timeoutMs,
      input.maxOutputBytes,
      input.env,
      input.signal,
    );
    results.push({ name: `check:${command}`, ok: r.ok, detail: tail(r.output) });
  }
  if (input.changesSince !== null) {
    try {
      const ws = input.roots.workspace;
      const changed = await changedBetween(ws, input.changesSince, await snapshotTree(ws));
      results.push({
        name: "changes",
        ok: changed.length > 0,
        detail: changed.length > 0 ? changed.join("\n") : "the step changed nothing in the worktree",
      });
    } catch (err) {
      results.push({ name: "changes", ok: false, detail: errorMessage(err) });
    }
  }
  return results;
}

async function gitStatusText(workspace: string): Promise<string> {
  try {
    const changed = await changedPaths(workspace);
    return changed.length > 0 ? changed.join("\n") : "(no changes)";
  } catch {
    return "(not a git repository)";
  }
}

async function askAgent(
  input: QaInput,
  checks: CheckResult[],
): Promise<Omit<QaOutcome, "policy" | "checks">> {
  const agent = input.agent!;
  const promptPath = resolvePromptPath(agent.promptRef, input.roots, `/steps/*/qa/prompt`);
  const template = readFileSync(promptPath, "utf8");
  const promptVersion = contentVersion(agent.promptRef, template);
  const prompt = renderTemplate(template, {
    step_id: input.step.id,
    step_prompt: input.prompt,
    step_output: tail(input.finalMessage, 20_000),
    checks:
      checks.map((c) => `- ${c.ok ? "PASS" : "FAIL"} ${c.name}${c.ok ? "" : `: ${c.detail}`}`).join("\n") ||
      "(none)",
    git_status: await gitStatusText(input.roots.workspace),
  });
  const ask = () =>
    askForJson({
      engine: agent.engine,
      request: {
        role: "qa",
        prompt,
        cwd: input.roots.workspace,
        model: agent.model ?? undefined,
        inputs: input.qaInputs,
        env: input.env,
        sandbox: agent.sandbox ?? "read-only",
        outputSchema: QA_VERDICT_JSON_SCHEMA,
        timeoutMs: input.timeoutMs,
        idleTimeoutMs: input.idleTimeoutMs,
        maxOutputBytes: input.maxOutputBytes,
        settings: agent.settings,
      },
      schema: QaVerdictSchema,
      answerName: "QA verdict",
      signal: input.signal,
      transcriptPath: input.transcriptPath,
      retries: input.engineRetries ?? 0,
    });
  const answer = input.onEnginePath ? await input.onEnginePath(prompt, ask) : await ask();
  if (!answer)
    return { status: "refused", reason: "the QA agent was not asked: over budget", agentCalls: [] };
  const agentCalls: QaAgentCall[] = answer.attempts.map((a) => ({
    engineId: agent.engine.id,
    model: agent.model,
    promptVersion,
    usage: a.call.result.usage,
    prompt: a.prompt,
    call: a.call,
    retry: a.retry,
  }));
  if (answer.ok) {
    return {
      status: answer.value.verdict,
      reason: answer.value.summary || `QA verdict: ${answer.value.verdict}`,
      verdict: answer.value,
      agentCalls,
    };
  }
  if (answer.reason === "engine_failed") {
    return {
      status: "error",
      reason: `QA engine failed (${answer.error.kind}): ${answer.error.message}`,
      agentCalls,
    };
  }
  return {
    status: "error",
    reason: `QA answer is not a valid verdict, even after a repair retry: ${answer.errors.map((e) => `${e.pointer || "/"}: ${e.message}`).join("; ")}`,
    agentCalls,
  };
}

export async function runQa(input: QaInput): Promise<QaOutcome> {
  if (input.policy === "skip") {
    return {
      policy: "skip",
      status: "skipped",
      reason: input.step.qa?.reason ?? "qa.policy is skip",
      checks: [],
      agentCalls: [],
    };
  }
  const checks = await lightChecks(input);
  const failed = checks.filter((c) => !c.ok);
  if (failed.length > 0) {
    return {
      policy: input.policy,
      status: "fail",
      reason: `light checks failed: ${failed.map((c) => c.name).join(", ")}`,
      checks,
      agentCalls: [],
    };
  }
  if (input.policy === "light")
    return { policy: "light", status: "pass", reason: "light checks passed", checks, agentCalls: [] };
  return { policy: "full", checks, ...(await askAgent(input, checks)) };
}
