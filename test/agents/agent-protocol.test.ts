/** A whole protocol on real CLIs: Codex does the work, Claude Code judges it, a failing verdict loops once. */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runSpec, scenario } from "../scenario/harness.js";
import { AGENT_CASES, available, engineConfigEntry, skippedBecause } from "./agent-cases.js";
import { FakeModelServer } from "./fake-model-server.js";

const codex = AGENT_CASES.find((c) => c.engineId === "codex")!;
const claude = AGENT_CASES.find((c) => c.engineId === "claude-code")!;

describe.skipIf(!available(codex) || !available(claude))(
  `a protocol on Codex with Claude Code as QA${skippedBecause(codex, claude)}`,
  () => {
    let server: FakeModelServer | undefined;
    afterAll(() => server?.close());

    it("loops once on a failing verdict, then completes, with real usage recorded", async () => {
      let attempts = 0;
      let qaCalls = 0;
      let workspace = "";
      server = await FakeModelServer.start((req) => {
        if (req.api === "responses") {
          // a resumed attempt carries the earlier tool output in its history: look at the newest item only
          const last = (req.body.input as { type?: string }[]).at(-1);
          if (last?.type !== "function_call_output") {
            attempts++;
            return {
              text: "Writing the greeting.",
              tool: codex.writeTool(join(workspace, "greeting.txt"), `hello ${attempts}`),
            };
          }
          return { text: `Wrote greeting.txt (attempt ${attempts}).` };
        }
        if (req.toolResults > 0) return { text: "Verdict recorded." };
        qaCalls++;
        const verdict = req.text.includes("(attempt 1)")
          ? {
              verdict: "fail",
              summary: "greeting lacks a name",
              findings: [{ severity: "major", message: "no name", file: "greeting.txt" }],
            }
          : { verdict: "pass", summary: "fine", findings: [] };
        // with an output schema Claude Code answers through its StructuredOutput tool
        return { tool: { name: "StructuredOutput", args: verdict } };
      });
      const s = await scenario({ TASKSGODZILLA_DATA_DIR: mkdtempSync(join(tmpdir(), "tgz-data-")) });
      workspace = s.repo;
      const codexSettings = codex.settings(server.url);
      const claudeSettings = claude.settings(server.url);
      writeFileSync(
        join(s.repo, "tasksgodzilla.config.json"),
        JSON.stringify({
          engines: {
            codex: {
              binary: codexSettings.binary,
              config_overrides: codexSettings.configOverrides,
              env: codexSettings.env,
            },
            "claude-code": {
              binary: claudeSettings.binary,
              base_url: claudeSettings.baseUrl,
              env: claudeSettings.env,
            },
          },
        }),
      );
      const r = await runSpec(
        s,
        {
          steps: [
            {
              id: "01-greet",
              engine_id: "codex",
              model: codex.model,
              prompt_ref: "greet.md",
              qa: { policy: "full", engine_id: "claude-code", model: claude.model },
              policies: [
                { behavior: "loop", id: "fix", conditions: ["qa_failed"], step_back: 0, max_iterations: 2 },
              ],
            },
          ],
        },
        { "greet.md": "Write greeting.txt with a greeting." },
      );
      await s.close();
      expect(r.run.status).toBe("completed");
      expect(r.trail.filter((t) => t.startsWith("qa_verdict") || t.startsWith("loop_decision"))).toEqual([
        "qa_verdict:01-greet",
        "loop_decision:01-greet",
        "qa_verdict:01-greet",
      ]);
      expect(r.of("qa_verdict").map((e) => [e.metadata.verdict, e.metadata.engine_id])).toEqual([
        ["fail", "claude-code"],
        ["pass", "claude-code"],
      ]);
      const done = r.of("step_completed");
      expect(done).toHaveLength(2);
      // two model calls per attempt; the resumed attempt is charged its own calls, not the thread's total
      for (const d of done)
        expect(d.metadata).toMatchObject({
          engine_id: "codex",
          model: "gpt-5.5",
          usage: { input: 222, cached_input: 66, output: 44, estimated: false },
        });
      expect(readFileSync(join(s.repo, "greeting.txt"), "utf8")).toBe("hello 2");
      expect(qaCalls).toBe(2);
      // the second attempt continued the first one's Codex thread
      expect(server.of("responses").at(-1)!.text).toContain("hello 1");
    });

    it("kills a Codex call whose answer hangs as stalled, and completes on the step's retry", async () => {
      let calls = 0;
      const hanging = await FakeModelServer.start(() =>
        ++calls === 1 ? { hangStream: true } : { text: "answered on the retry" },
      );
      try {
        const s = await scenario({ TASKSGODZILLA_DATA_DIR: mkdtempSync(join(tmpdir(), "tgz-data-")) });
        writeFileSync(
          join(s.repo, "tasksgodzilla.config.json"),
          JSON.stringify({ engines: { codex: engineConfigEntry(codex.settings(hanging.url)) } }),
        );
        const r = await runSpec(
          s,
          {
            steps: [
              {
                id: "work",
                engine_id: "codex",
                model: codex.model,
                prompt_ref: "p.md",
                idle_timeout_seconds: codex.silentStartMs / 1000,
                retry: { engine_errors: 1 },
              },
            ],
          },
          { "p.md": "do it" },
        );
        await s.close();
        expect(r.run.status).toBe("completed");
        expect(r.trail.filter((t) => /^(step_stalled|engine_retry|step_completed)/.test(t))).toEqual([
          "step_stalled:work",
          "engine_retry:work",
          "step_completed:work",
        ]);
        expect(r.of("step_stalled")[0]!.metadata).toMatchObject({
          phase: "exec",
          engine_id: "codex",
          attempt: 1,
          call: 1,
          idle_timeout_ms: codex.silentStartMs,
          last_output: '{"type":"turn.started"}',
        });
        expect(r.of("engine_retry")[0]!.metadata).toMatchObject({ error: { kind: "stalled" } });
        expect(calls).toBe(2);
      } finally {
        await hanging.close();
      }
    });

    it("retries a rate-limited Codex call after the delay the provider asked for, then completes", async () => {
      let calls = 0;
      const limited = await FakeModelServer.start(() =>
        ++calls === 1
          ? {
              failed: {
                code: "rate_limit_exceeded",
                message: "Rate limit reached for gpt-5.5. Please try again in 1.5s.",
              },
            }
          : { text: "done after a retry" },
      );
      try {
        const s = await scenario({ TASKSGODZILLA_DATA_DIR: mkdtempSync(join(tmpdir(), "tgz-data-")) });
        writeFileSync(
          join(s.repo, "tasksgodzilla.config.json"),
          JSON.stringify({ engines: { codex: engineConfigEntry(codex.settings(limited.url)) } }),
        );
        const r = await runSpec(
          s,
          { steps: [{ id: "work", engine_id: "codex", model: codex.model, prompt_ref: "p.md" }] },
          { "p.md": "do it" },
        );
        await s.close();
        expect(r.run.status).toBe("completed");
        expect(r.of("engine_retry").map((e) => e.metadata)).toEqual([
          expect.objectContaining({
            attempt: 1,
            // the hint, not the 1000 ms default backoff
            delay_ms: 1500,
            error: expect.objectContaining({ kind: "rate_limit", retryable: true, retryAfterMs: 1500 }),
          }),
        ]);
        expect(calls).toBe(2);
      } finally {
        await limited.close();
      }
    });
  },
);

