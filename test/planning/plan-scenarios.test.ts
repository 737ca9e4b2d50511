/** `tgz plan` through the service layer with a replayed planner, on temp git repositories. */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { loadConfig } from "../../src/config/load-config.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import { BaseBranchMissingError, NotAGitRepositoryError } from "../../src/git/git-command.js";
import { PlanOutput, planningJsonSchema } from "../../src/planning/plan-schema.js";
import type { ClaimedJob, JobQueue } from "../../src/queue/job-queue.js";
import { StoreQueue } from "../../src/queue/store-queue.js";
import { askForJson } from "../../src/runner/ask-for-json.js";
import { QA_VERDICT_JSON_SCHEMA } from "../../src/runner/qa-verdict.js";
import { planRun } from "../../src/services/plan-run.js";
import { isInside } from "../../src/shared/paths.js";
import { openStore } from "../../src/store/open-store.js";
import { RunBusyError } from "../../src/store/store-errors.js";
import { engineGate } from "../../src/worker/engine-gate.js";
import { jobHandlers } from "../../src/worker/job-handlers.js";
import { JobWorker } from "../../src/worker/job-worker.js";
import { RunReconciler } from "../../src/worker/run-reconciler.js";
import { gitRepo, inspect } from "../scenario/harness.js";
import { rawDb } from "../store/raw-db.js";
import { strictSchemaProblems } from "./strict-schema.js";

const PLAN = {
  title: "Greeter",
  summary: "Scan, then write the greeter.",
  context: "A scratch repository with a README.",
  steps: [
    { slug: "Repo Scan", title: "Scan the repository", kind: "setup", prompt: "List the files." },
    {
      slug: "write greeter",
      title: "Write the greeter",
      kind: "work",
      prompt: "Create greet.sh.",
      engine: "codex",
      model: "gpt-5.5",
    },
    { slug: "test it", title: "Test the greeter", kind: "work", prompt: "Run it.", qa: "full" },
    // the planner's kind decides, whatever the slug says
    { slug: "setup-ci", title: "Set up CI", kind: "work", prompt: "Add a CI job.", engine: null, qa: null },
  ],
};

async function setup(extraEnv: Record<string, string> = {}) {
  const data = mkdtempSync(join(tmpdir(), "tgz-plan-data-"));
  const env = { TASKSGODZILLA_DATA_DIR: data, ...extraEnv };
  const store = await openStore({ sqlitePath: join(data, "db.sqlite") });
  const deps = { store, registry: createDefaultRegistry(), configFor: (dir: string) => loadConfig(dir, env) };
  const plan = (repoDir: string, final: string, extra: Record<string, unknown> = {}) =>
    planRun(deps, {
      task: "Add a greeter script that says hello",
      repoDir,
      engine: "replay",
      inputs: { final },
      ...extra,
    });
  return { store, plan, data, deps };
}

const git = (cwd: string, ...args: string[]) => execFileSync("git", args, { cwd, encoding: "utf8" }).trim();

/** A planner that answers with the n-th file of `answers` on its n-th call (the shell engine, a counter file). */
function scriptedPlanner(answers: string[]) {
  const dir = mkdtempSync(join(tmpdir(), "tgz-planner-"));
  for (const [i, a] of answers.entries()) writeFileSync(join(dir, `answer-${i + 1}`), a);
  const command = `n=$(( $(cat '${dir}/count' 2>/dev/null || echo 0) + 1 )); echo $n > '${dir}/count'; cat '${dir}/answer-'$n`;
  return { engine: "shell", inputs: { command } };
}

afterEach(() => {
  vi.unstubAllEnvs();
});

