/** Each real agent CLI through its engine adapter, against the scripted fake model server. */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import { CliEngine } from "../../src/engines/cli/cli-engine.js";
import { geminiAdapter } from "../../src/engines/cli/gemini-adapter.js";
import type {
  EngineEvent,
  EngineRequest,
  EngineSettings,
  TokenUsage,
} from "../../src/engines/engine-port.js";
import { findBinary } from "../../src/engines/process/run-process.js";
import { driveEngine } from "../support/drive-engine.js";
import { waitGroupGone } from "../support/processes.js";
import { AGENT_CASES, available, skippedBecause } from "./agent-cases.js";
import {
  FakeModelServer,
  type FakeServerOptions,
  type ModelRequest,
  type Reply,
} from "./fake-model-server.js";

const registry = createDefaultRegistry();

const usageSum = (events: EngineEvent[]) =>
  events.reduce(
    (sum, e) =>
      e.type === "usage"
        ? {
            input: sum.input + e.usage.input,
            cachedInput: sum.cachedInput + e.usage.cachedInput,
            output: sum.output + e.usage.output,
          }
        : sum,
    { input: 0, cachedInput: 0, output: 0 },
  );

/** Live processes with `arg` among their arguments. */
function processesWithArg(arg: string): number[] {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(arg);
      } catch {
        return false; // it ended while we looked
      }
    })
    .map(Number);
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

const startedPid = (events: EngineEvent[]) =>
  events.find(
    (e): e is Extract<EngineEvent, { type: "started" }> => e.type === "started" && e.pid !== undefined,
  )?.pid;

/**
 * A wrapper binary that runs the CLI under strace, logging its network calls: connects to anything
 * but loopback, and any DNS query, mean traffic off the machine.
 */
function traced(binary: string): { binary: string; offMachine: () => string[] } {
  const dir = mkdtempSync(join(tmpdir(), "tgz-strace-"));
  const log = join(dir, "net.log");
  const wrapper = join(dir, "traced-cli");
  writeFileSync(
    wrapper,
    `#!/usr/bin/env bash\nexec strace -f -qq -e trace=connect,sendto,sendmsg -o '${log}' '${binary}' "$@"\n`,
  );
  chmodSync(wrapper, 0o755);
  return {
    binary: wrapper,
    offMachine: () =>
      readFileSync(log, "utf8")
        .split("\n")
        .filter((line) => {
          const v4 = /inet_addr\("([^"]+)"\)/.exec(line)?.[1];
          const v6 = /inet_pton\(AF_INET6, "([^"]+)"/.exec(line)?.[1];
          const dns = /htons\(53\)/.test(line);
          const remote =
            (v4 !== undefined && !v4.startsWith("127.")) ||
            (v6 !== undefined && v6 !== "::1" && !v6.startsWith("::ffff:127."));
          return dns || remote;
        }),
  };
}

const hasStrace = (): boolean => {
  if (findBinary("strace")) return true;
  if (process.env.CI === "true") throw new Error("strace is missing: the no-egress tests need it");
  console.log("skipped: the no-egress tests (strace is not installed)");
  return false;
};

