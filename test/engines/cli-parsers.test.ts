/** The adapters' stream parsers against event streams the real CLIs printed (fixtures/agent-streams). */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { classifyFailure } from "../../src/engines/cli/classify-failure.js";
import { claudeCodeAdapter } from "../../src/engines/cli/claude-code-adapter.js";
import type { CallContext, CliAdapter } from "../../src/engines/cli/cli-adapter.js";
import { codexAdapter } from "../../src/engines/cli/codex-adapter.js";
import { geminiAdapter } from "../../src/engines/cli/gemini-adapter.js";
import { opencodeAdapter } from "../../src/engines/cli/opencode-adapter.js";
import type { EngineEvent, EngineRequest } from "../../src/engines/engine-port.js";

const FIXTURES = join(import.meta.dirname, "fixtures", "agent-streams");

function parse(adapter: CliAdapter, fixture: string, request: Partial<EngineRequest> = {}, home?: string) {
  const dir = mkdtempSync(join(tmpdir(), "tgz-parse-"));
  const ctx: CallContext = { settings: {}, home: home ?? dir, userHome: dir, scratch: dir, stateDir: dir };
  const full: EngineRequest = {
    role: "exec",
    prompt: "p",
    cwd: dir,
    inputs: {},
    env: {},
    timeoutMs: 1000,
    maxOutputBytes: 1 << 20,
    ...request,
  };
  const parser = adapter.parser(full, ctx);
  const events: EngineEvent[] = [];
  for (const line of readFileSync(join(FIXTURES, fixture), "utf8").split("\n").filter(Boolean))
    events.push(...parser.event(JSON.parse(line) as Record<string, unknown>));
  return { summary: parser.summary(), events, ctx };
}

const usageModels = (events: EngineEvent[]) => events.flatMap((e) => (e.type === "usage" ? [e.model] : []));

const kindOf = (s: { error?: { message: string; status?: number | undefined } | undefined }) =>
  s.error ? classifyFailure(s.error.message, s.error.status).kind : undefined;

const tools = (events: EngineEvent[]) =>
  events.flatMap((e) => (e.type === "tool" ? [`${e.name}: ${e.detail ?? ""}`] : []));

/** What the tools gave back, for the transcript: name, text, whether it failed. */
const outputs = (events: EngineEvent[]) =>
  events.flatMap((e) => (e.type === "tool_output" ? [[e.name, e.text, e.isError ?? false]] : []));

