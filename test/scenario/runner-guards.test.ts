/**
 * Whole protocols that probe the runner's guards: budgets around the QA agent, writes an agent
 * tried to redirect, ids that look like paths, one runner per run, crashed runners, one-step and
 * QA-only runs, trigger-only steps, change detection per step, and engines checked up front.
 */
import { spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { identify } from "../../src/engines/process/process-identity.js";
import { createRunFromSpec } from "../../src/services/create-run.js";
import { RunBusyError } from "../../src/store/store-errors.js";
import { waitGone } from "../support/processes.js";
import { inspect, runnerFor, runSpec, type Scenario, scenario, shellStep, writeFiles } from "./harness.js";

let s: Scenario;
beforeEach(async () => {
  s = await scenario();
});
afterEach(async () => {
  await s.close();
});

const verdict = (v: "pass" | "fail", usage = { input: 10, cachedInput: 0, output: 5, reasoning: 0 }) =>
  [
    { type: "usage", usage },
    { type: "final", text: JSON.stringify({ verdict: v, summary: `QA says ${v}`, findings: [] }) },
  ]
    .map((e) => JSON.stringify(e))
    .join("\n");

const fullQa = (recording: string) => ({
  policy: "full",
  engine_id: "replay",
  inputs: { recording },
});

async function create(spec: unknown, files: Record<string, string> = {}) {
  writeFiles(s.specDir, { ...files, "protocol.json": JSON.stringify(spec) });
  return (await createRunFromSpec(s.store, { repoDir: s.repo, specPath: join(s.specDir, "protocol.json") }))
    .run;
}

describe("budgets around the QA agent", () => {
  it("records the verdict of a QA call that overran, blocks the run, and keeps refusing on resume", async () => {
    const big = { input: 4000, cachedInput: 0, output: 1000, reasoning: 0 };
    const spec = {
      budget: { max_tokens: 3000, mode: "strict" },
      steps: [
        shellStep("a", "echo a", { qa: fullQa("{{protocol_dir}}/qa.jsonl") }),
        shellStep("b", "echo b > b.txt"),
      ],
    };
    const r = await runSpec(s, spec, { "qa.jsonl": verdict("pass", big) });
    expect(r.run.status).toBe("blocked");
    expect(r.status).toEqual({ a: "completed", b: "pending" });
    expect(r.of("qa_verdict")[0]!.metadata).toMatchObject({ verdict: "pass" });
    expect(r.of("budget_exceeded")[0]!.metadata).toMatchObject({
      scope: "protocol",
      limit: 3000,
      spent: 5000,
      phase: "qa",
      when: "after_call",
    });
    const resumed = await runnerFor(s).run(r.run.id, { resume: true });
    expect(resumed.status).toBe("blocked");
    expect(existsSync(join(s.repo, "b.txt"))).toBe(false);
    const after = await inspect(s.store, r.run.id);
    expect(after.of("budget_exceeded").at(-1)!.metadata).toMatchObject({
      when: "before_call",
      phase: "exec",
    });
  });

  it("refuses the QA agent before the call when its prompt alone is over budget", async () => {
    const r = await runSpec(
      s,
      {
        budget: { max_tokens: 20, mode: "strict" },
        steps: [shellStep("a", "echo a", { qa: fullQa("{{protocol_dir}}/qa.jsonl") })],
      },
      { "qa.jsonl": verdict("pass") },
    );
    expect(r.run.status).toBe("blocked");
    expect(r.status).toEqual({ a: "failed" });
    expect(r.of("budget_exceeded")[0]!.metadata).toMatchObject({ phase: "qa", when: "before_call" });
    expect((await s.store.sumUsage({ protocolRunId: r.run.id })).calls).toBe(1);
    expect(readdirSync(join(r.run.protocolRoot!, "logs")).filter((f) => f.includes(".qa."))).toEqual([]);
  });
});

describe("writes an agent could redirect", () => {
  it("refuses to follow a symlink the step put where its output goes", async () => {
    const outside = mkdtempSync(join(tmpdir(), "tgz-victim-"));
    const victim = join(outside, "victim.txt");
    writeFileSync(victim, "precious\n");
    const r = await runSpec(s, {
      steps: [
        shellStep("a", [
          'mkdir -p "$TASKSGODZILLA_PROTOCOL_DIR/outputs"',
          `ln -sf ${victim} "$TASKSGODZILLA_PROTOCOL_DIR/outputs/a.md"`,
          "echo overwritten",
        ]),
      ],
    });
    expect(readFileSync(victim, "utf8")).toBe("precious\n");
    expect(r.run.status).toBe("blocked");
    expect(r.status).toEqual({ a: "failed" });
    expect(r.of("output_refused")[0]!.message).toMatch(/symbolic link/);
    expect(r.of("step_failed")[0]!.metadata).toMatchObject({ reason: "output_refused" });
  });

  it("keeps a step id that looks like a path from writing outside the protocol folder", async () => {
    const outside = mkdtempSync(join(tmpdir(), "tgz-outside-"));
    const id = `../../../../../../../..${outside}/pwned`;
    const r = await runSpec(s, { steps: [shellStep(id, "echo done")] });
    expect(r.run.status).toBe("completed");
    expect(readdirSync(outside)).toEqual([]);
    const logs = readdirSync(join(r.run.protocolRoot!, "logs"));
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/^[A-Za-z0-9_-][A-Za-z0-9._-]*\.exec\.1\.jsonl$/);
    expect(readdirSync(join(r.run.protocolRoot!, "outputs"))).toEqual([
      logs[0]!.replace(".exec.1.jsonl", ".md"),
    ]);
  });

  it("fails the step, without a crash, when its directive folder is a symlink out of the worktree", async () => {
    const outside = mkdtempSync(join(tmpdir(), "tgz-dir-"));
    mkdirSync(join(s.repo, ".codemachine"), { recursive: true });
    symlinkSync(outside, join(s.repo, ".codemachine", "memory"));
    const r = await runSpec(s, {
      steps: [shellStep("a", "echo a", { directive: { file: ".codemachine/memory/directive.json" } })],
    });
    expect(r.run.status).toBe("blocked");
    expect(r.status).toEqual({ a: "failed" });
    expect(r.of("directive_invalid")[0]!.message).toMatch(/escapes the worktree/);
    expect(readdirSync(outside)).toEqual([]);
  });
});

