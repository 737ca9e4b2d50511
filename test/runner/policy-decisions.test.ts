import { describe, expect, it } from "vitest";
import { decideLoop, decideTrigger, policyApplies } from "../../src/runner/policy-decisions.js";
import type { LoopPolicy, TriggerPolicy } from "../../src/spec/normalize-policy.js";

const steps = ["a", "b", "c", "d"].map((id, index) => ({
  id,
  index,
  status: index < 2 ? "completed" : index === 2 ? "failed" : "pending",
}));
const loop = (over: Partial<LoopPolicy> = {}): LoopPolicy => ({
  behavior: "loop",
  id: "L",
  conditions: [],
  targetStep: null,
  stepBack: 1,
  maxIterations: 2,
  skip: [],
  ...over,
});
const trigger = (over: Partial<TriggerPolicy> = {}): TriggerPolicy => ({
  behavior: "trigger",
  id: "T",
  conditions: [],
  triggerStep: "d",
  inline: true,
  maxIterations: 3,
  ...over,
});
const current = steps[2]!;

describe("loop decisions", () => {
  it("goes back step_back steps and resets the range up to the current step, not later steps", () => {
    const d = decideLoop([loop()], current, steps, {}, "qa_failed");
    expect(d).toMatchObject({
      kind: "loop",
      targetStep: "b",
      targetIndex: 1,
      reset: ["b", "c"],
      iterations: 1,
      maxIterations: 2,
    });
  });

  it("goes back to a named target step", () => {
    const d = decideLoop([loop({ targetStep: "a" })], current, steps, {}, "qa_failed");
    expect(d).toMatchObject({ kind: "loop", targetStep: "a", reset: ["a", "b", "c"] });
  });

  it("step_back 0 re-runs only the current step", () => {
    expect(decideLoop([loop({ stepBack: 0 })], current, steps, {}, "qa_failed")).toMatchObject({
      kind: "loop",
      targetStep: "c",
      reset: ["c"],
    });
  });

  it("never goes before the first step", () => {
    expect(decideLoop([loop({ stepBack: 10 })], current, steps, {}, "qa_failed")).toMatchObject({
      targetStep: "a",
    });
  });

  it("leaves skip-listed steps out of the reset", () => {
    expect(
      decideLoop([loop({ targetStep: "a", skip: ["b"] })], current, steps, {}, "qa_failed"),
    ).toMatchObject({ reset: ["a", "c"] });
  });

  it("stops at max_iterations using the persisted counter", () => {
    expect(decideLoop([loop()], current, steps, { L: 1 }, "qa_failed")).toMatchObject({
      kind: "loop",
      iterations: 2,
    });
    expect(decideLoop([loop()], current, steps, { L: 2 }, "qa_failed")).toEqual({
      kind: "limit",
      policy: loop(),
      iterations: 2,
      maxIterations: 2,
    });
    expect(decideLoop([loop({ maxIterations: 0 })], current, steps, {}, "qa_failed")).toMatchObject({
      kind: "limit",
    });
  });

  it("applies only when its conditions match, and reports the ones skipped", () => {
    const onlyQa = loop({ conditions: ["qa_failed"] });
    expect(decideLoop([onlyQa], current, steps, {}, "exec_failed")).toEqual({
      kind: "none",
      skipped: [{ policy: onlyQa, conditions: ["qa_failed"] }],
    });
    expect(decideLoop([loop({ conditions: ["failure"] })], current, steps, {}, "exec_failed").kind).toBe(
      "loop",
    );
    expect(
      decideLoop([loop({ conditions: ["directive:loop"] })], current, steps, {}, "directive:loop").kind,
    ).toBe("loop");
  });

  it("the first matching policy decides", () => {
    const d = decideLoop(
      [loop({ id: "x", conditions: ["exec_failed"] }), loop({ id: "y" }), loop({ id: "z" })],
      current,
      steps,
      {},
      "qa_failed",
    );
    expect(d.kind === "loop" && d.policy.id).toBe("y");
  });

  it("no loop policy: nothing to do", () => {
    expect(decideLoop([trigger()], current, steps, {}, "qa_failed")).toEqual({ kind: "none", skipped: [] });
  });
});

describe("trigger decisions", () => {
  it("runs inline one level deeper", () => {
    expect(decideTrigger([trigger()], ["c"], 0, 3, {}, "qa_passed")).toMatchObject({
      kind: "inline",
      depth: 1,
      count: 1,
    });
  });

  it("queues instead of going past the depth guard", () => {
    expect(decideTrigger([trigger()], ["a", "b", "c"], 3, 3, {}, "qa_passed")).toMatchObject({
      kind: "enqueue",
      cause: "depth_exceeded",
      depth: 3,
    });
    expect(decideTrigger([trigger()], ["c"], 0, 0, {}, "qa_passed")).toMatchObject({
      kind: "enqueue",
      cause: "depth_exceeded",
    });
  });

  it("queues when the policy says inline: false", () => {
    expect(decideTrigger([trigger({ inline: false })], ["c"], 0, 3, {}, "qa_passed")).toMatchObject({
      kind: "enqueue",
      cause: "not_inline",
    });
  });

  it("detects cycles, including a step triggering itself", () => {
    expect(decideTrigger([trigger({ triggerStep: "c" })], ["c"], 0, 3, {}, "qa_passed")).toMatchObject({
      kind: "cycle",
      chain: ["c", "c"],
    });
    expect(decideTrigger([trigger({ triggerStep: "a" })], ["a", "c"], 1, 3, {}, "qa_passed")).toMatchObject({
      kind: "cycle",
      chain: ["a", "c", "a"],
    });
  });

  it("stops firing after max_iterations", () => {
    expect(decideTrigger([trigger()], ["c"], 0, 3, { T: 3 }, "qa_passed")).toMatchObject({
      kind: "limit",
      count: 3,
      maxIterations: 3,
    });
  });

  it("fires on success by default and never on failure unless asked", () => {
    expect(policyApplies(trigger(), "qa_passed")).toBe(true);
    expect(policyApplies(trigger(), "qa_failed")).toBe(false);
    expect(policyApplies(trigger({ conditions: ["failure"] }), "exec_failed")).toBe(true);
    expect(decideTrigger([trigger({ conditions: ["qa_failed"] })], ["c"], 0, 3, {}, "qa_passed")).toEqual({
      kind: "none",
    });
  });
});