for (const c of AGENT_CASES) {
  describe.skipIf(!available(c))(`${c.engineId} engine against the real CLI${skippedBecause(c)}`, () => {
    let server: FakeModelServer | undefined;
    afterEach(async () => {
      await server?.close();
      server = undefined;
    });

    async function call(
      script: (req: ModelRequest, cwd: string) => Reply,
      request: Partial<EngineRequest> = {},
      settingsOver: Partial<EngineSettings> = {},
      serverOptions: FakeServerOptions = {},
    ) {
      const cwd = mkdtempSync(join(tmpdir(), `tgz-${c.engineId}-work-`));
      server = await FakeModelServer.start((req) => script(req, cwd), serverOptions);
      const settings = { ...c.settings(server.url), ...settingsOver };
      const engine = registry.get(c.engineId);
      const run = (extra: Partial<EngineRequest> = {}) =>
        driveEngine(engine, {
          cwd,
          model: c.model,
          sandbox: "workspace-write",
          timeoutMs: 60_000,
          settings,
          ...request,
          ...extra,
        });
      return { cwd, settings, run, engine, ...(await run()) };
    }

    it("passes preflight with the binary's path and version, leaving the user's home untouched", async () => {
      server = await FakeModelServer.start(() => ({ text: "unused" }));
      const userHome = mkdtempSync(join(tmpdir(), "tgz-user-home-"));
      const realHome = process.env.HOME;
      process.env.HOME = userHome;
      try {
        const pre = await registry.get(c.engineId).preflight(c.settings(server.url));
        expect(pre).toMatchObject({
          ok: true,
          binaryPath: c.binary,
          version: expect.stringMatching(/^\d+\.\d+\.\d+$/),
        });
      } finally {
        process.env.HOME = realHome;
      }
      expect(readdirSync(userHome)).toEqual([]);
    });

    it("returns the final message and the normalised usage of a text reply, asking for the step's model with the settings' arguments", async () => {
      const usage = { input: 111, output: 22, cached: 33, cacheWrite: 5, reasoning: 7 };
      const { result, events } = await call(
        () => ({ text: "Hello from the fake model.", usage }),
        { prompt: "say hello", reasoningEffort: "high" },
        { args: c.extraArgs.args },
      );
      expect(c.modelIn(server!.requests[0]!)).toBe(c.model);
      expect(c.extraArgs.seen(server!)).toBe(true);
      if (c.engineId === "codex")
        expect(server!.requests[0]!.body.reasoning).toMatchObject({ effort: "high" });
      expect(result).toMatchObject({ ok: true, exitCode: 0, finalMessage: "Hello from the fake model." });
      // input with cache reads and writes, output with the thinking that is part of it
      expect(result.usage).toEqual({
        input: 111,
        cachedInput: 33,
        ...(c.reportsCacheWrites ? { cacheWrite: 5 } : {}),
        output: 22,
        reasoning: c.reportsReasoning ? 7 : 0,
        estimated: false,
      });
      expect(result.sessionId).toEqual(expect.any(String));
      expect(result.sessionRestarted).toBeUndefined();
      expect(events.some((e) => e.type === "started" && e.sessionId === result.sessionId)).toBe(true);
      const model = c.reportedModel(c.model, c.model);
      expect(events.at(-1)).toEqual({
        type: "final",
        text: "Hello from the fake model.",
        model,
        requestedModel: model === c.model ? undefined : c.model,
      });
      expect(server!.requests[0]!.text).toContain("say hello");
    });

    it("lets the model write a file through a tool call, and charges every model call of the run", async () => {
      const { result, events, cwd } = await call(
        (req, dir) =>
          req.toolResults === 0
            ? {
                text: "Writing it.",
                tool: c.writeTool(join(dir, "out.txt"), "written by the agent"),
                usage: { input: 100, output: 10, cached: 0 },
              }
            : { text: "Wrote it. DONE.", usage: { input: 200, output: 20, cached: 50 } },
        { prompt: "write the file" },
      );
      expect(result).toMatchObject({ ok: true, finalMessage: "Wrote it. DONE." });
      expect(readFileSync(join(cwd, "out.txt"), "utf8")).toBe("written by the agent");
      expect(events).toContainEqual({
        type: "tool",
        name: c.writeToolEvent,
        detail: expect.stringContaining(join(cwd, "out.txt")),
      });
      expect(server!.requests.map((r) => r.toolResults)).toEqual([0, 1]);
      if (c.sandboxShown)
        expect(c.sandboxShown.of(server!.requests[0]!)).toBe(c.sandboxShown.expected["workspace-write"]);
      const both = { input: 300, cachedInput: 50, output: 30 };
      expect(result.usage).toMatchObject(both);
      // the usage events are per call or per step, so the transcript adds up to what is charged
      expect(usageSum(events)).toEqual(both);
    });

    it("records the model the provider answered with (or the CLI says it ran) on every usage event, the final event and the result", async () => {
      // a real provider answers an alias with the dated snapshot it resolved to
      const answeredBy = (asked: string) => `${asked}-20261120`;
      const { result, events } = await call(
        (req, dir) =>
          req.toolResults === 0
            ? { text: "Writing it.", tool: c.writeTool(join(dir, "out.txt"), "x") }
            : { text: "Done." },
        {},
        {},
        { answeredBy },
      );
      const sent = String(c.modelIn(server!.requests[0]!));
      const model = c.reportedModel(sent, answeredBy(sent));
      // the model asked for is said beside it only when they differ
      const requestedModel = model === c.model ? undefined : c.model;
      expect(result).toMatchObject({ ok: true, model, requestedModel });
      expect(result.usageByModel).toBeUndefined();
      const usageEvents = events.filter((e) => e.type === "usage");
      expect(usageEvents.length).toBeGreaterThan(0);
      expect(usageEvents.map((e) => e.model)).toEqual(usageEvents.map(() => model));
      expect(events.at(-1)).toMatchObject({ type: "final", model, requestedModel });
    });

    it("keeps a read-only agent (QA's and planning's mode) from writing its worktree", async () => {
      const { result, cwd } = await call(
        (req, dir) =>
          req.toolResults === 0
            ? { text: "Writing it.", tool: c.writeTool(join(dir, "out.txt"), "must not be written") }
            : { text: "Could not write it." },
        { sandbox: "read-only", role: "qa" },
      );
      expect(result).toMatchObject({ ok: true, finalMessage: "Could not write it." });
      expect(existsSync(join(cwd, "out.txt"))).toBe(false);
      if (c.sandboxShown)
        expect(c.sandboxShown.of(server!.requests[0]!)).toBe(c.sandboxShown.expected["read-only"]);
    });

    it("continues the same session on resume, with the earlier turn in the request", async () => {
      const first = await call(
        (req) => ({ text: req.text.includes("second-turn") ? "second answer" : "first answer" }),
        { prompt: "remember the word PAPAYA-17" },
      );
      expect(first.result.ok).toBe(true);
      const second = await first.run({
        prompt: "second-turn: what was the word?",
        resumeSessionId: first.result.sessionId,
      });
      expect(second.result).toMatchObject({
        ok: true,
        finalMessage: "second answer",
        sessionId: first.result.sessionId,
      });
      expect(second.result.sessionRestarted).toBeUndefined();
      const last = server!.requests.at(-1)!;
      expect(last.text).toContain("PAPAYA-17");
      expect(last.text).toContain("first answer");
    });

    it("runs the prompt in a fresh session when the session to resume is unknown", async () => {
      const { result } = await call(() => ({ text: "answered in a new session" }), {
        prompt: "carry on",
        resumeSessionId: c.unknownSessionId,
      });
      expect(result).toMatchObject({
        ok: true,
        finalMessage: "answered in a new session",
        sessionRestarted: { previousSessionId: c.unknownSessionId, reason: expect.any(String) },
      });
      expect(result.sessionId).toEqual(expect.any(String));
      expect(result.sessionId).not.toBe(c.unknownSessionId);
      expect(server!.requests).toHaveLength(1);
      expect(server!.requests[0]!.text).toContain("carry on");
    });

    it("reports a 401 as an auth failure after one request, without retrying", async () => {
      // no `x-should-retry: false`: Claude Code would retry it for minutes unless told not to
      const { result, events } = await call(() => ({ status: 401, message: "Incorrect API key provided" }));
      expect(result.ok).toBe(false);
      expect(result.error).toMatchObject({ kind: "auth", retryable: false });
      expect(events.at(-1)).toEqual({ type: "error", error: result.error });
      expect(server!.requests).toHaveLength(1);
    });

    it.each([
      [529, "Overloaded"],
      [500, "scripted 500"],
    ])(
      "fails a %i as a retryable server error after its own retries are spent, if any",
      async (status, message) => {
        // a delay the CLIs that retry anyway honour (opencode), so its retries are counted, not waited for
        const { result } = await call(() => ({ status, message, headers: { "retry-after-ms": "0" } }));
        expect(result.error).toMatchObject({ kind: "server_error", retryable: true });
        expect(server!.requests).toHaveLength(c.requestsPerServerError);
      },
    );

    it("ends a call the server keeps failing, and leaves no process behind", async () => {
      const retriesOnItsOwn = c.requestsPerServerError > 1;
      const { result, events } = await call(() => ({ status: 500, message: "scripted 500" }), {
        timeoutMs: retriesOnItsOwn ? 8_000 : 60_000,
      });
      expect(result.ok).toBe(false);
      expect(result.error!.kind).toBe(retriesOnItsOwn ? "timeout" : "server_error");
      const pid = startedPid(events);
      expect(pid).toEqual(expect.any(Number));
      expect(await waitGroupGone(pid!)).toEqual([]);
    });

    it("kills the CLI as stalled when the model's stream stops mid-answer, and leaves no process behind", async () => {
      const { result, events } = await call(() => ({ hangStream: true }), {
        idleTimeoutMs: c.silentStartMs,
        timeoutMs: 120_000,
      });
      expect(result.error).toMatchObject({
        kind: "stalled",
        retryable: true,
        message: expect.stringMatching(new RegExp(`^${c.engineId} printed no event for \\d+(\\.\\d)? s`)),
      });
      expect(result.error!.stall!.idleMs).toBeGreaterThanOrEqual(c.silentStartMs);
      // the request was made: the silence is the hung answer's, not the CLI's start
      expect(server!.requests).toHaveLength(1);
      expect(await waitGroupGone(startedPid(events)!)).toEqual([]);
    });

    it("leaves no process behind when it times out while a tool command runs", async () => {
      // a duration no other process uses marks the tool command among all processes
      const marker = `600.${process.pid}${Date.now() % 100_000}`;
      let running = true;
      let seen = false;
      const watch = (async () => {
        while (running) {
          if (processesWithArg(marker).length > 0) seen = true;
          await pause(100);
        }
      })();
      try {
        const { result } = await call(
          (req) =>
            req.toolResults === 0
              ? { text: "Running it.", tool: c.shellTool(`sleep ${marker}`) }
              : { text: "It finished." },
          { sandbox: "full-access", timeoutMs: 20_000 },
        );
        running = false;
        await watch;
        expect(seen).toBe(true);
        expect(result.error?.kind).toBe("timeout");
        if (c.sandboxShown)
          expect(c.sandboxShown.of(server!.requests[0]!)).toBe(c.sandboxShown.expected["full-access"]);
        let left = processesWithArg(marker);
        for (let i = 0; i < 30 && left.length > 0; i++) {
          await pause(100);
          left = processesWithArg(marker);
        }
        expect(left).toEqual([]);
      } finally {
        running = false;
        for (const pid of processesWithArg(marker)) process.kill(pid, "SIGKILL");
      }
    });

    it("fails a call whose stream breaks off, and leaves no process behind", async () => {
      const { result, events } = await call(() => ({ breakStream: true }), {
        timeoutMs: c.requestsPerServerError > 1 ? 8_000 : 60_000,
      });
      expect(result.ok).toBe(false);
      expect(["server_error", "timeout"]).toContain(result.error!.kind);
      expect(await waitGroupGone(startedPid(events)!)).toEqual([]);
    });

    it("keeps the final message and usage when the output passes the cap, and reports the overflow", async () => {
      const { result } = await call(() => ({ text: "The answer after a lot of output." }), {
        maxOutputBytes: 400,
      });
      expect(result).toMatchObject({
        ok: true,
        finalMessage: "The answer after a lot of output.",
        usage: { input: 111, cachedInput: 33, output: 22 },
      });
      expect(result.truncatedBytes).toBeGreaterThan(0);
    });

    describe.skipIf(!hasStrace())("network", () => {
      it("sends nothing off the machine with the adapter's own settings", async () => {
        const trace = traced(c.binary);
        const { result } = await call(() => ({ text: "quiet" }), {}, { binary: trace.binary });
        expect(result).toMatchObject({ ok: true, finalMessage: "quiet" });
        expect(trace.offMachine()).toEqual([]);
      });
    });

    if (c.engineId === "codex") {
      it("writes the last message with -o and sends the output schema", async () => {
        const verdict = JSON.stringify({ verdict: "pass", summary: "fine", findings: [] });
        const schema = {
          type: "object",
          properties: { verdict: { type: "string" } },
          required: ["verdict"],
          additionalProperties: false,
        };
        const { result } = await call(() => ({ text: verdict }), {
          role: "qa",
          outputSchema: schema,
          sandbox: "read-only",
        });
        expect(result).toMatchObject({ ok: true, finalMessage: verdict });
        const body = server!.requests[0]!.body as { text?: { format?: { type?: string; schema?: unknown } } };
        expect(body.text?.format).toMatchObject({
          type: "json_schema",
          schema: expect.objectContaining({ required: ["verdict"] }),
        });
      });

      it("records the model its config chose when the step names none, from Codex's session record", async () => {
        const { result, events } = await call(
          () => ({ text: "configured" }),
          { model: undefined },
          { args: ["-c", 'model="gpt-5.4"'] },
        );
        expect(server!.requests[0]!.body.model).toBe("gpt-5.4");
        expect(result).toMatchObject({ ok: true, model: "gpt-5.4" });
        expect(result.requestedModel).toBeUndefined();
        expect(events.find((e) => e.type === "usage")).toMatchObject({ model: "gpt-5.4" });
      });

      it("charges a resumed call only its own tokens, in the result and in its usage event", async () => {
        const first = await call(() => ({ text: "one" }));
        const second = await first.run({ prompt: "again", resumeSessionId: first.result.sessionId });
        expect(first.result.usage?.input).toBe(111);
        expect(second.result.usage?.input).toBe(111);
        const events = second.events.filter(
          (e): e is { type: "usage"; usage: TokenUsage } => e.type === "usage",
        );
        expect(events.map((e) => e.usage.input)).toEqual([111]);
      });

      it("types a failure after the agent already ran a tool as a retryable server error", async () => {
        const { result, cwd } = await call((req, dir) =>
          req.toolResults === 0
            ? { text: "Running it.", tool: c.writeTool(join(dir, "x.txt"), "x") }
            : { status: 500, message: "scripted 500" },
        );
        expect(existsSync(join(cwd, "x.txt"))).toBe(true);
        expect(result.error).toMatchObject({ kind: "server_error", retryable: true });
      });

      it("switches off the retries of a provider from config.toml, keeping a retry setting its table chose", async () => {
        server = await FakeModelServer.start(() => ({ status: 500, message: "scripted 500" }));
        const settings = { ...c.settings(server.url), configOverrides: [] };
        mkdirSync(settings.homeDir!, { recursive: true });
        // the user's table retries a broken stream once; its request retries (4 by default) go
        writeFileSync(
          join(settings.homeDir!, "config.toml"),
          `model_provider = "fake"\n[model_providers.fake]\nname = "fake"\nbase_url = "${server.url}/v1"\n` +
            'env_key = "FAKE_KEY"\nwire_api = "responses"\nstream_max_retries = 1\n',
        );
        const { result } = await driveEngine(registry.get("codex"), {
          cwd: mkdtempSync(join(tmpdir(), "tgz-codex-work-")),
          model: c.model,
          timeoutMs: 60_000,
          settings,
        });
        expect(result.error).toMatchObject({ kind: "server_error" });
        expect(server.requests).toHaveLength(2);
      });

      it("passes on the delay a response.failed rate limit asks for", async () => {
        const { result } = await call(() => ({
          failed: {
            code: "rate_limit_exceeded",
            message: "Rate limit reached for gpt-5.5. Please try again in 2.5s.",
          },
        }));
        expect(result.error).toMatchObject({ kind: "rate_limit", retryable: true, retryAfterMs: 2500 });
      });

      it("types an HTTP 429 as a rate limit; Codex does not pass a Retry-After header on", async () => {
        const { result } = await call(() => ({
          status: 429,
          message: "Rate limit reached. Please try again in 7s.",
          headers: { "retry-after": "7" },
        }));
        expect(result.error).toMatchObject({ kind: "rate_limit", retryable: true });
        expect(result.error!.message).toMatch(/429 Too Many Requests/);
        expect(result.error!.retryAfterMs).toBeUndefined();
      });

      it("types a response.failed context overflow as context_too_long", async () => {
        const { result } = await call(() => ({
          failed: {
            code: "context_length_exceeded",
            message: "Your input exceeds the context window of this model.",
          },
        }));
        expect(result.error).toMatchObject({ kind: "context_too_long", retryable: false });
      });
    }

    if (c.engineId === "claude-code") {
      it("answers through the non-streaming fallback after a cut stream, with its usage, after HEAD /", async () => {
        const { result } = await call((req) =>
          req.body.stream === true ? { truncateStream: true } : { text: "from the non-streaming fallback" },
        );
        expect(result).toMatchObject({
          ok: true,
          finalMessage: "from the non-streaming fallback",
          usage: { input: 111, cachedInput: 33, output: 22 },
        });
        expect(server!.requests.map((r) => r.body.stream ?? "absent")).toEqual([true, "absent"]);
        expect(server!.probes).toContainEqual({ method: "HEAD", path: "/" });
      });

      it("records the model each part of the call ran on: the main model the API answered with, and a subagent's", async () => {
        const answeredBy = (asked: string) => `${asked}-20261120`;
        const subagent = { input: 50, output: 10, cached: 0 };
        const main = { input: 200, output: 20, cached: 100, cacheWrite: 10 };
        const { result, events } = await call(
          (req) => {
            if (String(req.body.model).includes("haiku")) return { text: "Subagent done.", usage: subagent };
            return req.toolResults === 0
              ? {
                  tool: {
                    name: "Task",
                    args: {
                      description: "check",
                      prompt: "Say done.",
                      subagent_type: "general-purpose",
                      model: "haiku",
                    },
                  },
                  usage: main,
                }
              : { text: "DONE", usage: main };
          },
          { model: "claude-opus-4-1" },
          {},
          { answeredBy },
        );
        const sentMain = String(server!.requests[0]!.body.model);
        const sentSub = String(
          server!.requests.find((r) => String(r.body.model).includes("haiku"))!.body.model,
        );
        expect(result).toMatchObject({
          ok: true,
          model: answeredBy(sentMain),
          requestedModel: "claude-opus-4-1",
        });
        // Claude Code's per-model figures name the models it sent; the main one is named as the API answered
        expect(result.usageByModel).toEqual({
          [answeredBy(sentMain)]: {
            input: 400,
            cachedInput: 200,
            cacheWrite: 20,
            output: 40,
            reasoning: 0,
            estimated: false,
          },
          [sentSub]: { input: 50, cachedInput: 0, output: 10, reasoning: 0, estimated: false },
        });
        expect(result.usage).toMatchObject({ input: 450, cachedInput: 200, cacheWrite: 20, output: 50 });
        expect(events.filter((e) => e.type === "usage").map((e) => e.model)).toEqual([
          answeredBy(sentMain),
          sentSub,
        ]);
      });
    }

    if (c.engineId === "gemini") {
      it("runs with the user's seeded settings (comments and all), statistics off, nothing sent off the machine", async () => {
        const user = mkdtempSync(join(tmpdir(), "tgz-user-"));
        mkdirSync(join(user, ".gemini"));
        // the user's own file: statistics on and no auth type, which alone makes a headless run exit 41
        const mine =
          '{ // mine\n "privacy": { "usageStatisticsEnabled": true }, "ui": { "hideBanner": true } }';
        writeFileSync(join(user, ".gemini", "settings.json"), mine);
        server = await FakeModelServer.start(() => ({ text: "seeded and quiet" }));
        const trace = hasStrace() ? traced(c.binary) : undefined;
        const settings = { ...c.settings(server.url), seedFromUser: true, binary: trace?.binary ?? c.binary };
        const { result } = await driveEngine(new CliEngine(geminiAdapter, () => user), {
          cwd: mkdtempSync(join(tmpdir(), "tgz-gemini-work-")),
          model: c.model,
          timeoutMs: 60_000,
          settings,
        });
        expect(result).toMatchObject({ ok: true, finalMessage: "seeded and quiet" });
        expect(trace?.offMachine() ?? []).toEqual([]);
        const seeded = JSON.parse(readFileSync(join(settings.homeDir!, ".gemini", "settings.json"), "utf8"));
        expect(seeded).toMatchObject({
          privacy: { usageStatisticsEnabled: false },
          ui: { hideBanner: true },
        });
        expect(readFileSync(join(user, ".gemini", "settings.json"), "utf8")).toBe(mine);
      });
    }
  });
}

it("names a missing CLI binary in a failed preflight with its fix", async () => {
  const pre = await registry.get("codex").preflight({ binary: "/nonexistent/codex" });
  expect(pre.ok).toBe(false);
  expect(pre.problems[0]).toMatchObject({
    message: expect.stringMatching(/binary "\/nonexistent\/codex" not found/),
    fix: expect.stringMatching(/engines\.codex\.binary/),
  });
  expect(existsSync("/nonexistent/codex")).toBe(false);
});