describe("planning", () => {
  it("plans into branch and worktree NNNN-<name> with artifacts, a frozen spec and step rows", async () => {
    const { store, plan, data } = await setup();
    const repo = gitRepo();
    writeFileSync(join(repo, "README.md"), "dirty main checkout\n");
    const run = await plan(repo, `Here is the plan:\n\`\`\`json\n${JSON.stringify(PLAN)}\n\`\`\``);
    expect(run).toMatchObject({ status: "planned", protocolName: "0001-add-a-greeter-script-that" });
    const wt = run.worktreePath!;
    expect(execFileSync("git", ["branch", "--show-current"], { cwd: wt, encoding: "utf8" }).trim()).toBe(
      "0001-add-a-greeter-script-that",
    );
    const folder = join(wt, ".protocols", run.protocolName);
    for (const f of [
      "plan.md",
      "context.md",
      "log.md",
      "01-repo-scan.md",
      "02-write-greeter.md",
      "03-test-it.md",
      "04-setup-ci.md",
      "protocol-spec.json",
    ]) {
      expect(existsSync(join(folder, f)), f).toBe(true);
    }
    expect(readFileSync(join(folder, "plan.md"), "utf8")).toContain("Add a greeter script that says hello");
    const spec = run.templateConfig.protocol_spec as { steps: Record<string, unknown>[] };
    expect(
      spec.steps.map((s) => [
        s.id,
        s.prompt_ref,
        (s.outputs as { protocol: string }).protocol,
        (s.qa as { policy: string }).policy,
      ]),
    ).toEqual([
      ["01-repo-scan", "01-repo-scan.md", "outputs/01-repo-scan.md", "skip"],
      ["02-write-greeter", "02-write-greeter.md", "outputs/02-write-greeter.md", "light"],
      ["03-test-it", "03-test-it.md", "outputs/03-test-it.md", "full"],
      ["04-setup-ci", "04-setup-ci.md", "outputs/04-setup-ci.md", "light"],
    ]);
    expect(spec.steps[3]).toMatchObject({ id: "04-setup-ci", step_type: "work", qa: { policy: "light" } });
    expect(isInside(repo, wt)).toBe(false);
    expect(isInside(join(data, "worktrees"), wt)).toBe(true);
    expect(readFileSync(join(folder, ".gitignore"), "utf8")).toBe("logs/\n");
    expect(spec.steps[1]).toMatchObject({
      engine_id: "codex",
      model: "gpt-5.5",
      timeout_seconds: 1200,
      policies: [{ behavior: "loop", step_back: 0 }],
    });
    expect((await store.listStepRuns(run.id)).map((s) => [s.stepName, s.stepType])).toEqual([
      ["01-repo-scan", "setup"],
      ["02-write-greeter", "work"],
      ["03-test-it", "work"],
      ["04-setup-ci", "work"],
    ]);
    const { of } = await inspect(store, run.id);
    expect(of("planning_completed")[0]!.metadata).toMatchObject({
      engine_id: "replay",
      prompt_versions: { plan: expect.stringMatching(/^protocol-new\.prompt\.md@[0-9a-f]{12}$/) },
      usage: { calls: 1 },
    });
    expect(execFileSync("git", ["log", "-1", "--format=%s"], { cwd: wt, encoding: "utf8" }).trim()).toBe(
      `${run.protocolName}: plan (4 steps)`,
    );
    expect(readFileSync(join(repo, "README.md"), "utf8")).toBe("dirty main checkout\n");
    expect(execFileSync("git", ["branch", "--show-current"], { cwd: repo, encoding: "utf8" }).trim()).toBe(
      "main",
    );

    const second = await plan(repo, JSON.stringify(PLAN), { name: "Second One!" });
    expect(second.protocolName).toBe("0002-second-one");
    await store.close();
  });

  it("blocks the run with every schema error and writes no plan when the answer is not a valid plan", async () => {
    const { store, plan } = await setup();
    const run = await plan(gitRepo(), JSON.stringify({ title: "x", context: "", steps: [] }));
    expect(run.status).toBe("blocked");
    const { of } = await inspect(store, run.id);
    const failed = of("planning_failed")[0]!;
    expect(failed.metadata).toMatchObject({
      reason: "invalid_plan",
      usage: { calls: 2 },
      errors: [
        { pointer: "/summary", message: expect.stringMatching(/expected string/) },
        { pointer: "/steps", message: "needs at least 1 item(s)" },
      ],
    });
    expect(failed.message).toMatch(/not a valid plan, even after a repair retry: \/summary: .*; \/steps: /);
    expect(of("protocol_blocked")[0]!.message).toContain("/steps:");
    // what remains: the branch and worktree with the two planning transcripts, no plan and no spec
    expect(existsSync(join(run.protocolRoot!, "plan.md"))).toBe(false);
    expect(readdirSync(run.protocolRoot!)).toEqual(["logs"]);
    expect(readdirSync(join(run.protocolRoot!, "logs"))).toEqual(["plan.1.jsonl", "plan.2.jsonl"]);
    expect(run.templateConfig.protocol_spec).toBeUndefined();
    expect(await store.listStepRuns(run.id)).toEqual([]);
    await store.close();
  });

  it("refuses a plan that names an engine that is not registered, with the pointer", async () => {
    const { store, plan } = await setup();
    const bad = { ...PLAN, steps: [{ ...PLAN.steps[1], engine: "gpt-4o" }] };
    const run = await plan(gitRepo(), JSON.stringify(bad));
    expect(run.status).toBe("blocked");
    const failed = (await inspect(store, run.id)).of("planning_failed")[0]!;
    expect(failed.metadata.errors).toEqual([
      {
        pointer: "/steps/0/engine",
        message: expect.stringMatching(/^unknown engine "gpt-4o" \(known: .*codex/),
      },
    ]);
    await store.close();
  });

  it("asks once more with the task, the errors and the schema, and takes the repaired plan", async () => {
    const { store, plan } = await setup();
    const planner = scriptedPlanner([JSON.stringify({ ...PLAN, title: "" }), JSON.stringify(PLAN)]);
    const run = await plan(gitRepo(), "", planner);
    expect(run.status).toBe("planned");
    const { of } = await inspect(store, run.id);
    expect(of("planning_completed")[0]!.metadata).toMatchObject({
      engine_id: "shell",
      usage: { calls: 2 },
      repaired_errors: [{ pointer: "/title", message: "must not be empty" }],
    });
    await store.close();
  });

  it("a repair prompt carries the original prompt, every error with its pointer, and the schema", async () => {
    const planner = scriptedPlanner(['Sure! Here is my plan: {"title": 3}', JSON.stringify(PLAN)]);
    const engine = createDefaultRegistry().get("shell");
    const logs = mkdtempSync(join(tmpdir(), "tgz-ask-"));
    const answer = await askForJson({
      engine,
      request: {
        role: "plan",
        prompt: "## Task\nAdd a greeter script",
        cwd: logs,
        inputs: planner.inputs,
        env: {},
        outputSchema: planningJsonSchema(),
        timeoutMs: 10_000,
        maxOutputBytes: 1_000_000,
      },
      schema: PlanOutput,
      answerName: "plan",
      signal: new AbortController().signal,
      transcriptPath: (n) => join(logs, `${n}.jsonl`),
      retries: 0,
    });
    expect(answer.ok).toBe(true);
    const repair = answer.attempts[1]!.prompt;
    expect(repair.startsWith("## Task\nAdd a greeter script\n")).toBe(true);
    expect(repair).toContain("- /title: expected string, got number");
    expect(repair).toContain("- /summary: expected string, but it is missing");
    expect(repair).toContain(JSON.stringify(planningJsonSchema()));
    expect(repair).toContain('Sure! Here is my plan: {"title": 3}');
    expect(answer.attempts[0]!.invalid?.map((e) => e.pointer)).toEqual([
      "/title",
      "/summary",
      "/context",
      "/steps",
    ]);
  });

  it("retries a rate-limited planning engine after the hinted delay, a bounded number of times", async () => {
    const { store, plan } = await setup({ TASKSGODZILLA_ENGINE_RETRIES: "2" });
    const recording = join(mkdtempSync(join(tmpdir(), "tgz-rec-")), "limited.jsonl");
    writeFileSync(
      recording,
      `${JSON.stringify({ type: "error", error: { kind: "rate_limit", message: "slow down", retryable: true, retryAfterMs: 20 } })}\n`,
    );
    const run = await plan(gitRepo(), "", { inputs: { recording } });
    const { of } = await inspect(store, run.id);
    expect(run.status).toBe("blocked");
    expect(of("engine_retry").map((e) => e.metadata)).toEqual([
      expect.objectContaining({
        phase: "plan",
        attempt: 1,
        delay_ms: 20,
        error: expect.objectContaining({ kind: "rate_limit" }),
      }),
      expect.objectContaining({ phase: "plan", attempt: 2, delay_ms: 20 }),
    ]);
    expect(of("planning_failed")[0]!.metadata).toMatchObject({
      reason: "planning_engine_failed",
      usage: { calls: 3 },
    });
    await store.close();
  });

  it("is stopped by the project's token budget before the call, like a step, and charges its usage to the run", async () => {
    const { store, plan } = await setup({ TASKSGODZILLA_MAX_TOKENS_PER_PROJECT: "1000" });
    const repo = gitRepo();
    // the first plan fits and is charged (phase plan), as a step's call is
    const usage = { input: 900, output: 50 };
    const recording = join(mkdtempSync(join(tmpdir(), "tgz-rec-")), "plan.jsonl");
    writeFileSync(
      recording,
      `${JSON.stringify({ type: "usage", usage })}\n${JSON.stringify({ type: "final", text: JSON.stringify(PLAN) })}\n`,
    );
    const first = await plan(repo, "", { inputs: { recording } });
    expect(first.status).toBe("planned");
    expect(await store.sumUsage({ protocolRunId: first.id, phase: "plan" })).toMatchObject({
      total: 950,
      calls: 1,
      estimatedCalls: 0,
    });
    // the project has 50 tokens left: the next planner's prompt alone is over, so it is never called
    const second = await plan(repo, JSON.stringify(PLAN));
    expect(second.status).toBe("blocked");
    const { of } = await inspect(store, second.id);
    expect(of("budget_exceeded")[0]!.metadata).toMatchObject({
      scope: "project",
      limit: 1000,
      spent: 950,
      phase: "plan",
      when: "before_call",
      reason: "budget_exceeded",
    });
    expect(of("protocol_blocked")[0]!.metadata).toMatchObject({ reason: "budget_exceeded" });
    expect(of("planned")).toHaveLength(0);
    expect((await store.sumUsage({ protocolRunId: second.id })).calls).toBe(0);
    // no transcript: the engine was never called
    expect(existsSync(join(second.worktreePath!, ".protocols", second.protocolName, "logs"))).toBe(false);
    await store.close();
  });

  it("blocks a plan whose call overran a strict budget, writing no plan", async () => {
    const { store, plan } = await setup({ TASKSGODZILLA_MAX_TOKENS_PER_PROTOCOL: "5000" });
    const recording = join(mkdtempSync(join(tmpdir(), "tgz-rec-")), "plan.jsonl");
    writeFileSync(
      recording,
      `${JSON.stringify({ type: "usage", usage: { input: 6000, output: 10 } })}\n${JSON.stringify({ type: "final", text: JSON.stringify(PLAN) })}\n`,
    );
    const run = await plan(gitRepo(), "", { inputs: { recording } });
    expect(run.status).toBe("blocked");
    const { of } = await inspect(store, run.id);
    expect(of("budget_exceeded")[0]!.metadata).toMatchObject({
      scope: "protocol",
      when: "after_call",
      spent: 6010,
    });
    expect(of("planned")).toHaveLength(0);
    expect(existsSync(join(run.worktreePath!, ".protocols", run.protocolName, "plan.md"))).toBe(false);
    await store.close();
  });

  it("an interrupted planning ends blocked with its reason, nothing written, and can be planned again", async () => {
    const { store, plan, deps } = await setup();
    const recording = join(mkdtempSync(join(tmpdir(), "tgz-rec-")), "slow.jsonl");
    writeFileSync(
      recording,
      ["thinking", "still thinking", "almost"]
        .map((text) => JSON.stringify({ type: "message", text }))
        .concat(JSON.stringify({ type: "final", text: JSON.stringify(PLAN) }))
        .join("\n"),
    );
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("interrupted")), 300);
    const repo = gitRepo();
    const run = await plan(repo, "", { inputs: { recording, delay_ms: 400 }, signal: controller.signal });
    expect(run.status).toBe("blocked");
    const { of } = await inspect(store, run.id);
    expect(of("planning_failed")[0]!.metadata).toMatchObject({ reason: "interrupted" });
    expect(existsSync(join(run.protocolRoot!, "plan.md"))).toBe(false);
    expect(await store.listStepRuns(run.id)).toEqual([]);
    // planned again in place: the old worktree and branch make way for a fresh one
    const again = await planRun(deps, {
      runId: run.id,
      engine: "replay",
      inputs: { final: JSON.stringify(PLAN) },
    });
    expect(again).toMatchObject({ id: run.id, status: "planned", worktreePath: run.worktreePath });
    expect(git(repo, "branch", "--format=%(refname:short)", "--list", "0*")).toBe(run.protocolName);
    await store.close();
  });

  it("keeps steps past 99 in their order", async () => {
    const { store, plan } = await setup();
    const steps = Array.from({ length: 101 }, (_, i) => ({
      slug: `s${i + 1}`,
      title: `Step ${i + 1}`,
      kind: "work",
      prompt: "x",
    }));
    const run = await plan(gitRepo(), JSON.stringify({ ...PLAN, steps }));
    const ids = (run.templateConfig.protocol_spec as { steps: { id: string }[] }).steps.map((s) => s.id);
    expect(ids).toHaveLength(101);
    expect(ids.slice(97)).toEqual(["98-s98", "99-s99", "100-s100", "101-s101"]);
    await store.close();
  });

  it("plans into a run created with only a description, once, however often the job is delivered", async () => {
    const { store, deps, data } = await setup();
    // a worker reads the data dir from its environment
    vi.stubEnv("TASKSGODZILLA_DATA_DIR", data);
    const repo = gitRepo();
    const project = await store.createProject({
      name: "demo",
      gitUrl: repo,
      localPath: repo,
      baseBranch: "main",
    });
    const pending = await store.createProtocolRun({
      projectId: project.id,
      protocolName: "Add greeter",
      worktreePath: repo,
      description: "Add a greeter script that says hello",
    });
    const recording = join(mkdtempSync(join(tmpdir(), "tgz-rec-")), "plan.jsonl");
    writeFileSync(
      recording,
      [
        JSON.stringify({ type: "message", text: "reading" }),
        JSON.stringify({ type: "final", text: JSON.stringify(PLAN) }),
      ].join("\n"),
    );
    const job = {
      id: "j1",
      kind: "plan",
      payload: { protocol_run_id: pending.id, engine: "replay", inputs: { recording, delay_ms: 300 } },
    } as unknown as ClaimedJob;
    const handlers = jobHandlers(deps);
    // the first delivery loses its lease mid-planning
    const lost = new AbortController();
    setTimeout(() => lost.abort(new Error("lease lost")), 150);
    await handlers.plan(job, lost.signal, () => undefined);
    const interrupted = await store.getProtocolRun(pending.id);
    expect(interrupted.status).toBe("blocked");
    expect(interrupted.templateConfig.branch).toBe("0001-add-greeter");
    expect(existsSync(interrupted.worktreePath!)).toBe(true);
    // redelivered: the same run, its leftover worktree and branch replaced by a fresh one
    await handlers.plan(job, new AbortController().signal, () => undefined);
    const run = await store.getProtocolRun(pending.id);
    expect(run).toMatchObject({ id: pending.id, status: "planned", protocolName: "Add greeter" });
    expect(run.worktreePath).toBe(interrupted.worktreePath);
    expect(isInside(repo, run.worktreePath!)).toBe(false);
    expect(git(run.worktreePath!, "log", "--format=%s")).toBe("0001-add-greeter: plan (4 steps)\ninit");
    // and once more: a planned run is left as it is
    await handlers.plan(job, new AbortController().signal, () => undefined);
    expect(await store.getProtocolRun(pending.id)).toEqual(run);
    expect(git(repo, "worktree", "list", "--porcelain").match(/^worktree /gm)).toHaveLength(2);
    expect(git(repo, "branch", "--format=%(refname:short)", "--list", "0*")).toBe("0001-add-greeter");
    expect(await store.listStepRuns(pending.id)).toHaveLength(4);
    expect((await inspect(store, pending.id)).of("planning_started")).toHaveLength(2);
    await store.close();
  });
  it("blocks on an unknown planning engine, and refuses a missing base branch or a folder outside git", async () => {
    const { store, plan } = await setup();
    const run = await plan(gitRepo(), "{}", { engine: "nope" });
    expect(run.status).toBe("blocked");
    expect((await inspect(store, run.id)).of("planning_failed")[0]!.message).toMatch(
      /unknown engine "nope" \(known: .*replay/,
    );
    await expect(plan(gitRepo(), "{}", { base: "develop" })).rejects.toThrow(BaseBranchMissingError);
    await expect(plan(mkdtempSync(join(tmpdir(), "plain-")), "{}")).rejects.toThrow(NotAGitRepositoryError);
    await store.close();
  });
});