for (const c of AGENT_CASES) {
  describe.skipIf(!available(c))(
    `a ${c.engineId} step against a server that refuses its key${skippedBecause(c)}`,
    () => {
      it("fails the step as auth after one request, with no retry", async () => {
        const server = await FakeModelServer.start(() => ({
          status: 401,
          message: "Incorrect API key provided",
        }));
        try {
          const s = await scenario({ TASKSGODZILLA_DATA_DIR: mkdtempSync(join(tmpdir(), "tgz-data-")) });
          writeFileSync(
            join(s.repo, "tasksgodzilla.config.json"),
            JSON.stringify({ engines: { [c.engineId]: engineConfigEntry(c.settings(server.url)) } }),
          );
          const r = await runSpec(
            s,
            { steps: [{ id: "work", engine_id: c.engineId, model: c.model, prompt_ref: "p.md" }] },
            { "p.md": "do it" },
          );
          await s.close();
          expect(r.status.work).toBe("failed");
          expect(r.of("step_failed")[0]!.metadata).toMatchObject({
            reason: "exec_failed",
            error_kind: "auth",
          });
          expect(r.of("engine_error")[0]!.metadata).toMatchObject({
            error: { kind: "auth", retryable: false },
          });
          expect(r.of("engine_retry")).toEqual([]);
          expect(server.requests).toHaveLength(1);
        } finally {
          await server.close();
        }
      });

      it("retries an overloaded call only by the step's retry.engine_errors, each call its CLI's requests alone", async () => {
        // opencode retries on its own and cannot be told not to: it honours this delay, so it is quick
        const server = await FakeModelServer.start(() => ({
          status: 529,
          message: "Overloaded",
          headers: { "retry-after-ms": "0" },
        }));
        try {
          const s = await scenario({ TASKSGODZILLA_DATA_DIR: mkdtempSync(join(tmpdir(), "tgz-data-")) });
          writeFileSync(
            join(s.repo, "tasksgodzilla.config.json"),
            JSON.stringify({ engines: { [c.engineId]: engineConfigEntry(c.settings(server.url)) } }),
          );
          const r = await runSpec(
            s,
            {
              steps: [
                {
                  id: "work",
                  engine_id: c.engineId,
                  model: c.model,
                  prompt_ref: "p.md",
                  retry: { engine_errors: 1 },
                },
              ],
            },
            { "p.md": "do it" },
          );
          await s.close();
          expect(r.status.work).toBe("failed");
          expect(r.of("engine_retry").map((e) => e.metadata)).toEqual([
            expect.objectContaining({ attempt: 1, error: expect.objectContaining({ kind: "server_error" }) }),
          ]);
          expect(r.of("engine_error")[0]!.metadata).toMatchObject({
            error: { kind: "server_error", retryable: true },
          });
          expect(server.requests).toHaveLength(2 * c.requestsPerServerError);
        } finally {
          await server.close();
        }
      });
    },
  );
}