describe("one runner per run", () => {
  it("refuses a second runner while the first holds the run, and lets it in afterwards", async () => {
    const run = await create(
      {
        steps: [
          { id: "slow", engine_id: "replay", prompt_ref: "p.md", inputs: { final: "ok", delay_ms: 800 } },
        ],
      },
      { "p.md": "go" },
    );
    const first = runnerFor(s).run(run.id);
    await new Promise((r) => setTimeout(r, 200));
    await expect(runnerFor(s).run(run.id)).rejects.toBeInstanceOf(RunBusyError);
    expect((await first).status).toBe("completed");
    const again = await runnerFor(s).run(run.id);
    expect(again.status).toBe("completed");
    const { of } = await inspect(s.store, run.id);
    expect(of("step_started")).toHaveLength(1);
    expect((await s.store.getProtocolRun(run.id)).leaseOwner).toBeNull();
  });

  it("takes over a run whose runner died mid-step, and fails a step that keeps crashing", async () => {
    const run = await create({ steps: [shellStep("a", "echo a >> a.txt", { retry: { crashes: 1 } })] });
    const [step] = await s.store.listStepRuns(run.id);
    // what a runner killed in the middle of the step leaves behind: run and step running, lease lapsed
    const crash = async () => {
      await s.store.acquireRunLease(run.id, "dead-runner", 1);
      const current = await s.store.getStepRun(step!.id);
      await s.store.transaction(async (tx) => {
        if ((await tx.getProtocolRun(run.id)).status !== "running")
          await tx.transitionProtocol(run.id, "running", { eventType: "protocol_started", message: "x" });
        if (current.status !== "pending")
          await tx.transitionStep(step!.id, "pending", { eventType: "step_status_changed", message: "x" });
        await tx.transitionStep(step!.id, "running", { eventType: "step_started", message: "x" });
      });
      await new Promise((r) => setTimeout(r, 10));
    };
    await crash();
    // the dead runner's engine is still running: a process group of its own, as engines are started
    const orphan = spawn("sleep", ["30"], { detached: true, stdio: "ignore" });
    await s.store.updateStepRun(step!.id, { runtimeState: { engine_process: identify(orphan.pid!) } });
    expect((await runnerFor(s).run(run.id)).status).toBe("completed");
    let seen = await inspect(s.store, run.id);
    expect(seen.of("protocol_recovered")[0]!.metadata).toMatchObject({ previous_lease_owner: "dead-runner" });
    expect(seen.of("step_recovered")[0]!.metadata).toMatchObject({
      crashes: 1,
      limit: 1,
      orphan_killed: true,
    });
    expect(await waitGone(orphan.pid!)).toBe(true);

    // the same step interrupted by crashes again and again stops being retried
    const again = await create({ steps: [shellStep("a", "true", { retry: { crashes: 1 } })] });
    const [st] = await s.store.listStepRuns(again.id);
    await s.store.updateStepRun(st!.id, { runtimeState: { crashes: 1 } });
    await s.store.transitionProtocol(again.id, "running", { eventType: "protocol_started", message: "x" });
    await s.store.transitionStep(st!.id, "running", { eventType: "step_started", message: "x" });
    const r = await runnerFor(s).run(again.id);
    expect(r.status).toBe("blocked");
    seen = await inspect(s.store, again.id);
    expect(seen.status).toEqual({ a: "failed" });
    expect(seen.of("step_failed")[0]!.metadata).toMatchObject({ reason: "crashed", crashes: 2, limit: 1 });
    expect(seen.of("protocol_blocked")[0]!.metadata).toMatchObject({ reason: "crashed" });
  });
});