/** A replayed planner that thinks for `messages` × `delayMs` before it answers with `plan`. */
function slowPlanner(messages: number, delayMs: number, plan: unknown = PLAN) {
  const recording = join(mkdtempSync(join(tmpdir(), "tgz-rec-")), "slow.jsonl");
  writeFileSync(
    recording,
    Array.from({ length: messages }, (_, i) => JSON.stringify({ type: "message", text: `thinking ${i}` }))
      .concat(JSON.stringify({ type: "final", text: JSON.stringify(plan) }))
      .join("\n"),
  );
  return { recording, delay_ms: delayMs };
}

const until = async (check: () => Promise<boolean>, what: string) => {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
};

describe("one planner per run", () => {
  it("gives plans started at once in one repository distinct numbers", async () => {
    const { store, plan } = await setup();
    const repo = gitRepo();
    const runs = await Promise.all(
      ["first", "second", "third"].map((name) => plan(repo, JSON.stringify(PLAN), { name })),
    );
    expect(runs.map((r) => r.protocolName.slice(0, 4)).sort()).toEqual(["0001", "0002", "0003"]);
    expect(runs.map((r) => r.status)).toEqual(["planned", "planned", "planned"]);
    expect(git(repo, "branch", "--format=%(refname:short)", "--list", "0*").split("\n")).toHaveLength(3);
    await store.close();
  });

  it("a reconciler and a worker beside a live planning leave it alone: no re-plan, no second worktree", async () => {
    const { store, deps } = await setup();
    const queue = new StoreQueue(store) as JobQueue;
    const worker = new JobWorker({ queue, handlers: jobHandlers(deps), workerId: "w-plan", pollMs: 50 });
    const reconciler = new RunReconciler({ store, queue, settleMs: 0, intervalMs: 100 });
    worker.start();
    const repo = gitRepo();
    const planning = planRun(deps, {
      task: "Add a greeter script that says hello",
      repoDir: repo,
      engine: "replay",
      inputs: slowPlanner(6, 250),
    });
    await until(
      async () => (await store.listProtocolRuns()).some((r) => r.status === "planning"),
      "planning",
    );
    reconciler.start();
    const run = await planning;
    await reconciler.stop();
    await worker.stop();
    expect(run.status).toBe("planned");
    const { of } = await inspect(store, run.id);
    expect(of("run_requeued")).toEqual([]);
    expect(of("planning_started")).toHaveLength(1);
    expect(of("planning_completed")[0]!.metadata).toMatchObject({ engine_id: "replay" });
    expect(git(repo, "worktree", "list", "--porcelain").match(/^worktree /gm)).toHaveLength(2);
    expect(git(run.worktreePath!, "log", "--format=%s")).toBe(`${run.protocolName}: plan (4 steps)\ninit`);
    await store.close();
  });

  it("refuses a second planner while the first lives, and plans again with what the run was first planned with", async () => {
    const { store, deps } = await setup();
    const repo = gitRepo();
    const controller = new AbortController();
    const first = planRun(deps, {
      task: "Add a greeter script that says hello",
      repoDir: repo,
      engine: "replay",
      model: "planner-model",
      inputs: slowPlanner(4, 250),
      signal: controller.signal,
    });
    await until(
      async () => (await store.listProtocolRuns()).some((r) => r.status === "planning"),
      "planning",
    );
    const [live] = await store.listProtocolRuns();
    const job = { id: "j1", kind: "plan", payload: { protocol_run_id: live!.id } } as unknown as ClaimedJob;
    await expect(jobHandlers(deps).plan(job, new AbortController().signal, () => undefined)).rejects.toThrow(
      RunBusyError,
    );
    expect(existsSync(live!.worktreePath!)).toBe(true);
    controller.abort(new Error("interrupted"));
    const interrupted = await first;
    expect(interrupted.status).toBe("blocked");
    expect(interrupted.templateConfig.planning).toEqual({
      engine: "replay",
      model: "planner-model",
      inputs: { recording: expect.any(String), delay_ms: 250 },
    });
    // the job names only the run: engine, model and inputs are the first attempt's, not the project's defaults
    await jobHandlers(deps).plan(job, new AbortController().signal, () => undefined);
    const run = await store.getProtocolRun(live!.id);
    expect(run.status).toBe("planned");
    expect((await inspect(store, run.id)).of("planning_started").map((e) => e.metadata)).toEqual([
      expect.objectContaining({ engine_id: "replay", model: "planner-model" }),
      expect.objectContaining({ engine_id: "replay", model: "planner-model" }),
    ]);
    await store.close();
  });
});

