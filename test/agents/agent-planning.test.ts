/** tgz plan and run on the real Codex CLI: planning, per-step checkpoints, and a loop that restores the worktree. */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import { diffOf } from "../../src/git/checkpoints.js";
import { ProtocolRunner } from "../../src/runner/protocol-runner.js";
import { planRun } from "../../src/services/plan-run.js";
import { openStore } from "../../src/store/open-store.js";
import { strictSchemaProblems } from "../planning/strict-schema.js";
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

const BIN = join(import.meta.dirname, "../../dist/cli/main.js");

/** Points the repository's config at Codex talking to the fake model server, with QA `checks`. */
function codexConfig(repo: string, url: string, checks: string[]) {
  const settings = codex.settings(url);
  writeFileSync(
    join(repo, "tasksgodzilla.config.json"),
    JSON.stringify({
      engine: "codex",
      models: { plan: codex.model, exec: codex.model },
      qa: { policy: "light", checks },
      engines: {
        codex: { binary: settings.binary, config_overrides: settings.configOverrides, env: settings.env },
      },
    }),
  );
}

const newTurn = (req: ModelRequest) =>
  (req.body.input as { type?: string }[]).at(-1)?.type !== "function_call_output";

describe.skipIf(!available(codex))("planning and running on Codex", () => {
  let server: FakeModelServer | undefined;
  afterEach(() => server?.close());

  it("plans, checkpoints every step on the protocol branch, and restores the worktree when a step loops", async () => {
    const attempts: Record<string, number> = {};
    const planRequests: ModelRequest[] = [];
    server = await FakeModelServer.start((req) => {
      if (req.text.includes("You are the planner")) {
        planRequests.push(req);
        return { text: JSON.stringify(PLAN) };
      }
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
    // the first version of a.txt is rejected: the step loops, from where it started
    codexConfig(repo, server.url, ["! grep -qx v1 a.txt 2>/dev/null"]);
    const env = { TASKSGODZILLA_DATA_DIR: data };
    const store = await openStore({ sqlitePath: join(data, "db.sqlite") });
    const deps = {
      store,
      registry: createDefaultRegistry(),
      configFor: (dir: string) => loadConfig(dir, env),
    };
    const planned = await planRun(deps, { task: "Write two files", repoDir: repo });
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
    expect(log.slice(0, 5)).toEqual([
      `${run.protocolName}: 02-write-b (qa pass)`,
      `${run.protocolName}: 01-write-a (qa pass)`,
      `${run.protocolName}: restore before 01-write-a`,
      `${run.protocolName}: 01-write-a (qa fail)`,
      `${run.protocolName}: plan (2 steps)`,
    ]);
    const loop = r.of("loop_decision")[0]!.metadata;
    expect(loop.worktree).toMatchObject({
      action: "restored",
      commit: String(r.steps[0]!.runtimeState.base_commit),
      restore_commit: expect.stringMatching(/^[0-9a-f]{40}$/),
    });
    // what Codex sent the model: the planning schema, for strict structured output
    const format = (planRequests[0]!.body.text as { format: Record<string, unknown> }).format;
    expect(format).toMatchObject({ type: "json_schema", strict: true });
    expect(strictSchemaProblems(format.schema)).toEqual([]);
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

  it("tgz plan --run plans and executes in one go, and tgz diff shows what each step changed", async () => {
    server = await FakeModelServer.start((req) => {
      if (req.text.includes("You are the planner")) return { text: JSON.stringify(PLAN) };
      const file =
        req.text.includes("Create b.txt") && !req.text.includes("Create a.txt") ? "b.txt" : "a.txt";
      if (!newTurn(req)) return { text: `Wrote ${file}.` };
      return {
        text: "Writing.",
        tool: { name: "exec_command", args: { cmd: `printf '${file}\\n' > ${file}` } },
      };
    });
    const repo = gitRepo();
    codexConfig(repo, server.url, []);
    const env = { ...process.env, TASKSGODZILLA_DATA_DIR: mkdtempSync(join(tmpdir(), "tgz-data-")) };
    const run = (...args: string[]) => promisify(execFile)("node", [BIN, ...args], { env, timeout: 300_000 });
    const planned = JSON.parse(
      (await run("plan", "Write two files", "--repo", repo, "--run", "--json")).stdout,
    );
    expect(planned).toMatchObject({
      status: "completed",
      steps: [{ status: "completed" }, { status: "completed" }],
    });
    const b = (await run("diff", String(planned.run_id), "02-write-b")).stdout;
    expect(b).toMatch(/^diff --git a\/b.txt b\/b.txt\n[\s\S]*\+b.txt\n$/);
    const whole = (await run("diff", String(planned.run_id))).stdout;
    expect(whole).toContain("+++ b/a.txt");
    expect(whole).toContain("+++ b/b.txt");
  });
});
