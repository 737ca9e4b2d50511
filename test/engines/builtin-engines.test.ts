import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ReplayEngine } from "../../src/engines/builtin/replay-engine.js";
import { ShellEngine } from "../../src/engines/builtin/shell-engine.js";
import type { Engine, EngineRequest } from "../../src/engines/engine-port.js";
import { driveEngine } from "../support/drive-engine.js";

const cwd = mkdtempSync(join(tmpdir(), "tgz-engines-"));

function drive(
  engine: Engine,
  inputs: Record<string, unknown>,
  extra: Partial<EngineRequest> = {},
  signal?: AbortSignal,
) {
  return driveEngine(engine, { cwd, inputs, ...extra }, signal);
}

describe("shell engine", () => {
  const shell = new ShellEngine();

  it("runs a command string in the worktree with the run's env; stdout is the final message", async () => {
    const { result, events } = await drive(
      shell,
      { command: 'echo "$TASKSGODZILLA_STEP_ID in $PWD"' },
      { env: { TASKSGODZILLA_STEP_ID: "s1" } },
    );
    expect(result).toMatchObject({ ok: true, exitCode: 0, finalMessage: `s1 in ${cwd}` });
    expect(events.map((e) => e.type)).toEqual(["started", "final"]);
  });

  it("runs a list in order and stops at the first failing command, with the stderr tail", async () => {
    const { result } = await drive(shell, { command: ["echo one", "echo broken >&2; false", "echo never"] });
    expect(result.ok).toBe(false);
    expect(result.finalMessage).toBe("one");
    expect(result.error).toMatchObject({
      kind: "crash",
      message: expect.stringMatching(/exited with code 1: broken/),
    });
  });

  it("keeps what a successful command wrote to stderr, and reports using no tokens", async () => {
    const { result, events } = await drive(shell, { command: "echo out; echo warned >&2" });
    expect(result).toMatchObject({
      ok: true,
      finalMessage: "out",
      usage: { input: 0, output: 0, estimated: false },
    });
    expect(events).toContainEqual({ type: "stderr", text: "warned\n" });
  });

  it("fails clearly without a command", async () => {
    expect((await drive(shell, {})).result.error?.message).toMatch(/needs inputs.command/);
    expect((await drive(shell, { command: [1, 2] })).result.ok).toBe(false);
  });

  it("times out as a timeout failure", async () => {
    const { result } = await drive(shell, { command: "sleep 20" }, { timeoutMs: 300 });
    expect(result.error).toMatchObject({ kind: "timeout" });
  });

  it("fails as stalled, retryably, when the command prints nothing for the idle limit", async () => {
    const { result } = await drive(
      shell,
      { command: "echo compiling; sleep 20" },
      { idleTimeoutMs: 400, timeoutMs: 10_000 },
    );
    expect(result.error).toMatchObject({
      kind: "stalled",
      retryable: true,
      message: expect.stringMatching(
        /^command printed nothing for \d\.\d s; its process group was killed \(last output: compiling\)$/,
      ),
      stall: { idleMs: expect.any(Number), lastOutput: "compiling" },
    });
    expect(result.finalMessage).toBe("compiling");
  });

  it("is not stalled by a long command that keeps printing", async () => {
    const { result } = await drive(
      shell,
      { command: "for i in 1 2 3 4 5 6 7 8; do echo tick $i >&2; sleep 0.15; done; echo finished" },
      { idleTimeoutMs: 500 },
    );
    expect(result).toMatchObject({ ok: true, finalMessage: "finished" });
  });

  it("passes preflight with bash's path and version", async () => {
    expect(await shell.preflight()).toMatchObject({
      ok: true,
      binaryPath: expect.stringMatching(/bash$/),
      version: expect.stringMatching(/GNU bash/),
    });
  });
});