describe("the planning schema", () => {
  it("obeys OpenAI strict structured output, like the QA verdict schema", () => {
    expect(strictSchemaProblems(planningJsonSchema())).toEqual([]);
    expect(strictSchemaProblems(QA_VERDICT_JSON_SCHEMA)).toEqual([]);
    // the checker itself catches what strict mode rejects
    expect(strictSchemaProblems(z.toJSONSchema(PlanOutput, { io: "input" }))).toEqual(
      expect.arrayContaining([
        '/: keyword "$schema"',
        '/properties/title: keyword "minLength"',
        "/: additionalProperties must be false",
        '/properties/steps/items: "engine" is not required',
      ]),
    );
  });

  it("accepts null for the optional per-step choices, and the project defaults apply", () => {
    const parsed = PlanOutput.parse({
      ...PLAN,
      steps: [{ slug: "a", title: "A", kind: "work", prompt: "p", engine: null, model: null, qa: null }],
    });
    expect(parsed.steps[0]).toEqual({ slug: "a", title: "A", kind: "work", prompt: "p" });
  });
});

describe("planning under an engine cap", () => {
  it("waits for a slot of the planning engine's cap like a step's call does", async () => {
    const { store, deps } = await setup();
    const slots = store.slots;
    const gate = engineGate(slots, { replay: 1 }, { holder: "planner", onLost: () => {} });
    const held = await engineGate(
      slots,
      { replay: 1 },
      { holder: "someone", onLost: () => {} },
    )("replay", new AbortController().signal);
    const repo = gitRepo();
    let done = false;
    const planning = planRun(
      { ...deps, engineGate: gate },
      { task: "Add a greeter", repoDir: repo, engine: "replay", inputs: { final: JSON.stringify(PLAN) } },
    ).then((r) => {
      done = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 700));
    expect(done).toBe(false);
    await held();
    expect((await planning).status).toBe("planned");
    expect(await rawDb(store).selectFrom("concurrency_slots").selectAll().execute()).toEqual([]);
    await store.close();
  });
});
