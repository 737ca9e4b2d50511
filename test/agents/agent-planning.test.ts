/** tgz plan and run on the real Codex CLI: planning, per-step checkpoints, and a loop that restores the worktree. */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import { diffOf } from "../../src/git/checkpoints.js";
import { planProtocol } from "../../src/planning/plan-protocol.js";
import { ProtocolRunner } from "../../src/runner/protocol-runner.js";
import { openStore } from "../../src/store/open-store.js";
import { gitRepo, inspect } from "../scenario/harness.js";
import { AGENT_CASES, available } from "./agent-cases.js";
import { FakeModelServer, type ModelRequest } from "./fake-model-server.js";

const codex = AGENT_CASES.find((c) => c.engineId === "codex")!;

const PLAN = {
  title: "Two files",
  summary: "Write a.txt, then b.txt.",
  context: "Scratch repository.",
  steps: [
    { slug: "write-a", title: "Write a.txt", kind: "work", prompt: "Create a.txt." },
    { slug: "write-b", title: "Write b.txt", kind: "work", prompt: "Create b.txt." },
  ],
};

describe.skipIf(!available(codex))("planning and running on Codex", () => {
  let server: FakeModelServer | undefined;
  afterAll(() => server?.close());

  it("plans, checkpoints every step on the protocol branch, and restores the worktree when a step loops", async () => {
    const attempts: Record<string, number> = {};
    const newTurn = (req: ModelRequest) =>
      (req.body.input as { type?: string }[]).at(-1)?.type !== "function_call_output";
    server = await FakeModelServer.start((req) => {
      if (req.text.includes("You are the planner")) return { text: JSON.stringify(PLAN) };
      const file =
        req.text.includes("Create b.txt") && !req.text.includes("Create a.txt") ? "b.txt" : "a.txt";
      if (!newTurn(req)) return { text: `Wrote ${file}.` };
      attempts[file] = (attempts[file] ?? 0) + 1;
      return {
        text: "Writing.",
        tool: { name: "exec_command", args: { cmd: `printf 'v${attempts[file]}\\n' > ${file}` } },
      };
    });
    const repo = gitRepo();
    const data = mkdtempSync(join(tmpdir(), "tgz-data-"));
    const settings = codex.settings(server.url);
    writeFileSync(
      join(repo, "tasksgodzilla.config.json"),
      JSON.stringify({
        engine: "codex",
        models: { plan: codex.model, exec: codex.model },
        // the first version of a.txt is rejected: the step loops, from its own checkpoint
        qa: { policy: "light", checks: ["! grep -qx v1 a.txt 2>/dev/null"] },
        engines: {
          codex: { binary: settings.binary, config_overrides: settings.configOverrides, env: settings.env },
        },
      }),
    );
    const env = { TASKSGODZILLA_DATA_DIR: data };
    const store = await openStore({ sqlitePath: join(data, "db.sqlite") });
    const deps = {
      store,
      registry: createDefaultRegistry(),
      configFor: (dir: string) => loadConfig(dir, env),
    };
    const planned = await planProtocol(deps, { task: "Write two files", repoDir: repo, env });
    expect(planned.status).toBe("planned");
    const run = await new ProtocolRunner(deps).run(planned.id);
    const r = await inspect(store, run.id);
    await store.close();

    expect(run.status).toBe("completed");
    const wt = run.worktreePath!;
    expect(readFileSync(join(wt, "a.txt"), "utf8")).toBe("v2\n");
    expect(readFileSync(join(wt, "b.txt"), "utf8")).toBe("v1\n");
    expect(existsSync(join(repo, "a.txt"))).toBe(false);
    const log = execFileSync("git", ["log", "--format=%s"], { cwd: wt, encoding: "utf8" }).trim().split("\n");
    expect(log.slice(0, 4)).toEqual([
      `${run.protocolName}: 02-write-b (qa pass)`,
      `${run.protocolName}: 01-write-a (qa pass)`,
      `${run.protocolName}: 01-write-a (qa fail)`,
      `${run.protocolName}: plan (2 steps)`,
    ]);
    const loop = r.of("loop_decision")[0]!.metadata;
    expect(loop.worktree).toMatchObject({
      action: "restored",
      commit: expect.stringMatching(/^[0-9a-f]{40}$/),
    });
    expect(r.of("checkpoint_created")).toHaveLength(4); // the plan, then three step verdicts
    const b = r.steps.find((s) => s.stepName === "02-write-b")!;
    const diff = await diffOf(wt, String(b.runtimeState.base_commit), String(b.runtimeState.checkpoint));
    expect(diff.files).toEqual(["b.txt"]);
    expect(r.of("planning_completed")[0]!.metadata).toMatchObject({
      engine_id: "codex",
      model: "gpt-5.5",
      usage: { estimated: false },
    });
  });
});
