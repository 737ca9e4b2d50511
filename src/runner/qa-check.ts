/**
 * QA as declared on the step: `skip` records why, `light` runs deterministic checks, `full` runs the
 * light checks and then a QA agent whose verdict must parse. An error is never a pass.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import type { Engine, EngineRequest, EngineSettings, TokenUsage } from "../engines/engine-port.js";
import { changedPaths } from "../git/worktree-changes.js";
import { errorMessage } from "../shared/errors.js";
import { tail } from "../shared/text.js";
import type { QaPolicy, StepSpec } from "../spec/schema.js";
import { askForJson } from "./ask-for-json.js";
import type { EngineCall } from "./call-engine.js";
import { runCheckCommand } from "./check-command.js";
import { parseVerdict, QA_VERDICT_JSON_SCHEMA, type QaVerdict } from "./qa-verdict.js";
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
}

export interface QaOutcome {
  policy: QaPolicy;
  status: "skipped" | "pass" | "fail" | "error";
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
  prompt: string;
  finalMessage: string;
  checks: string[];
  requireChanges: boolean;
  timeoutMs: number;
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
  transcriptPath: (attempt: number) => string;
}

async function lightChecks(input: QaInput): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const [name, path] of [
    ["protocol", input.outputs.protocol],
    ...Object.entries(input.outputs.aux),
  ] as const) {
    const ok = existsSync(path) && statSync(path).size > 0;
    results.push({ name: `output:${name}`, ok, detail: ok ? path : `${path} is missing or empty` });
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
  if (input.requireChanges) {
    try {
      const changed = await changedPaths(input.roots.workspace);
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

const REPAIR_PREFIX =
  "Your previous answer could not be read as the required JSON verdict. Reply again with ONLY one JSON object " +
  'of the form {"verdict": "pass" | "fail", "summary": "...", "findings": [...]}. Your previous answer was:\n\n';

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
  const answer = await askForJson(
    agent.engine,
    {
      role: "qa",
      prompt,
      cwd: input.roots.workspace,
      model: agent.model ?? undefined,
      inputs: input.step.qa?.inputs ?? {},
      env: input.env,
      sandbox: agent.sandbox ?? "read-only",
      outputSchema: QA_VERDICT_JSON_SCHEMA,
      timeoutMs: input.timeoutMs,
      maxOutputBytes: input.maxOutputBytes,
      settings: agent.settings,
    },
    parseVerdict,
    REPAIR_PREFIX,
    input.signal,
    input.transcriptPath,
  );
  const agentCalls: QaAgentCall[] = answer.attempts.map((a) => ({
    engineId: agent.engine.id,
    model: agent.model,
    promptVersion,
    usage: a.call.result.usage,
    prompt: a.prompt,
    call: a.call,
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
    reason: "QA answer could not be parsed as a verdict, even after one repair retry",
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
