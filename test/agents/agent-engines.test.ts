/** Each real agent CLI through its engine adapter, against the scripted fake model server. */
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import type { EngineEvent, EngineRequest } from "../../src/engines/engine-port.js";
import { driveEngine } from "../support/drive-engine.js";
import { waitGroupGone } from "../support/processes.js";
import { AGENT_CASES, available } from "./agent-cases.js";
import { FakeModelServer, type ModelRequest, type Reply } from "./fake-model-server.js";

const registry = createDefaultRegistry();

for (const c of AGENT_CASES) {
  describe.skipIf(!available(c))(`${c.engineId} engine against the real CLI`, () => {
    let server: FakeModelServer | undefined;
    afterEach(async () => {
      await server?.close();
      server = undefined;
    });

    async function call(
      script: (req: ModelRequest, cwd: string) => Reply,
      request: Partial<EngineRequest> = {},
    ) {
      const cwd = mkdtempSync(join(tmpdir(), `tgz-${c.engineId}-work-`));
      server = await FakeModelServer.start((req) => script(req, cwd));
      const settings = c.settings(server.url);
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

    it("passes preflight with the binary's path and version", async () => {
      server = await FakeModelServer.start(() => ({ text: "unused" }));
      const pre = await registry.get(c.engineId).preflight(c.settings(server.url));
      expect(pre).toMatchObject({
        ok: true,
        binaryPath: c.binary,
        version: expect.stringMatching(/^\d+\.\d+\.\d+$/),
      });
    });

    it("returns the final message and the normalised usage of a text reply", async () => {
      const { result, events } = await call(() => ({ text: "Hello from the fake model." }), {
        prompt: "say hello",
      });
      expect(result).toMatchObject({ ok: true, exitCode: 0, finalMessage: "Hello from the fake model." });
      expect(result.usage).toEqual({
        input: 111,
        cachedInput: 33,
        output: 22,
        reasoning: 0,
        estimated: false,
      });
      expect(result.sessionId).toEqual(expect.any(String));
      expect(events.some((e) => e.type === "started" && e.sessionId === result.sessionId)).toBe(true);
      expect(server!.requests[0]!.text).toContain("say hello");
    });

    it("lets the model write a file in the worktree through a tool call", async () => {
      const { result, events, cwd } = await call(
        (req, dir) =>
          req.toolResults === 0
            ? { text: "Writing it.", tool: c.writeTool(join(dir, "out.txt"), "written by the agent") }
            : { text: "Wrote it. DONE." },
        { prompt: "write the file" },
      );
      expect(result).toMatchObject({ ok: true, finalMessage: "Wrote it. DONE." });
      expect(readFileSync(join(cwd, "out.txt"), "utf8")).toBe("written by the agent");
      expect(events.filter((e) => e.type === "tool").length).toBeGreaterThan(0);
      expect(server!.requests.filter((r) => r.toolResults > 0).length).toBeGreaterThan(0);
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
      expect(second.result).toMatchObject({ ok: true, finalMessage: "second answer" });
      const last = server!.requests.at(-1)!;
      expect(last.text).toContain("PAPAYA-17");
      expect(last.text).toContain("first answer");
    });

    it("reports a 401 as an auth failure that is not retried", async () => {
      const { result } = await call(() => ({ status: 401, message: "Incorrect API key provided" }));
      expect(result.ok).toBe(false);
      expect(result.error).toMatchObject({ kind: "auth", retryable: false });
    });

    it("ends a call the server keeps failing, and leaves no process behind", async () => {
      const { result, events } = await call(() => ({ status: 500, message: "scripted 500" }), {
        timeoutMs: c.retriesServerErrorsForever ? 8_000 : 60_000,
      });
      expect(result.ok).toBe(false);
      expect(result.error!.kind).toBe(c.retriesServerErrorsForever ? "timeout" : "server_error");
      const started = events.find(
        (e): e is Extract<EngineEvent, { type: "started" }> => e.type === "started" && e.pid !== undefined,
      );
      expect(started?.pid).toEqual(expect.any(Number));
      expect(await waitGroupGone(started!.pid!)).toEqual([]);
    });

    it("fails a call whose stream breaks off, and leaves no process behind", async () => {
      const { result, events } = await call(() => ({ breakStream: true }), {
        timeoutMs: c.retriesServerErrorsForever ? 8_000 : 60_000,
      });
      expect(result.ok).toBe(false);
      expect(["server_error", "timeout", "crash"]).toContain(result.error!.kind);
      const started = events.find(
        (e): e is Extract<EngineEvent, { type: "started" }> => e.type === "started" && e.pid !== undefined,
      );
      expect(await waitGroupGone(started!.pid!)).toEqual([]);
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

      it("charges a resumed call only its own tokens, not the thread's running total", async () => {
        const first = await call(() => ({ text: "one" }));
        const second = await first.run({ prompt: "again", resumeSessionId: first.result.sessionId });
        expect(first.result.usage?.input).toBe(111);
        expect(second.result.usage?.input).toBe(111);
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