describe("a cancel made elsewhere", () => {
  it("stops the step under way and leaves it cancelled with its run", async () => {
    const run = await create({ steps: [shellStep("slow", "sleep 30"), shellStep("next", "echo next")] });
    const running = runnerFor(s).run(run.id);
    const { of: started } = await waitFor(run.id, "step_started");
    expect(started("step_started")).toHaveLength(1);
    await s.store.transitionProtocol(run.id, "cancelled", { eventType: "cancelled", message: "by hand" });
    const t0 = Date.now();
    expect((await running).status).toBe("cancelled");
    expect(Date.now() - t0).toBeLessThan(5000);
    const after = await inspect(s.store, run.id);
    expect(after.status).toEqual({ slow: "cancelled", next: "pending" });
    expect(after.of("step_status_changed").at(-1)!.message).toBe("Cancelled with its run");
  });
});

/** Polls the ledger until an event of `type` appears. */
async function waitFor(runId: number, type: string) {
  for (let i = 0; i < 200; i++) {
    const seen = await inspect(s.store, runId);
    if (seen.of(type).length > 0) return seen;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no ${type} event`);
}

describe("one step at a time", () => {
  /** What the API's step actions do before they queue the job: the run taken up, the step queued. */
  async function takeUp(runId: number, stepRunId: number, to: "pending" | "needs_qa") {
    await s.store.transaction(async (tx) => {
      const run = await tx.getProtocolRun(runId);
      if (run.status !== "running")
        await tx.transitionProtocol(runId, "running", { eventType: "resumed", message: "api" });
      const step = await tx.getStepRun(stepRunId);
      if (step.status !== to)
        await tx.transitionStep(stepRunId, to, { eventType: "step_status_changed", message: "api" });
    });
  }

  it("runs only the next step, or a named one, then pauses; QA alone runs again on the step's output", async () => {
    writeFileSync(join(s.repo, "ready"), "no\n");
    const run = await create({
      steps: [
        shellStep("a", "echo a >> order.txt; echo a"),
        shellStep("b", "echo b >> order.txt; echo b", {
          qa: { policy: "light", checks: ["grep -q yes ready"] },
        }),
        shellStep("c", "echo c >> order.txt; echo c"),
      ],
    });
    const runner = () => runnerFor(s);
    expect((await runner().run(run.id, { only: {} })).status).toBe("paused");
    expect(readFileSync(join(s.repo, "order.txt"), "utf8")).toBe("a\n");
    const b = (await s.store.listStepRuns(run.id)).find((x) => x.stepName === "b")!;
    await takeUp(run.id, b.id, "pending");
    expect((await runner().run(run.id, { only: { stepRunId: b.id } })).status).toBe("blocked");
    expect((await s.store.getStepRun(b.id)).status).toBe("failed");

    writeFileSync(join(s.repo, "ready"), "yes\n");
    await takeUp(run.id, b.id, "needs_qa");
    const afterQa = await runner().run(run.id, { only: { stepRunId: b.id, qaOnly: true } });
    expect(afterQa.status).toBe("paused");
    expect((await s.store.getStepRun(b.id)).status).toBe("completed");
    // QA alone does not run the step's command again
    expect(readFileSync(join(s.repo, "order.txt"), "utf8")).toBe("a\nb\n");
    const last = await runner().run(run.id, { only: {}, resume: true });
    expect(last.status).toBe("completed");
    const { of } = await inspect(s.store, run.id);
    expect(of("paused").map((e) => e.metadata.reason)).toEqual(["step_done", "step_done"]);
  });

  it("does nothing for a step job delivered again, or one that finds its run paused since it was queued", async () => {
    const run = await create({
      steps: [shellStep("a", "echo a >> order.txt; echo a"), shellStep("b", "echo b")],
    });
    const [a] = await s.store.listStepRuns(run.id);
    expect((await runnerFor(s).run(run.id, { only: { stepRunId: a!.id } })).status).toBe("paused");
    // the same job again: the step is done and the run paused, so nothing runs
    expect((await runnerFor(s).run(run.id, { only: { stepRunId: a!.id } })).status).toBe("paused");
    expect((await runnerFor(s).run(run.id, { only: { stepRunId: a!.id, qaOnly: true } })).status).toBe(
      "paused",
    );
    expect(readFileSync(join(s.repo, "order.txt"), "utf8")).toBe("a\n");
    // taken up again, then paused before a worker claims the job: the job leaves the pause alone
    await takeUp(run.id, a!.id, "needs_qa");
    await s.store.transitionProtocol(run.id, "paused", { eventType: "paused", message: "api" });
    expect((await runnerFor(s).run(run.id, { only: { stepRunId: a!.id, qaOnly: true } })).status).toBe(
      "paused",
    );
    expect((await s.store.getStepRun(a!.id)).status).toBe("needs_qa");
    const { of } = await inspect(s.store, run.id);
    expect(of("qa_started")).toHaveLength(1);
  });
});

describe("trigger-only steps", () => {
  it("runs a trigger-only step when a trigger names its agent, and completes without the untriggered one", async () => {
    const r = await runSpec(s, {
      steps: [
        shellStep("a", "echo a >> order.txt; echo a", {
          policies: [{ behavior: "trigger", trigger_agent_id: "fixer-agent", conditions: ["success"] }],
        }),
        shellStep("fix", "echo fix >> order.txt; echo fixed", {
          trigger_only: true,
          agent_id: "fixer-agent",
        }),
        shellStep("never", "echo never >> order.txt", { trigger_only: true }),
        shellStep("b", "echo b >> order.txt; echo b"),
      ],
    });
    expect(r.run.status).toBe("completed");
    expect(readFileSync(join(s.repo, "order.txt"), "utf8")).toBe("a\nfix\nb\n");
    expect(r.status).toEqual({ a: "completed", fix: "completed", never: "pending", b: "completed" });
    expect(r.of("trigger_decision")[0]!.metadata).toMatchObject({ target_step_id: "fix", inline_depth: 1 });
  });
});

describe("change detection", () => {
  it("fails a step that changed nothing, even when an earlier step left the worktree dirty", async () => {
    const r = await runSpec(s, {
      steps: [
        shellStep("a", "echo new > new.txt; echo wrote"),
        shellStep("b", "echo looked", { qa: { policy: "light", require_changes: true } }),
      ],
    });
    expect(r.run.status).toBe("blocked");
    expect(r.status).toEqual({ a: "completed", b: "failed" });
    const checks = r.of("qa_verdict")[1]!.metadata.checks as { name: string; ok: boolean; detail: string }[];
    expect(checks.find((c) => c.name === "changes")).toMatchObject({
      ok: false,
      detail: "the step changed nothing in the worktree",
    });
  });

  it("passes a step that changed a file, naming what changed", async () => {
    writeFileSync(
      join(s.repo, "tasksgodzilla.config.json"),
      JSON.stringify({ qa: { require_changes: true } }),
    );
    const r = await runSpec(s, { steps: [shellStep("a", "echo more >> README.md; echo edited")] });
    expect(r.run.status).toBe("completed");
    const checks = r.of("qa_verdict")[0]!.metadata.checks as { name: string; detail: string }[];
    expect(checks.find((c) => c.name === "changes")!.detail).toBe("M\tREADME.md");
  });
});

describe("engines checked before any work", () => {
  it("blocks on a later step's missing binary before the first step runs", async () => {
    writeFileSync(
      join(s.repo, "tasksgodzilla.config.json"),
      JSON.stringify({ engines: { codex: { binary: "/nonexistent/codex" } } }),
    );
    const r = await runSpec(
      s,
      {
        steps: [shellStep("a", "echo ran > ran.txt"), { id: "b", engine_id: "codex", prompt_ref: "p.md" }],
      },
      { "p.md": "do it" },
    );
    expect(r.run.status).toBe("blocked");
    expect(r.of("step_started")).toHaveLength(0);
    expect(existsSync(join(s.repo, "ran.txt"))).toBe(false);
    expect(r.status).toEqual({ a: "pending", b: "failed" });
    const unavailable = r.of("engine_unavailable")[0]!;
    expect(unavailable.message).toMatch(/Engine codex unavailable: .*fix: /);
  });

  it("times out a replay that plays longer than the step's timeout", async () => {
    const rec = Array.from({ length: 5 }, (_, i) => JSON.stringify({ type: "message", text: `m${i}` })).join(
      "\n",
    );
    const started = Date.now();
    const r = await runSpec(
      s,
      {
        steps: [
          {
            id: "slow",
            engine_id: "replay",
            prompt_ref: "p.md",
            timeout_seconds: 1,
            inputs: { recording: "{{protocol_dir}}/rec.jsonl", delay_ms: 700 },
          },
        ],
      },
      { "p.md": "go", "rec.jsonl": rec },
    );
    expect(Date.now() - started).toBeLessThan(4000);
    expect(r.of("engine_error")[0]!.metadata).toMatchObject({ error: { kind: "timeout" } });
  });
});

describe("directives when QA fails", () => {
  it("loops when the agent asked to loop, even though its QA failed", async () => {
    const check = `n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; mkdir -p .codemachine/memory; if [ $n -le 1 ]; then echo '{"action":"loop"}' > .codemachine/memory/directive.json; echo bad > verdict; else echo good > verdict; fi; echo checked`;
    const r = await runSpec(s, {
      steps: [
        shellStep("build", "echo build >> log.txt; echo built"),
        shellStep("check", check, {
          directive: { file: ".codemachine/memory/directive.json" },
          qa: { policy: "light", checks: ["grep -q good verdict"] },
          policies: [
            {
              behavior: "loop",
              id: "again",
              conditions: ["directive:loop"],
              step_back: 1,
              max_iterations: 3,
            },
          ],
        }),
      ],
    });
    expect(r.run.status).toBe("completed");
    expect(readFileSync(join(s.repo, "log.txt"), "utf8")).toBe("build\nbuild\n");
    const loop = r.of("loop_decision")[0]!.metadata;
    expect(loop).toMatchObject({ decision: "loop", reason: "directive:loop", directive: { action: "loop" } });
  });
});

describe("directive files and placeholders an agent tampered with", () => {
  const DIRECTIVE = { file: ".codemachine/memory/directive.json" };

  it("fails the step when the directive file became a folder, also on resume, without a crash", async () => {
    const r = await runSpec(s, {
      steps: [
        shellStep(
          "a",
          "rm -f .codemachine/memory/directive.json; mkdir -p .codemachine/memory/directive.json; echo a",
          { directive: DIRECTIVE },
        ),
      ],
    });
    expect(r.run.status).toBe("blocked");
    expect(r.of("directive_invalid")[0]!.message).toMatch(/cannot read directive file .*: it is a directory/);
    const resumed = await runnerFor(s).run(r.run.id, { resume: true });
    expect(resumed.status).toBe("blocked");
    const after = await inspect(s.store, r.run.id);
    expect(after.of("directive_invalid").at(-1)!.message).toMatch(
      /cannot reset directive file .*: it is a directory/,
    );
    expect(after.status).toEqual({ a: "failed" });
  });

  it("refuses a glob placeholder whose files lead out of the worktree", async () => {
    const outside = mkdtempSync(join(tmpdir(), "tgz-secret-"));
    writeFileSync(join(outside, "secret.md"), "TOP SECRET");
    mkdirSync(join(s.repo, "notes"));
    symlinkSync(join(outside, "secret.md"), join(s.repo, "notes", "x.md"));
    const r = await runSpec(
      s,
      {
        placeholders: { notes: { file: "notes/*.md" } },
        steps: [{ id: "a", engine_id: "replay", prompt_ref: "p.md", inputs: { final: "done" } }],
      },
      { "p.md": "Read {{notes}}" },
    );
    expect(r.run.status).toBe("blocked");
    expect(r.of("spec_validation_error")[0]!.metadata).toMatchObject({ pointer: "/placeholders/notes" });
    expect(r.of("step_started")).toHaveLength(0);
  });
});

describe("triggers an agent asks for", () => {
  const DIRECTIVE = { file: ".codemachine/memory/directive.json" };
  const write = (json: string) =>
    `mkdir -p .codemachine/memory; echo '${json}' > .codemachine/memory/directive.json`;

  it("runs a trigger each time its step runs again in a loop", async () => {
    const check = `n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; if [ $n -le 4 ]; then ${write('{"action":"loop"}')}; fi; echo checked`;
    const r = await runSpec(s, {
      steps: [
        shellStep(
          "build",
          `echo build >> log.txt; ${write('{"action":"trigger","triggerAgentId":"committer"}')}; echo built`,
          {
            directive: DIRECTIVE,
          },
        ),
        shellStep("commit", "echo commit >> log.txt; echo committed", {
          agent_id: "committer",
          trigger_only: true,
        }),
        shellStep("check", check, {
          directive: DIRECTIVE,
          policies: [
            {
              behavior: "loop",
              id: "again",
              conditions: ["directive:loop"],
              step_back: 2,
              max_iterations: 5,
            },
          ],
        }),
      ],
    });
    expect(r.run.status).toBe("completed");
    expect(readFileSync(join(s.repo, "log.txt"), "utf8")).toBe("build\ncommit\n".repeat(5));
    expect(r.of("trigger_limit_reached")).toHaveLength(0);
  });

  it("blocks instead of dropping the work when an agent's trigger cannot run again", async () => {
    const r = await runSpec(s, {
      steps: [
        shellStep("self", `${write('{"action":"trigger","trigger_step":"self"}')}; echo again`, {
          directive: DIRECTIVE,
        }),
      ],
    });
    expect(r.run.status).toBe("blocked");
    expect(r.of("trigger_cycle_detected")).toHaveLength(1);
    expect(r.of("protocol_blocked").at(-1)!.metadata).toMatchObject({ reason: "trigger_cycle_detected" });
  });
});

describe("settings and modes an engine cannot honour", () => {
  it("refuses a sandbox the step's engine does not enforce, before anything runs", async () => {
    const r = await runSpec(s, { steps: [shellStep("a", "echo a > a.txt", { sandbox: "read-only" })] });
    expect(r.run.status).toBe("blocked");
    expect(r.of("spec_validation_error")[0]!.metadata).toMatchObject({
      pointer: "/steps/0/sandbox",
      error: expect.stringMatching(/engine "shell" has no sandbox/),
    });
    expect(existsSync(join(s.repo, "a.txt"))).toBe(false);
  });

  it("blocks a run whose config names an engine that does not exist", async () => {
    writeFileSync(
      join(s.repo, "tasksgodzilla.config.json"),
      JSON.stringify({ engines: { codx: { binary: "/x" } } }),
    );
    const r = await runSpec(s, { steps: [shellStep("a", "echo a > a.txt")] });
    expect(r.run.status).toBe("blocked");
    expect(r.of("protocol_blocked")[0]!.metadata).toMatchObject({ reason: "config_invalid" });
    expect(r.of("protocol_blocked")[0]!.message).toMatch(/unknown engines? "codx"/);
    expect(existsSync(join(s.repo, "a.txt"))).toBe(false);
  });
});

describe("a run whose folder is gone", () => {
  it("blocks once, saying the worktree no longer exists, and runs nothing", async () => {
    const run = await create({ steps: [shellStep("a", "echo a")] });
    rmSync(s.repo, { recursive: true, force: true });
    const r = await runnerFor(s).run(run.id);
    expect(r.status).toBe("blocked");
    const seen = await inspect(s.store, run.id);
    expect(seen.of("protocol_blocked")[0]!.metadata).toMatchObject({ reason: "worktree_gone" });
    expect(seen.of("protocol_blocked")[0]!.message).toMatch(/no longer exists/);
    expect(seen.of("step_started")).toHaveLength(0);
  });
});

describe("resuming a run whose finished steps changed", () => {
  it("does not fail a completed step whose prompt file is gone by now", async () => {
    const r = await runSpec(
      s,
      {
        steps: [
          { id: "a", engine_id: "replay", prompt_ref: "a.md", inputs: { final: "done" } },
          shellStep("b", "false"),
        ],
      },
      { "a.md": "the prompt" },
    );
    expect(r.status).toEqual({ a: "completed", b: "failed" });
    rmSync(join(r.run.protocolRoot!, "a.md"));
    const again = await runnerFor(s).run(r.run.id, { resume: true });
    expect(again.status).toBe("blocked");
    const seen = await inspect(s.store, r.run.id);
    expect(seen.status).toEqual({ a: "completed", b: "failed" });
    expect(seen.of("spec_validation_error")).toHaveLength(0);
    // the resume got past validation: b ran again (a, b, then b once more)
    expect(seen.of("step_started")).toHaveLength(3);
  });
});

describe("the runner's own failures", () => {
  it("fails the step and blocks the run, with the error, when something unexpected breaks", async () => {
    // the step makes its own output path a folder: writing the output fails with EISDIR
    const r = await runSpec(s, {
      steps: [
        shellStep("a", 'mkdir -p "$TASKSGODZILLA_PROTOCOL_DIR/outputs/a.md"; echo done'),
        shellStep("b", "echo b"),
      ],
    });
    expect(r.run.status).toBe("blocked");
    expect(r.status).toEqual({ a: "failed", b: "pending" });
    expect(r.of("step_failed")[0]!.metadata).toMatchObject({
      reason: "runner_error",
      error: expect.stringMatching(/EISDIR/),
    });
    expect(r.of("protocol_blocked")[0]!.metadata).toMatchObject({ reason: "runner_error", step: "a" });
  });

  it("refuses outputs that are folders or the run's own records, before anything runs", async () => {
    const r = await runSpec(s, {
      steps: [
        shellStep("a", "echo a", { outputs: { protocol: "." } }),
        shellStep("b", "echo b", { outputs: { protocol: "protocol-spec.json" } }),
        shellStep("c", "echo c", { outputs: { aux: { x: "logs/c.jsonl" } } }),
      ],
    });
    expect(r.run.status).toBe("blocked");
    expect(r.of("step_started")).toHaveLength(0);
    expect(r.of("spec_validation_error").map((e) => [e.metadata.pointer, e.metadata.error])).toEqual([
      ["/steps/0/outputs/protocol", 'output path "." is a folder, not a file'],
      [
        "/steps/1/outputs/protocol",
        expect.stringMatching(/would overwrite the run's own records \(protocol-spec.json\)/),
      ],
      ["/steps/2/outputs/aux/x", expect.stringMatching(/would overwrite the run's own records \(logs\)/)],
    ]);
  });
});
