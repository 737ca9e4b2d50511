import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { waitGone } from "../support/processes.js";
import { inspect, runnerFor, runSpec, type Scenario, scenario, shellStep } from "./harness.js";

let s: Scenario;
beforeEach(async () => {
  s = await scenario();
});
afterEach(async () => {
  await s.close();
});

const recording = (final: string, usage = { input: 1000, cachedInput: 200, output: 300, reasoning: 50 }) =>
  [
    { type: "started", sessionId: "sess-1" },
    { type: "usage", usage },
    { type: "final", text: final },
  ]
    .map((e) => JSON.stringify(e))
    .join("\n");

/** A shell QA "agent" that answers fail on its first call and pass afterwards (state in a counter file). */
const flakyVerdict = (counter: string) =>
  `n=$(cat ${counter} 2>/dev/null || echo 0); echo $((n+1)) > ${counter}; ` +
  `if [ "$n" = 0 ]; then echo '{"verdict":"fail","summary":"greeting missing","findings":[{"severity":"major","message":"no greeting"}]}'; ` +
  `else echo 'Looks good now. {"verdict":"pass","summary":"fixed","findings":[]}'; fi`;

describe("whole protocols on the embedded default", () => {
  it("runs mixed engines in one run, advancing by itself, with outputs, usage and ordered events", async () => {
    const r = await runSpec(
      s,
      {
        steps: [
          shellStep("00-setup", "echo setup > setup.txt", { qa: { policy: "skip", reason: "scaffolding" } }),
          {
            id: "01-agent",
            engine_id: "replay",
            model: "m1",
            prompt_ref: "prompts/agent.md",
            inputs: { recording: "{{protocol_dir}}/rec.jsonl" },
            outputs: { aux: { review: "aux/review.md" } },
          },
          shellStep("02-check", ["test -f setup.txt", "echo checked"]),
        ],
      },
      { "prompts/agent.md": "Do the work for {{step_id}}", "rec.jsonl": recording("agent says done") },
    );
    expect(r.run.status).toBe("completed");
    expect(r.status).toEqual({ "00-setup": "completed", "01-agent": "completed", "02-check": "completed" });
    const root = r.run.protocolRoot!;
    expect(readFileSync(join(root, "outputs/01-agent.md"), "utf8")).toBe("agent says done");
    expect(readFileSync(join(root, "aux/review.md"), "utf8")).toBe("agent says done");
    expect(readFileSync(join(root, "prompts/agent.md"), "utf8")).toBe("Do the work for {{step_id}}");
    expect(readFileSync(join(root, "outputs/02-check.md"), "utf8")).toContain("checked");
    expect(existsSync(join(s.repo, "setup.txt"))).toBe(true);

    const ids = r.events.map((e) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(r.trail.filter((t) => /^(step_started|qa_skipped|qa_verdict|protocol_completed)/.test(t))).toEqual(
      [
        "step_started:00-setup",
        "qa_skipped:00-setup",
        "step_started:01-agent",
        "qa_verdict:01-agent",
        "step_started:02-check",
        "qa_verdict:02-check",
        "protocol_completed",
      ],
    );
    const specHash = r.run.templateConfig.spec_meta?.spec_hash;
    expect(specHash).toMatch(/^[0-9a-f]{12}$/);
    expect(r.events.every((e) => e.specHash === specHash)).toBe(true);

    const started = r.of("step_started")[1]!.metadata;
    expect(started).toMatchObject({
      engine_id: "replay",
      model: "m1",
      prompt_versions: { exec: expect.stringMatching(/^prompts\/agent\.md@[0-9a-f]{12}$/) },
    });
    const agentDone = r.of("step_completed").find((e) => e.metadata.engine_id === "replay")!.metadata;
    expect(agentDone.usage).toEqual({
      input: 1000,
      cached_input: 200,
      output: 300,
      reasoning: 50,
      total: 1300,
      estimated: false,
    });
    expect(agentDone.session_id).toBe("sess-1");
    const shellDone = r.of("step_completed").find((e) => e.metadata.engine_id === "shell")!.metadata;
    // a command calls no model: zero tokens, reported as such rather than estimated from its stdout
    expect(shellDone.usage).toMatchObject({ total: 0, estimated: false });
    expect(r.of("qa_skipped")[0]!.metadata).toMatchObject({ policy: "skip", reason: "scaffolding" });
    const usage = await s.store.sumUsage({ protocolRunId: r.run.id });
    expect(usage.calls).toBe(3);
    expect(usage.estimatedCalls).toBe(0);
    expect(usage.total).toBe(1300);
  });

  it("full QA: a failing verdict loops back, then the re-run passes", async () => {
    const counter = join(s.repo, "..", `qa-counter-${Date.now()}`);
    const r = await runSpec(s, {
      steps: [
        shellStep("01-write", "echo hello > greeting.txt"),
        shellStep("02-polish", "echo polished >> greeting.txt", {
          qa: { policy: "full", engine_id: "shell", inputs: { command: flakyVerdict(counter) } },
          policies: [
            { behavior: "loop", id: "fix", conditions: ["qa_failed"], step_back: 1, max_iterations: 2 },
          ],
        }),
      ],
    });
    expect(r.run.status).toBe("completed");
    const verdicts = r
      .of("qa_verdict")
      .filter((e) => r.steps.find((st) => st.id === e.stepRunId)?.stepName === "02-polish");
    expect(verdicts.map((e) => e.metadata.verdict)).toEqual(["fail", "pass"]);
    expect(verdicts[0]!.metadata).toMatchObject({
      policy: "full",
      engine_id: "shell",
      findings: [{ severity: "major", message: "no greeting" }],
      prompt_versions: { qa: expect.stringMatching(/^quality-validator\.prompt\.md@/) },
    });
    const loop = r.of("loop_decision");
    expect(loop).toHaveLength(1);
    expect(loop[0]!.metadata).toMatchObject({
      reason: "qa_failed",
      target_step: "01-write",
      steps_reset: ["01-write", "02-polish"],
      iterations: 1,
      max_iterations: 2,
    });
    expect(r.trail.filter((t) => t.startsWith("step_started"))).toEqual([
      "step_started:01-write",
      "step_started:02-polish",
      "step_started:01-write",
      "step_started:02-polish",
    ]);
    expect(readFileSync(join(s.repo, "greeting.txt"), "utf8")).toBe("hello\npolished\n");
    expect(loop[0]!.metadata.runtime_state).toMatchObject({ loop_counts: { fix: 1 } });
    // once the step passes, the run has moved past the loop: it counts afresh if reached again
    const polish = r.steps.find((st) => st.stepName === "02-polish")!;
    expect(polish.runtimeState.loop_counts).toBeUndefined();
  });

  it("full QA never passes when the QA engine crashes or answers garbage", async () => {
    const crash = await runSpec(s, {
      steps: [
        shellStep("a", "true", {
          qa: { policy: "full", engine_id: "shell", inputs: { command: "echo boom >&2; exit 7" } },
        }),
      ],
    });
    expect(crash.run.status).toBe("blocked");
    expect(crash.status.a).toBe("failed");
    expect(crash.of("qa_verdict")[0]!.metadata).toMatchObject({
      verdict: "error",
      reason: expect.stringMatching(/QA engine failed \(crash\)/),
    });

    const garbage = await runSpec(s, {
      steps: [
        shellStep("b", "true", {
          qa: { policy: "full", engine_id: "shell", inputs: { command: "echo 'VERDICT: PASS'" } },
        }),
      ],
    });
    expect(garbage.status.b).toBe("failed");
    expect(garbage.of("qa_repair_retry")).toHaveLength(1);
    expect(garbage.of("qa_verdict")[0]!.metadata).toMatchObject({
      verdict: "error",
      reason: expect.stringMatching(/not a valid verdict, even after a repair retry/),
    });
    expect(await s.store.sumUsage({ protocolRunId: garbage.run.id })).toMatchObject({ calls: 3 });
  });

  it("light QA fails on a failing check, an empty output, or no change when changes are required", async () => {
    const r = await runSpec(
      s,
      {
        steps: [
          {
            id: "a",
            engine_id: "replay",
            prompt_ref: "p.md",
            inputs: { final: "" },
            qa: { policy: "light", checks: ["exit 3"], require_changes: true },
          },
        ],
      },
      { "p.md": "say nothing" },
    );
    expect(r.run.status).toBe("blocked");
    const checks = r.of("qa_verdict")[0]!.metadata.checks as { name: string; ok: boolean }[];
    expect(checks.map((c) => [c.name, c.ok])).toEqual([
      ["output:protocol", false],
      ["check:exit 3", false],
      ["changes", false],
    ]);
  });

  it("stops a loop at max_iterations with loop_limit_reached, the count persisted", async () => {
    const r = await runSpec(s, {
      steps: [
        shellStep("a", "echo a"),
        shellStep("b", "echo b", {
          qa: { policy: "light", checks: ["false"] },
          policies: [{ behavior: "loop", id: "again", step_back: 1, max_iterations: 2 }],
        }),
      ],
    });
    expect(r.run.status).toBe("blocked");
    expect(r.status).toEqual({ a: "completed", b: "failed" });
    expect(r.of("loop_decision").map((e) => e.metadata.iterations)).toEqual([1, 2]);
    expect(r.of("loop_limit_reached")[0]!.metadata).toMatchObject({ iterations: 2, max_iterations: 2 });
    expect(r.steps.find((st) => st.stepName === "b")!.runtimeState.loop_counts).toEqual({ again: 2 });
    expect(r.of("step_started")).toHaveLength(6);
  });

  it("runs triggers inline up to the depth guard, then queues the rest", async () => {
    writeFileSync(join(s.repo, "tasksgodzilla.config.json"), JSON.stringify({ max_inline_trigger_depth: 2 }));
    const trig = (target: string) => [{ behavior: "trigger", id: `to-${target}`, trigger_step: target }];
    const r = await runSpec(s, {
      steps: [
        shellStep("a", "echo a >> order.txt", { policies: trig("c") }),
        shellStep("b", "echo b >> order.txt"),
        shellStep("c", "echo c >> order.txt", { policies: trig("d") }),
        shellStep("d", "echo d >> order.txt", { policies: trig("e") }),
        shellStep("e", "echo e >> order.txt"),
      ],
    });
    expect(r.run.status).toBe("completed");
    // a → c (depth 1) → d (depth 2) inline; d → e is past the guard and is queued.
    expect(readFileSync(join(s.repo, "order.txt"), "utf8")).toBe("a\nc\nd\nb\ne\n");
    expect(r.of("trigger_decision").map((e) => [e.metadata.target_step_id, e.metadata.inline_depth])).toEqual(
      [
        ["c", 1],
        ["d", 2],
      ],
    );
    expect(r.of("trigger_depth_exceeded")[0]!.metadata).toMatchObject({
      target_step_id: "e",
      inline_depth: 2,
      max_inline_depth: 2,
    });
  });

  it("retries a retryable engine failure after the hinted delay, then fails the step", async () => {
    const limited = JSON.stringify({
      type: "error",
      error: { kind: "rate_limit", message: "slow down", retryable: true, retryAfterMs: 20 },
    });
    const authFailed = JSON.stringify({
      type: "error",
      error: { kind: "auth", message: "bad key", retryable: false },
    });
    const r = await runSpec(
      s,
      {
        steps: [
          {
            id: "limited",
            engine_id: "replay",
            prompt_ref: "p.md",
            inputs: { recording: "{{protocol_dir}}/limited.jsonl" },
          },
          {
            id: "auth",
            engine_id: "replay",
            prompt_ref: "p.md",
            inputs: { recording: "{{protocol_dir}}/auth.jsonl" },
          },
        ],
      },
      { "p.md": "go", "limited.jsonl": limited, "auth.jsonl": authFailed },
    );
    expect(r.run.status).toBe("blocked");
    expect(r.of("engine_retry").map((e) => [e.metadata.attempt, e.metadata.delay_ms])).toEqual([
      [1, 20],
      [2, 20],
    ]);
    expect(r.of("engine_error")[0]!.metadata).toMatchObject({ error: { kind: "rate_limit" } });
    const rerun = await runSpec(
      s,
      {
        steps: [
          {
            id: "auth",
            engine_id: "replay",
            prompt_ref: "p.md",
            inputs: { recording: "{{protocol_dir}}/auth.jsonl" },
          },
        ],
      },
      { "p.md": "go", "auth.jsonl": authFailed },
    );
    expect(rerun.of("engine_retry")).toHaveLength(0);
    expect(rerun.of("engine_error")[0]!.metadata).toMatchObject({
      error: { kind: "auth", retryable: false },
    });
  });

  it("fails a step whose engine binary is missing before anything runs, with the fix", async () => {
    writeFileSync(
      join(s.repo, "tasksgodzilla.config.json"),
      JSON.stringify({ engines: { codex: { binary: "/nonexistent/codex" } } }),
    );
    const r = await runSpec(
      s,
      {
        steps: [
          { id: "agent", engine_id: "codex", prompt_ref: "p.md" },
          shellStep("after", "echo no > after.txt"),
        ],
      },
      { "p.md": "work" },
    );
    expect(r.run.status).toBe("blocked");
    expect(r.status).toEqual({ agent: "failed", after: "pending" });
    expect(r.of("step_started")).toHaveLength(0);
    const unavailable = r.of("engine_unavailable")[0]!;
    expect(unavailable.message).toMatch(
      /binary "\/nonexistent\/codex" not found — fix: .*engines\.codex\.binary/,
    );
  });

  it("fires a trigger on failure inline, then blocks on the failed step", async () => {
    const r = await runSpec(s, {
      steps: [
        shellStep("build", "echo compiling; exit 1", {
          policies: [{ behavior: "trigger", id: "on-fail", conditions: ["failure"], trigger_step: "notify" }],
        }),
        shellStep("next", "echo never > next.txt"),
        shellStep("notify", "echo notified > notify.txt"),
      ],
    });
    expect(r.run.status).toBe("blocked");
    expect(r.status).toEqual({ build: "failed", next: "pending", notify: "completed" });
    expect(readFileSync(join(s.repo, "notify.txt"), "utf8")).toBe("notified\n");
    expect(r.of("trigger_decision")[0]!.metadata).toMatchObject({
      reason: "exec_failed",
      target_step_id: "notify",
      inline_depth: 1,
    });
  });

  it("refuses a trigger cycle and runs each step once", async () => {
    const r = await runSpec(s, {
      steps: [
        shellStep("a", "echo a >> order.txt", { policies: [{ behavior: "trigger", trigger_step: "b" }] }),
        shellStep("b", "echo b >> order.txt", { policies: [{ behavior: "trigger", trigger_step: "a" }] }),
      ],
    });
    expect(r.run.status).toBe("completed");
    expect(readFileSync(join(s.repo, "order.txt"), "utf8")).toBe("a\nb\n");
    expect(r.of("trigger_cycle_detected")[0]!.metadata.chain).toEqual(["a", "b", "a"]);
  });

  it("blocks before anything runs on an unknown engine or a missing prompt_ref", async () => {
    const r = await runSpec(s, {
      steps: [
        shellStep("ok", "echo should-not-run > ran.txt"),
        { id: "ghost", engine_id: "no-such-engine", prompt_ref: "x.md" },
        { id: "noprompt", engine_id: "replay" },
        { id: "escape", engine_id: "replay", prompt_ref: "../../../../etc/hostname" },
      ],
    });
    expect(r.run.status).toBe("blocked");
    expect(r.of("step_started")).toHaveLength(0);
    expect(existsSync(join(s.repo, "ran.txt"))).toBe(false);
    const errors = r.of("spec_validation_error").map((e) => [e.metadata.pointer, e.metadata.error]);
    expect(errors).toEqual(
      expect.arrayContaining([
        ["/steps/1/engine_id", expect.stringMatching(/unknown engine "no-such-engine" \(known: .*shell.*\)/)],
        ["/steps/2/prompt_ref", expect.stringMatching(/no prompt_ref/)],
        ["/steps/3/prompt_ref", expect.stringMatching(/escapes|outside/)],
      ]),
    );
    expect(r.status).toEqual({ ok: "pending", ghost: "failed", noprompt: "failed", escape: "failed" });
  });

  it("creates a blocked run, running nothing, when a policy names a missing step or loops forward", async () => {
    const r = await runSpec(s, {
      steps: [
        shellStep("a", "echo ran > ran.txt", { policies: [{ behavior: "loop", target_step: "c" }] }),
        shellStep("b", "true", { policies: [{ behavior: "trigger", trigger_step: "nowhere" }] }),
        shellStep("c", "true", { policies: [{ behavior: "loop", step_back: 1, skip: ["c"] }] }),
      ],
    });
    expect(r.run.status).toBe("blocked");
    expect(r.steps).toHaveLength(0);
    expect(existsSync(join(s.repo, "ran.txt"))).toBe(false);
    expect(r.of("spec_validation_error").map((e) => [e.metadata.pointer, e.metadata.error])).toEqual([
      ["/steps/0/policies/0/target_step", 'a loop can only go back: "c" comes after step "a"'],
      ["/steps/1/policies/0/trigger_step", 'policy names step "nowhere", which does not exist'],
      ["/steps/2/policies/0/skip/0", "a loop cannot skip the step it belongs to"],
    ]);
  });

  it("creates a blocked run with pointers for a schema-invalid spec, and runs nothing", async () => {
    const r = await runSpec(s, { steps: [{ id: "a", qa: { policy: "sometimes" } }] });
    expect(r.run.status).toBe("blocked");
    expect(r.steps).toHaveLength(0);
    expect(r.of("spec_validation_error")[0]!.metadata).toMatchObject({ pointer: "/steps/0/qa/policy" });
    expect(r.run.templateConfig.spec_meta).toMatchObject({ status: "invalid" });
  });

  it("strict budget: refuses a call before it starts, and stops after a call that overran", async () => {
    const before = await runSpec(
      s,
      {
        budget: { max_tokens: 5, mode: "strict" },
        steps: [{ id: "big", engine_id: "replay", prompt_ref: "p.md", inputs: { final: "x" } }],
      },
      { "p.md": "word ".repeat(200) },
    );
    expect(before.run.status).toBe("blocked");
    expect(before.of("step_started")).toHaveLength(0);
    expect(before.of("budget_exceeded")[0]!.metadata).toMatchObject({
      scope: "protocol",
      limit: 5,
      when: "before_call",
      phase: "exec",
    });

    const after = await runSpec(
      s,
      {
        steps: [
          {
            id: "spend",
            engine_id: "replay",
            prompt_ref: "p.md",
            budget: { max_tokens: 1000 },
            inputs: { recording: "{{protocol_dir}}/rec.jsonl" },
          },
          shellStep("next", "true"),
        ],
      },
      {
        "p.md": "short",
        "rec.jsonl": recording("done", { input: 4000, cachedInput: 0, output: 1000, reasoning: 0 }),
      },
    );
    expect(after.run.status).toBe("blocked");
    expect(after.status).toEqual({ spend: "failed", next: "pending" });
    expect(after.of("budget_exceeded")[0]!.metadata).toMatchObject({
      scope: "step",
      limit: 1000,
      spent: 5000,
      when: "after_call",
    });
  });

  it("warn mode records the overrun and carries on", async () => {
    const r = await runSpec(
      s,
      {
        budget: { max_tokens: 5, mode: "warn" },
        steps: [{ id: "big", engine_id: "replay", prompt_ref: "p.md", inputs: { final: "x" } }],
      },
      { "p.md": "word ".repeat(50) },
    );
    expect(r.run.status).toBe("completed");
    expect(r.of("budget_warning").length).toBeGreaterThan(0);
  });

  it("kills a hung engine at its timeout and fails the step", async () => {
    const pidFile = join(s.repo, "..", `sleeper-${Date.now()}.pid`);
    const r = await runSpec(s, {
      steps: [shellStep("hang", `sleep 60 & echo $! > ${pidFile}; wait`, { timeout_seconds: 1 })],
    });
    expect(r.run.status).toBe("blocked");
    expect(r.of("engine_error")[0]!.metadata).toMatchObject({ error: { kind: "timeout" } });
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(await waitGone(pid)).toBe(true);
  });

  it("kills a stalled step's process group, retries it per retry.engine_errors, then fails it as stalled", async () => {
    const pidFile = join(s.repo, "..", `stalled-${Date.now()}.pids`);
    const r = await runSpec(s, {
      steps: [
        shellStep("stuck", `echo "working on it"; sleep 60 & echo $! >> ${pidFile}; wait`, {
          idle_timeout_seconds: 0.5,
          retry: { engine_errors: 1 },
        }),
      ],
    });
    expect(r.run.status).toBe("blocked");
    expect(r.status.stuck).toBe("failed");
    expect(r.trail.filter((t) => /^(step_stalled|engine_retry|engine_error|step_failed)/.test(t))).toEqual([
      "step_stalled:stuck",
      "engine_retry:stuck",
      "step_stalled:stuck",
      "engine_error:stuck",
      "step_failed:stuck",
    ]);
    const stalls = r.of("step_stalled").map((e) => e.metadata);
    expect(stalls).toEqual(
      [1, 2].map((call) => ({
        phase: "exec",
        engine_id: "shell",
        model: null,
        attempt: 1,
        call,
        idle_ms: expect.any(Number),
        idle_timeout_ms: 500,
        last_output: "working on it",
        retryable: true,
      })),
    );
    for (const stall of stalls) expect(stall.idle_ms).toBeGreaterThanOrEqual(500);
    expect(r.of("engine_retry")[0]!.metadata).toMatchObject({ attempt: 1, error: { kind: "stalled" } });
    expect(r.of("step_failed")[0]!.metadata).toMatchObject({ reason: "exec_failed", error_kind: "stalled" });
    // each call's sleeper went with its process group
    const pids = readFileSync(pidFile, "utf8").trim().split("\n").map(Number);
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(await waitGone(pid)).toBe(true);
  });

  it("does not stall a step that keeps printing past its idle limit", async () => {
    const r = await runSpec(s, {
      steps: [
        shellStep("chatty", "for i in 1 2 3 4 5 6 7 8 9 10; do echo step $i; sleep 0.2; done", {
          idle_timeout_seconds: 0.5,
          retry: { engine_errors: 0 },
        }),
      ],
    });
    expect(r.run.status).toBe("completed");
    expect(r.of("step_stalled")).toEqual([]);
  });

  it("takes the idle limit from the project's config, which a step turns off with 0, and holds the QA agent to it", async () => {
    const env = { TASKSGODZILLA_IDLE_TIMEOUT_SECONDS: "0.5", TASKSGODZILLA_ENGINE_RETRIES: "0" };
    const t = await scenario(env);
    try {
      const r = await runSpec(t, {
        steps: [
          shellStep("quiet-build", "sleep 1; echo built", { idle_timeout_seconds: 0 }),
          shellStep("judged", "echo work done", {
            qa: { policy: "full", engine_id: "shell", inputs: { command: "sleep 30" } },
          }),
        ],
      });
      expect(r.status).toEqual({ "quiet-build": "completed", judged: "failed" });
      // the first verdict is the quiet build's light QA
      expect(r.of("qa_verdict").at(-1)!.metadata).toMatchObject({
        verdict: "error",
        reason: expect.stringMatching(/QA engine failed \(stalled\)/),
      });
      expect(r.of("step_stalled").map((e) => e.metadata)).toEqual([
        expect.objectContaining({ phase: "qa", engine_id: "shell", call: 1, idle_timeout_ms: 500 }),
      ]);
    } finally {
      await t.close();
    }
  });

  it("fails the step cleanly when the engine crashes with garbage output", async () => {
    const r = await runSpec(
      s,
      {
        steps: [
          shellStep("crash", "head -c 300 /dev/urandom; exit 3"),
          {
            id: "garbage",
            engine_id: "replay",
            prompt_ref: "p.md",
            inputs: { recording: "{{protocol_dir}}/bad.jsonl" },
          },
        ],
      },
      { "p.md": "x", "bad.jsonl": "{not json\n" },
    );
    expect(r.status.crash).toBe("failed");
    expect(r.of("engine_error")[0]!.metadata).toMatchObject({ error: { kind: "crash" }, exit_code: 3 });
    const again = await runSpec(
      s,
      {
        steps: [
          {
            id: "garbage",
            engine_id: "replay",
            prompt_ref: "p.md",
            inputs: { recording: "{{protocol_dir}}/bad.jsonl" },
          },
        ],
      },
      { "p.md": "x", "bad.jsonl": "{not json\n" },
    );
    expect(again.of("engine_error")[0]!.metadata).toMatchObject({
      error: { kind: "bad_output", message: expect.stringMatching(/line 1/) },
    });
  });

  it("pauses on interrupt and resumes where it stopped", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 700);
    const spec = {
      steps: [
        shellStep("quick", "echo q >> order.txt"),
        shellStep("slow", "sleep 5; echo s >> order.txt"),
        shellStep("last", "echo l >> order.txt"),
      ],
    };
    const r = await runSpec(s, spec, {}, controller.signal);
    expect(r.run.status).toBe("paused");
    expect(r.status).toEqual({ quick: "completed", slow: "pending", last: "pending" });
    expect(r.of("step_interrupted")).toHaveLength(1);

    // a paused run stays paused for a runner not asked to resume it (a stale queued job)
    expect((await runnerFor(s).run(r.run.id)).status).toBe("paused");
    const resumed = await runnerFor(s).run(r.run.id, { resume: true });
    expect(resumed.status).toBe("completed");
    expect(readFileSync(join(s.repo, "order.txt"), "utf8")).toBe("q\ns\nl\n");
    expect((await inspect(s.store, r.run.id)).of("resumed")).toHaveLength(1);
  });

  it("step settings beat project config, which beats the environment", async () => {
    s.env = {
      TASKSGODZILLA_EXEC_MODEL: "env-model",
      TASKSGODZILLA_DEFAULT_ENGINE: "replay",
      TASKSGODZILLA_QA_POLICY: "full",
    };
    writeFileSync(
      join(s.repo, "tasksgodzilla.config.yaml"),
      "engine: shell\nmodels:\n  exec: file-model\nqa:\n  policy: light\n",
    );
    const r = await runSpec(s, {
      steps: [
        { id: "a", inputs: { command: "echo a" } },
        { id: "b", model: "step-model", inputs: { command: "echo b" }, qa: { policy: "skip" } },
      ],
    });
    expect(r.run.status).toBe("completed");
    expect(r.of("step_started").map((e) => [e.metadata.engine_id, e.metadata.model])).toEqual([
      ["shell", "file-model"],
      ["shell", "step-model"],
    ]);
    expect(r.of("qa_verdict")[0]!.metadata.policy).toBe("light");
    expect(r.of("qa_skipped")).toHaveLength(1);
  });
});
