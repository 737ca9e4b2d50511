/** Agent directive files on the one runner: loop, stop, limit, trigger, pause/resume, error, malformed, execute-once. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { inspect, runnerFor, runSpec, type Scenario, scenario, shellStep } from "./harness.js";

const DIRECTIVE = {
  file: ".codemachine/memory/directive.json",
  alt_files: [".codemachine/memory/behavior.json"],
};
const write = (json: string, file = DIRECTIVE.file) =>
  `mkdir -p .codemachine/memory && echo '${json}' > ${file}`;
const loopPolicy = (max: number, extra: Record<string, unknown> = {}) => [
  {
    behavior: "loop",
    id: "check",
    conditions: ["directive:loop"],
    step_back: 1,
    max_iterations: max,
    ...extra,
  },
];

let s: Scenario;
beforeEach(async () => {
  s = await scenario();
});
afterEach(() => s.close());

describe("agent directives", () => {
  it("plan → build → check: the checker loops twice, then stops; the plan runs once", async () => {
    const check = `n=$(cat checks 2>/dev/null || echo 0); n=$((n+1)); echo $n > checks; if [ $n -le 2 ]; then ${write('{"action":"loop","reason":"tasks left"}')}; else ${write('{"action":"stop","reason":"all done"}')}; fi`;
    const r = await runSpec(s, {
      steps: [
        shellStep("plan", "echo plan >> log.txt", { execute_once: true, directive: DIRECTIVE }),
        shellStep("build", "echo build >> log.txt", { directive: DIRECTIVE }),
        shellStep("check", check, { directive: DIRECTIVE, policies: loopPolicy(5, { step_back: 2 }) }),
      ],
    });
    expect(r.run.status).toBe("completed");
    expect(readFileSync(join(s.repo, "log.txt"), "utf8")).toBe("plan\nbuild\nbuild\nbuild\n");
    const loops = r.of("loop_decision");
    expect(
      loops.map((e) => [
        e.metadata.decision,
        e.metadata.reason,
        e.metadata.iterations,
        e.metadata.execute_once_kept,
      ]),
    ).toEqual([
      ["loop", "directive:loop", 1, ["plan"]],
      ["loop", "directive:loop", 2, ["plan"]],
      ["stop", "directive:stop", undefined, undefined],
    ]);
    // every decision names the directive that led to it
    expect(loops.map((e) => (e.metadata.directive as { action: string }).action)).toEqual([
      "loop",
      "loop",
      "stop",
    ]);
    // the loop ended: its counter starts afresh should the checker be reached again
    expect(r.steps.find((st) => st.stepName === "check")!.runtimeState.loop_counts).toBeUndefined();
    expect(r.of("directive").map((e) => (e.metadata.directive as { action: string }).action)).toEqual([
      "continue",
      "continue",
      "loop",
      "continue",
      "loop",
      "continue",
      "stop",
    ]);
  });

  it("stops exactly at max_iterations when the checker always asks to loop, and blocks", async () => {
    const r = await runSpec(s, {
      steps: [
        shellStep("build", "echo build >> log.txt"),
        shellStep("check", write('{"action":"loop"}'), { directive: DIRECTIVE, policies: loopPolicy(2) }),
      ],
    });
    expect(r.run.status).toBe("blocked");
    expect(readFileSync(join(s.repo, "log.txt"), "utf8")).toBe("build\nbuild\nbuild\n");
    expect(r.of("loop_decision")).toHaveLength(2);
    expect(r.of("loop_limit_reached")[0]!.metadata).toMatchObject({ iterations: 2, max_iterations: 2 });
    // the count is kept on the step: a resumed run does not start counting again
    expect(r.steps.find((st) => st.stepName === "check")!.runtimeState.loop_counts).toEqual({ check: 2 });
  });

  it("runs the step a trigger directive names inline", async () => {
    const r = await runSpec(s, {
      steps: [
        shellStep(
          "work",
          `echo work >> log.txt; ${write('{"action":"trigger","triggerAgentId":"commit"}')}`,
          { directive: DIRECTIVE },
        ),
        shellStep("after", "echo after >> log.txt"),
        shellStep("commit", "echo commit >> log.txt"),
      ],
    });
    expect(r.run.status).toBe("completed");
    expect(readFileSync(join(s.repo, "log.txt"), "utf8")).toBe("work\ncommit\nafter\n");
    expect(r.of("trigger_decision")[0]!.metadata).toMatchObject({
      reason: "directive:trigger",
      target_step_id: "commit",
      inline_depth: 1,
    });
  });

  it("pauses on checkpoint and resumes at the next step", async () => {
    const spec = {
      steps: [
        shellStep(
          "review",
          `echo review >> log.txt; ${write('{"action":"checkpoint","reason":"look at it"}', ".codemachine/memory/behavior.json")}`,
          { directive: DIRECTIVE },
        ),
        shellStep("next", "echo next >> log.txt"),
      ],
    };
    const r = await runSpec(s, spec);
    expect(r.run.status).toBe("paused");
    expect(r.status).toEqual({ review: "completed", next: "pending" });
    expect(r.of("paused")[0]!.message).toMatch(/checkpoint: look at it/);
    const resumed = await runnerFor(s).run(r.run.id, { resume: true });
    expect(resumed.status).toBe("completed");
    expect(readFileSync(join(s.repo, "log.txt"), "utf8")).toBe("review\nnext\n");
  });

  it("fails the step on an error directive or a malformed file, never a silent continue", async () => {
    const err = await runSpec(s, {
      steps: [shellStep("a", write('{"action":"error","reason":"tests are red"}'), { directive: DIRECTIVE })],
    });
    expect(err.run.status).toBe("blocked");
    expect(err.of("step_failed")[0]!.message).toMatch(/the agent reported an error: tests are red/);
    const bad = await runSpec(s, {
      steps: [shellStep("a", write('{"action":"explode"}'), { directive: DIRECTIVE })],
    });
    expect(bad.run.status).toBe("blocked");
    expect(bad.of("directive_invalid")[0]!.message).toMatch(/directive\.json is malformed: action/);
    const notJson = await runSpec(s, { steps: [shellStep("a", write("{loop"), { directive: DIRECTIVE })] });
    expect((await inspect(s.store, notJson.run.id)).of("directive_invalid")[0]!.message).toMatch(
      /not valid JSON/,
    );
  });
});