describe("replay engine", () => {
  const replay = new ReplayEngine();
  const write = (name: string, text: string) => {
    writeFileSync(join(cwd, name), text);
    return name;
  };

  it("plays a JSONL recording: events in order, final message, summed usage, session id", async () => {
    const file = write(
      "rec.jsonl",
      [
        { type: "started", sessionId: "sess-1" },
        { type: "tool", name: "edit", detail: "a.txt" },
        { type: "usage", usage: { input: 10, output: 2 } },
        { type: "usage", usage: { input: 5, cachedInput: 3, output: 1, reasoning: 1 } },
        { type: "final", text: "all done" },
      ]
        .map((e) => JSON.stringify(e))
        .join("\n\n"),
    );
    const { result, events } = await drive(replay, { recording: file });
    expect(events.map((e) => e.type)).toEqual(["started", "tool", "usage", "usage", "final"]);
    expect(result).toMatchObject({
      ok: true,
      finalMessage: "all done",
      sessionId: "sess-1",
      usage: { input: 15, cachedInput: 3, output: 3, reasoning: 1, estimated: false },
    });
  });

  it("replays the models a recorded call named: per model usage, the final event's model and the one asked for", async () => {
    const file = write(
      "models.jsonl",
      [
        {
          type: "usage",
          usage: { input: 100, cachedInput: 40, cacheWrite: 10, output: 20 },
          model: "claude-opus-4-8",
        },
        { type: "usage", usage: { input: 30, output: 5 }, model: "claude-haiku-4-5" },
        { type: "final", text: "done", model: "claude-opus-4-8", requestedModel: "claude-opus-4-1" },
      ]
        .map((e) => JSON.stringify(e))
        .join("\n"),
    );
    const { result } = await drive(replay, { recording: file });
    expect(result).toMatchObject({
      ok: true,
      model: "claude-opus-4-8",
      requestedModel: "claude-opus-4-1",
      usage: { input: 130, cachedInput: 40, cacheWrite: 10, output: 25 },
      usageByModel: {
        "claude-opus-4-8": { input: 100, cachedInput: 40, cacheWrite: 10, output: 20 },
        "claude-haiku-4-5": { input: 30, cachedInput: 0, output: 5 },
      },
    });
  });

  it("reads JSON arrays and {events}, and inline finals", async () => {
    expect(
      (await drive(replay, { recording: write("a.json", JSON.stringify([{ type: "message", text: "hi" }])) }))
        .result.finalMessage,
    ).toBe("hi");
    expect(
      (
        await drive(replay, {
          recording: write("b.json", JSON.stringify({ events: [{ type: "final", text: "x" }] })),
        })
      ).result.finalMessage,
    ).toBe("x");
    expect((await drive(replay, { final: "inline" })).result).toMatchObject({
      ok: true,
      finalMessage: "inline",
      usage: undefined,
    });
  });

  it("fails as bad_output naming the line of a malformed recording", async () => {
    const file = write("bad.jsonl", '{"type":"message","text":"ok"}\n{not json\n');
    expect((await drive(replay, { recording: file })).result.error).toMatchObject({
      kind: "bad_output",
      message: expect.stringMatching(/bad\.jsonl line 2 is not a valid event/),
    });
    const wrong = write("wrong.jsonl", '{"type":"usage","usage":{"input":"many"}}\n');
    expect((await drive(replay, { recording: wrong })).result.error?.message).toMatch(
      /line 1 .*usage\.input/,
    );
  });

  it("returns a recorded error as the failure, and a missing file as unavailable", async () => {
    const file = write(
      "err.jsonl",
      JSON.stringify({ type: "error", error: { kind: "rate_limit", message: "slow down", retryable: true } }),
    );
    expect((await drive(replay, { recording: file })).result.error).toMatchObject({
      kind: "rate_limit",
      retryable: true,
    });
    expect((await drive(replay, { recording: "nope.jsonl" })).result.error).toMatchObject({
      kind: "unavailable",
      message: expect.stringMatching(/nope\.jsonl does not exist/),
    });
  });

  it("plays the pause a recorded event carries before it", async () => {
    const file = write(
      "paused.jsonl",
      [
        { type: "message", text: "thinking" },
        { type: "final", text: "done", delay_ms: 300 },
      ]
        .map((e) => JSON.stringify(e))
        .join("\n"),
    );
    const started = Date.now();
    const { result } = await drive(replay, { recording: file }, { idleTimeoutMs: 2000 });
    expect(result).toMatchObject({ ok: true, finalMessage: "done" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it("stalls on a recorded pause longer than the idle limit, reporting the last event played", async () => {
    const file = write(
      "long-pause.jsonl",
      [
        { type: "started", sessionId: "s-9" },
        { type: "message", text: "running the tests" },
        { type: "final", text: "never reached", delay_ms: 60_000 },
      ]
        .map((e) => JSON.stringify(e))
        .join("\n"),
    );
    const { result, events } = await drive(replay, { recording: file }, { idleTimeoutMs: 400 });
    expect(events.map((e) => e.type)).toEqual(["started", "message"]);
    expect(result).toMatchObject({
      ok: false,
      sessionId: "s-9",
      error: {
        kind: "stalled",
        retryable: true,
        message: expect.stringMatching(
          /^replay played no event for 0\.\d s \(last output: \{"type":"message"/,
        ),
        stall: { lastOutput: '{"type":"message","text":"running the tests"}' },
      },
    });
    expect(result.error!.stall!.idleMs).toBeGreaterThanOrEqual(400);
  });

  it("times out rather than stalls when the timeout comes first", async () => {
    const file = write(
      "pause-past-timeout.jsonl",
      JSON.stringify({ type: "final", text: "x", delay_ms: 5000 }),
    );
    const { result } = await drive(replay, { recording: file }, { timeoutMs: 300, idleTimeoutMs: 1000 });
    expect(result.error?.kind).toBe("timeout");
  });

  it("refuses a negative or fractional pause, naming the line", async () => {
    for (const delay_ms of [-5, 1.5]) {
      const file = write("bad-pause.jsonl", JSON.stringify({ type: "final", text: "x", delay_ms }));
      expect((await drive(replay, { recording: file })).result.error).toMatchObject({
        kind: "bad_output",
        message: expect.stringMatching(/bad-pause\.jsonl line 1 is not a valid event: delay_ms: /),
      });
    }
  });

  it("stops when aborted", async () => {
    const controller = new AbortController();
    const file = write(
      "slow.jsonl",
      [1, 2, 3, 4].map((i) => JSON.stringify({ type: "message", text: `m${i}` })).join("\n"),
    );
    setTimeout(() => controller.abort(), 150);
    const { result } = await drive(replay, { recording: file, delay_ms: 100 }, {}, controller.signal);
    expect(result.error?.kind).toBe("aborted");
  });
});