describe("Codex stream parser", () => {
  it("reads messages, commands, the thread id and the usage of a tool run", () => {
    const { summary, events } = parse(codexAdapter, "codex-exec-tool.events.jsonl");
    expect(summary).toMatchObject({
      sessionId: "01a20c7a-72f7-7793-8458-9978b574a6d5",
      usage: { input: 222, cachedInput: 66, output: 44, reasoning: 0 },
      error: undefined,
    });
    expect(events.filter((e) => e.type === "message").map((e) => (e as { text: string }).text)).toEqual([
      "I will write the file.",
      "Wrote out.txt. DONE.",
    ]);
    expect(tools(events)).toEqual([expect.stringMatching(/^command: .*printf 'hello from codex tool/)]);
    expect(outputs(events)).toEqual([["command", "hello from codex tool\n", false]]);
  });

  it("takes the model from the thread's rollout in the config home: the stream names none", () => {
    const home = mkdtempSync(join(tmpdir(), "tgz-codex-home-"));
    const { summary: without } = parse(codexAdapter, "codex-config-model.events.jsonl", {}, home);
    expect(without.model).toBeUndefined();
    const day = join(home, "sessions", "2026", "12", "07");
    mkdirSync(day, { recursive: true });
    copyFileSync(
      join(FIXTURES, "codex-config-model.rollout.jsonl"),
      join(day, "rollout-2026-12-07T22-48-47-01a252b2-0356-7ce1-831c-c5ffcfa3888c.jsonl"),
    );
    // run without -m: the model its config chose, which only the rollout records
    const { summary, events } = parse(codexAdapter, "codex-config-model.events.jsonl", {}, home);
    expect(summary).toMatchObject({
      model: "gpt-5.4",
      usage: { input: 100, cachedInput: 20, output: 30, reasoning: 10 },
    });
    expect(usageModels(events)).toEqual(["gpt-5.4"]);
  });

  it("reads an apply_patch file change", () => {
    const { events } = parse(codexAdapter, "codex-apply-patch.events.jsonl");
    expect(tools(events)).toEqual(["file_change: add /workspace/hello.txt"]);
  });

  it.each([
    ["codex-err-401.events.jsonl", "auth"],
    ["codex-err-500.events.jsonl", "server_error"],
    ["codex-err-failed.events.jsonl", "context_too_long"],
    ["codex-err-truncate.events.jsonl", "server_error"],
  ])("types the failed turn of %s as %s", (fixture, kind) => {
    expect(kindOf(parse(codexAdapter, fixture).summary)).toBe(kind);
  });

  it("keeps a failed turn a failure after the agent already spoke", () => {
    const dir = mkdtempSync(join(tmpdir(), "tgz-parse-"));
    const ctx: CallContext = { settings: {}, home: dir, userHome: dir, scratch: dir, stateDir: dir };
    const parser = codexAdapter.parser(
      { role: "exec", prompt: "p", cwd: dir, inputs: {}, env: {}, timeoutMs: 1, maxOutputBytes: 1 },
      ctx,
    );
    for (const e of [
      { type: "thread.started", thread_id: "t1" },
      { type: "item.completed", item: { type: "agent_message", text: "Running it." } },
      { type: "error", message: "We’re currently experiencing high demand" },
      { type: "turn.failed", error: { message: "We’re currently experiencing high demand" } },
    ])
      parser.event(e);
    expect(kindOf(parser.summary())).toBe("server_error");
  });
});

describe("Claude Code stream parser", () => {
  it("reads the result, the session, the tool calls and the invocation's usage", () => {
    const { summary, events } = parse(claudeCodeAdapter, "claude-tools.stream.jsonl");
    expect(summary).toMatchObject({
      finalMessage: "Wrote out.txt. DONE.",
      sessionId: "51b4595c-fa5b-4f70-9807-9824edaa3727",
      // input_tokens excludes cache reads in Anthropic's count; the port's input includes them
      usage: { input: 432, cachedInput: 99, output: 66 },
      error: undefined,
    });
    expect(tools(events)).toEqual([
      expect.stringMatching(/^Write: .*hello from claude Write/),
      expect.stringMatching(/^Bash: .*bash-ran/),
    ]);
    expect(outputs(events)).toEqual([
      ["Write", expect.stringMatching(/^File created successfully at: \/workspace\/out.txt/), false],
      ["Bash", "hello from claude Write\nbash-ran", false],
    ]);
    expect(summary.model).toBe("claude-sonnet-4-5");
    expect(summary.usageByModel).toBeUndefined();
    expect(usageModels(events)).toEqual(["claude-sonnet-4-5"]);
  });

  it("names each model's part of a call: the main one as the API answered, a subagent's as it was sent", () => {
    // asked for claude-opus-4-1; Claude Code sent claude-opus-4-8 (its init event says so), the API
    // answered with a dated snapshot, and a Task subagent ran on Haiku
    const { summary, events } = parse(claudeCodeAdapter, "claude-subagent-model.stream.jsonl", {
      model: "claude-opus-4-1",
    });
    expect(summary.model).toBe("claude-opus-4-8-20261120");
    expect(summary.usageByModel).toEqual({
      "claude-opus-4-8-20261120": {
        input: 311,
        cachedInput: 133,
        cacheWrite: 10,
        output: 42,
        reasoning: 0,
        estimated: false,
      },
      "claude-haiku-4-5-20251001": { input: 50, cachedInput: 0, output: 10, reasoning: 0, estimated: false },
    });
    expect(summary.usage).toEqual({
      input: 361,
      cachedInput: 133,
      cacheWrite: 10,
      output: 52,
      reasoning: 0,
      estimated: false,
    });
    expect(usageModels(events)).toEqual(["claude-opus-4-8-20261120", "claude-haiku-4-5-20251001"]);
  });

  it.each([
    ["claude-err-401.stream.jsonl", "auth", 401],
    ["claude-err-500.stream.jsonl", "server_error", 500],
    ["claude-err-529.stream.jsonl", "server_error", 529],
  ])("types %s as %s with the API status", (fixture, kind, status) => {
    const { summary } = parse(claudeCodeAdapter, fixture);
    expect(summary.error?.status).toBe(status);
    expect(summary.finalMessage).toBe("");
    expect(kindOf(summary)).toBe(kind);
  });

  it("reads the errors of a call that failed before any model call", () => {
    const parser = claudeCodeAdapter.parser({} as EngineRequest, {} as CallContext);
    parser.event({
      type: "result",
      subtype: "error_during_execution",
      is_error: true,
      session_id: "4b1c7f1e-1111-4222-8333-944444444444",
      usage: { input_tokens: 0, output_tokens: 0 },
      modelUsage: {},
      errors: ["No conversation found with session ID: 4b1c7f1e-1111-4222-8333-944444444444"],
    });
    expect(parser.summary().error?.message).toMatch(claudeCodeAdapter.unknownSession);
  });
});

describe("opencode stream parser", () => {
  it("sums the usage of every step and takes the text of the last one", () => {
    const { summary, events } = parse(opencodeAdapter, "opencode-tools.events.jsonl");
    expect(summary).toMatchObject({
      finalMessage: "Wrote out.txt. DONE.",
      sessionId: "ses_df381a2c3ffePEFzgJA287eGTe",
      // three steps of 78 + 33 cached input and 22 output each
      usage: { input: 333, cachedInput: 99, output: 66 },
    });
    expect(tools(events).map((t) => t.split(":")[0])).toEqual(["write", "bash"]);
    expect(tools(events)[0]).toMatch(/^write: .*"filePath":"\/workspace\/out.txt"/);
    expect(outputs(events)).toEqual([
      ["write", "Wrote file successfully.", false],
      ["bash", "hello from opencode write\nbash-ran\n", false],
    ]);
    expect(events.filter((e) => e.type === "usage")).toHaveLength(3);
  });

  it("names the provider/model it was run with, which its stream leaves out; none when it chose its default", () => {
    const named = parse(opencodeAdapter, "opencode-tools.events.jsonl", {
      model: "anthropic/claude-sonnet-4-5",
    });
    expect(named.summary.model).toBe("anthropic/claude-sonnet-4-5");
    expect(usageModels(named.events)).toEqual(Array(3).fill("anthropic/claude-sonnet-4-5"));
    expect(parse(opencodeAdapter, "opencode-tools.events.jsonl").summary.model).toBeUndefined();
  });

  it("adds back the cache writes opencode takes out of input (reporting them too) and the reasoning it takes out of output", () => {
    const parser = opencodeAdapter.parser({} as EngineRequest, { settings: {} } as CallContext);
    // opencode's step tokens: input = prompt − cache reads − cache writes, output = completion − reasoning
    const tokens = { total: 160, input: 50, output: 15, reasoning: 10, cache: { read: 40, write: 20 } };
    parser.event({ type: "step_finish", sessionID: "ses_1", part: { type: "step-finish", tokens } });
    expect(parser.summary().usage).toEqual({
      input: 110,
      cachedInput: 40,
      cacheWrite: 20,
      output: 25,
      reasoning: 10,
      estimated: false,
    });
  });

  it("types the 401 error event as auth, with its status", () => {
    const { summary } = parse(opencodeAdapter, "opencode-err-401.events.jsonl");
    expect(summary.error).toEqual({ message: "Incorrect API key provided", status: 401 });
    expect(kindOf(summary)).toBe("auth");
  });
});

describe("Gemini stream parser", () => {
  it("takes what the model said after its last tool call, the session and the usage", () => {
    const { summary, events } = parse(geminiAdapter, "gemini-tools.stream.jsonl");
    expect(summary).toMatchObject({
      finalMessage: "Wrote out.txt. DONE.",
      sessionId: "9757fb46-5048-40d2-ac78-4ff7fb57f902",
      usage: { input: 333, cachedInput: 99, output: 66 },
    });
    expect(tools(events).map((t) => t.split(":")[0])).toEqual(["write_file", "run_shell_command"]);
    expect(outputs(events)).toEqual([
      ["write_file", "success", false],
      ["run_shell_command", expect.stringMatching(/^Tool "run_shell_command" not found/), true],
    ]);
    // the stats are keyed by the model version the server answered with
    expect(summary.model).toBe("fake");
  });

  it("names the model version the API answered with, not the one the CLI set out with", () => {
    const { summary, events } = parse(geminiAdapter, "gemini-answered-model.stream.jsonl");
    expect(summary).toMatchObject({
      model: "gemini-2.5-pro-20261120",
      usage: { input: 100, cachedInput: 20, output: 30, reasoning: 10 },
    });
    expect(summary.usageByModel).toBeUndefined();
    expect(usageModels(events)).toEqual(["gemini-2.5-pro-20261120"]);
  });

  it("counts the thinking tokens the total holds beyond input and answer as reasoning, inside output", () => {
    const parser = geminiAdapter.parser({} as EngineRequest, {} as CallContext);
    parser.event({
      type: "result",
      status: "success",
      stats: { total_tokens: 183, input_tokens: 111, output_tokens: 22, cached: 33, input: 78 },
    });
    expect(parser.summary().usage).toEqual({
      input: 111,
      cachedInput: 33,
      output: 72,
      reasoning: 50,
      estimated: false,
    });
  });

  it("types an API error result as auth", () => {
    const { summary } = parse(geminiAdapter, "gemini-err-401.stream.jsonl");
    expect(kindOf(summary)).toBe("auth");
  });

  it("passes on the HTTP status inside Gemini's error text", () => {
    const parser = geminiAdapter.parser({} as EngineRequest, {} as CallContext);
    parser.event({
      type: "result",
      status: "error",
      error: { type: "unknown", message: '[API Error: {"error":{"code":429,"message":"Please slow down"}}]' },
      stats: {},
    });
    expect(parser.summary().error).toMatchObject({ status: 429 });
    expect(kindOf(parser.summary())).toBe("rate_limit");
  });
});
