/**
 * A CodeMachine 0.8 local package (the project's fixture) imported and run end to end on the real
 * Claude Code and Codex CLIs:
 * plan → build → check, the checker's loop directive sends it back to build once, then stop; full QA
 * on every imported step.
 */
import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open-store.js";
import { LOCAL_PACKAGE } from "../codemachine/packages.js";
import { gitRepo, inspect } from "../scenario/harness.js";
import { AGENT_CASES, available } from "./agent-cases.js";
import { FakeModelServer, type ModelRequest, type Reply } from "./fake-model-server.js";

const BIN = join(import.meta.dirname, "../../dist/cli/main.js");
const codex = AGENT_CASES.find((c) => c.engineId === "codex")!;
const claude = AGENT_CASES.find((c) => c.engineId === "claude-code")!;
const exec = promisify(execFile);
/** How the fixture's plan prompt introduces the planner. */
const PLANNER = "You turn a specification into a plan";

/**
 * Tool results since the agent's prompt: where this turn is. A re-run of a step may continue the
 * engine session, whose history holds the earlier turns' tool results too.
 */
function turnToolResults(req: ModelRequest): number {
  type Block = { type?: string };
  const messages = (req.body.messages as { role: string; content: unknown }[] | undefined) ?? [];
  let n = 0;
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    const blocks = Array.isArray(m.content) ? (m.content as Block[]) : [];
    const results = blocks.filter((b) => b.type === "tool_result").length;
    if (m.role === "user" && results === 0) break;
    n += results;
  }
  return n;
}

describe.skipIf(!available(codex) || !available(claude))(
  "an imported CodeMachine workflow on real CLIs",
  () => {
    let server: FakeModelServer | undefined;
    afterAll(() => server?.close());

    it("loops once on the checker's directive, then stops, with full QA on every step", async () => {
      const repo = gitRepo();
      cpSync(LOCAL_PACKAGE, repo, { recursive: true });
      const verdict = { verdict: "pass", summary: "looks right", findings: [] };
      let checks = 0;
      const newTurn = (req: ModelRequest) => req.toolResults === 0;
      server = await FakeModelServer.start((req): Reply => {
        const qa = req.text.includes("quality gate of an automated coding protocol");
        if (req.api === "responses") {
          if (qa) return { text: JSON.stringify(verdict) };
          const last = (req.body.input as { type?: string }[]).at(-1);
          return last?.type === "function_call_output"
            ? { text: "Built the next task." }
            : { text: "Building.", tool: { name: "exec_command", args: { cmd: "echo built >> build.log" } } };
        }
        if (qa)
          return newTurn(req)
            ? { tool: { name: "StructuredOutput", args: verdict } }
            : { text: "Verdict given." };
        if (req.text.includes(PLANNER)) {
          if (!newTurn(req)) return { text: "Done." };
          return {
            text: "Planning.",
            tool: {
              name: "Write",
              args: {
                file_path: join(repo, ".codemachine/artifacts/plan.md"),
                content: "- [ ] one\n- [ ] two\n",
              },
            },
          };
        }
        // the checker reads the directive file (Claude Code only overwrites files it has read), then writes it
        const directive = join(repo, ".codemachine/memory/directive.json");
        const step = turnToolResults(req);
        if (step === 0) {
          checks++;
          return { text: "Checking.", tool: { name: "Read", args: { file_path: directive } } };
        }
        if (step > 1) return { text: "Done." };
        const action =
          checks === 1
            ? { action: "loop", reason: "1/2 tasks complete" }
            : { action: "stop", reason: "all tasks complete" };
        return { tool: { name: "Write", args: { file_path: directive, content: JSON.stringify(action) } } };
      });
      const cs = codex.settings(server.url);
      const cl = claude.settings(server.url);
      writeFileSync(
        join(repo, "tasksgodzilla.config.json"),
        JSON.stringify({
          engines: {
            codex: { binary: cs.binary, config_overrides: cs.configOverrides, env: cs.env },
            "claude-code": { binary: cl.binary, base_url: cl.baseUrl, env: cl.env },
          },
        }),
      );
      const data = mkdtempSync(join(tmpdir(), "tgz-cm-data-"));
      const env = { ...process.env, TASKSGODZILLA_DATA_DIR: data };
      const printed = await exec(
        "node",
        [BIN, "import", "codemachine", repo, "--repo", repo, "--print-spec"],
        { env },
      );
      expect(JSON.parse(printed.stdout).steps.map((s: { id: string }) => s.id)).toEqual([
        "plan",
        "build",
        "check",
      ]);
      const imported = JSON.parse(
        (
          await exec("node", [BIN, "import", "codemachine", repo, "--repo", repo, "--qa", "full", "--json"], {
            env,
          })
        ).stdout,
      );
      expect(imported.status).toBe("planned");
      const run = await exec("node", [BIN, "run", String(imported.run_id), "--json"], {
        env,
        timeout: 180_000,
      }).catch((e) => e as { stdout: string });
      expect(JSON.parse(run.stdout).status).toBe("completed");

      const store = await openStore({ sqlitePath: join(data, "tasksgodzilla.db") });
      const r = await inspect(store, imported.run_id);
      await store.close();
      expect(readFileSync(join(repo, "build.log"), "utf8")).toBe("built\nbuilt\n");
      expect(r.trail.filter((t) => /^(step_started|loop_decision)/.test(t))).toEqual([
        "step_started:plan",
        "step_started:build",
        "step_started:check",
        "loop_decision:check",
        "step_started:build",
        "step_started:check",
        "loop_decision:check",
      ]);
      expect(r.of("loop_decision").map((e) => e.metadata.decision)).toEqual(["loop", "stop"]);
      // a 0.8 package: the directive file is directive.json, the one the checker writes
      expect(
        new Set(
          r.of("directive").map((e) => (e.metadata.directive as { file: string }).file.slice(repo.length)),
        ),
      ).toEqual(new Set(["/.codemachine/memory/directive.json"]));
      expect(r.of("loop_decision")[0]!.metadata).toMatchObject({
        reason: "directive:loop",
        target_step: "build",
        iterations: 1,
        max_iterations: 5,
      });
      expect(r.of("qa_verdict").map((e) => [e.metadata.verdict, e.metadata.engine_id])).toEqual([
        ["pass", "claude-code"],
        ["pass", "codex"],
        ["pass", "claude-code"],
        ["pass", "codex"],
        ["pass", "claude-code"],
      ]);
      const checkOutputs = r.steps.find((s) => s.stepName === "check")!.runtimeState.outputs as {
        aux: { codemachine: string };
      };
      expect(existsSync(checkOutputs.aux.codemachine)).toBe(true);
      // the plan prompt got the specification inlined from the workspace
      const planRequest = server.of("messages").find((q) => q.text.includes(PLANNER))!;
      expect(planRequest.text).toContain(
        readFileSync(join(repo, ".codemachine/inputs/specifications.md"), "utf8")
          .split("\n")[0]!
          .replaceAll('"', '\\"'),
      );
    });
  },
);
