import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { planningJsonSchema } from "../../src/planning/plan-schema.js";
import { canonicalJson, specHash } from "../../src/spec/canonical-hash.js";
import { protocolSpecJsonSchema } from "../../src/spec/json-schema.js";
import { normalizePolicies } from "../../src/spec/normalize-policy.js";
import { validateSpec } from "../../src/spec/validate-spec.js";

/** A spec in the original Python format, with its aliases and extra keys. */
const originalFormat = {
  steps: [
    {
      id: "00-setup",
      name: "00-setup.md",
      engine_id: null,
      prompt_ref: "/abs/00-setup.md",
      qa: { policy: "skip", prompt: null },
      step_type: "setup",
      policies: [],
      order: 0,
      outputs: { protocol: "/abs/00-setup.md" },
    },
    {
      id: "plan",
      engine_id: "codex",
      model: "gpt-5.1-codex-max",
      prompt_ref: "prompts/plan.md",
      qa: { policy: null },
      outputs: { aux: { codemachine: "aux/codemachine/plan.md" } },
      exec_timeout_seconds: 1200,
      mirror_path: "x",
      sub_agents: [],
      policies: [
        {
          module_id: "iterate",
          behavior: "loop",
          step_back: 1,
          max_iterations: 2,
          skip_steps: [0],
          condition: "qa_failed",
        },
        { module_id: "t", behavior: "trigger", trigger_agent_id: "00-setup", conditions: ["success"] },
      ],
    },
  ],
  placeholders: { repo: "x" },
  template: { name: "t" },
  metadata: { source: "codemachine" },
  extra_top_level: true,
};

describe("ProtocolSpec schema", () => {
  it("accepts specs in the original format, aliases and extra keys included", () => {
    const r = validateSpec(originalFormat);
    expect(r.errors).toEqual([]);
    expect(r.ok).toBe(true);
  });

  it("reports every error with its JSON pointer and a plain reason", () => {
    const r = validateSpec({
      steps: [
        { id: "", qa: { policy: "sometimes" }, outputs: { protocol: "a", extra: 1 } },
        { id: "b", timeout_seconds: -5, policies: [{ step_back: 1 }] },
        { id: "c", idle_timeout_seconds: -1 },
        { id: "d", idle_timeout_seconds: "5m" },
      ],
    });
    expect(r.ok).toBe(false);
    const byPointer = Object.fromEntries(r.errors.map((e) => [e.pointer, e.message]));
    expect(byPointer["/steps/0/id"]).toBe("must not be empty");
    expect(byPointer["/steps/0/qa/policy"]).toMatch(/must be one of "skip", "light", "full"/);
    expect(byPointer["/steps/0/outputs/extra"]).toBe('unknown field "extra"');
    expect(byPointer["/steps/1/timeout_seconds"]).toBe("must be at least 0");
    expect(byPointer["/steps/2/idle_timeout_seconds"]).toBe("must be at least 0");
    expect(byPointer["/steps/3/idle_timeout_seconds"]).toMatch(/number/);
  });

  it("takes a money limit beside the token one, per step and per protocol, and refuses one that is not positive", () => {
    const ok = validateSpec({
      budget: { max_usd: 5, mode: "strict" },
      steps: [{ id: "a", budget: { max_tokens: 1000, max_usd: 0.25, mode: "warn" } }],
    });
    expect(ok.errors).toEqual([]);
    const bad = validateSpec({ budget: { max_usd: 0 }, steps: [{ id: "a", budget: { max_usd: "lots" } }] });
    const byPointer = Object.fromEntries(bad.errors.map((e) => [e.pointer, e.message]));
    expect(byPointer["/budget/max_usd"]).toMatch(/must be greater than 0/);
    expect(byPointer["/steps/0/budget/max_usd"]).toMatch(/expected number/);
  });

  it("requires at least one step and a steps array", () => {
    expect(validateSpec({ steps: [] }).errors).toEqual([
      { pointer: "/steps", message: "needs at least 1 item(s)" },
    ]);
    expect(validateSpec({}).errors[0]?.pointer).toBe("/steps");
    expect(validateSpec("nope").errors[0]?.pointer).toBe("");
  });

  it("says what it got when a field has the wrong type", () => {
    const byPointer = (input: unknown) =>
      Object.fromEntries(validateSpec(input).errors.map((e) => [e.pointer, e.message]));
    expect(byPointer({ steps: "nope" })["/steps"]).toBe("expected array, got string");
    expect(byPointer({ steps: [{ id: "a", engine_id: 5 }] })["/steps/0/engine_id"]).toBe(
      "expected string, got number",
    );
    expect(byPointer({ steps: [{ name: "a" }] })["/steps/0/id"]).toBe("expected string, but it is missing");
    expect(
      byPointer({ steps: [{ id: "a", policies: [{ step_back: "two" }] }] })["/steps/0/policies/0/step_back"],
    ).toBe("must be a whole number");
  });

  it("checks what a spec says about its own steps: targets exist, loops go back, no self-skip", () => {
    const r = validateSpec({
      steps: [
        {
          id: "a",
          policies: [
            { behavior: "loop", target_step: "b" },
            { behavior: "trigger", trigger_agent_id: "ghost" },
          ],
          directive: { file: "../out.json", alt_files: ["/etc/x.json"] },
        },
        {
          id: "b",
          agent_id: "builder",
          policies: [
            { behavior: "loop", skip: ["b", "nope"], skip_steps: [1, 9] },
            { behavior: "trigger", trigger_agent_id: "builder" },
          ],
        },
      ],
    });
    expect(r.errors).toEqual([
      {
        pointer: "/steps/0/policies/0/target_step",
        message: 'a loop can only go back: "b" comes after step "a"',
      },
      {
        pointer: "/steps/0/policies/1/trigger_agent_id",
        message: 'policy names step "ghost", which does not exist',
      },
      {
        pointer: "/steps/0/directive/file",
        message: 'directive file "../out.json" must be a path inside the worktree',
      },
      {
        pointer: "/steps/0/directive/alt_files/0",
        message: 'directive file "/etc/x.json" must be a path inside the worktree',
      },
      { pointer: "/steps/1/policies/0/skip/0", message: "a loop cannot skip the step it belongs to" },
      { pointer: "/steps/1/policies/0/skip/1", message: 'policy names step "nope", which does not exist' },
      { pointer: "/steps/1/policies/0/skip_steps/0", message: "a loop cannot skip the step it belongs to" },
      { pointer: "/steps/1/policies/0/skip_steps/1", message: "there is no step at index 9" },
    ]);
  });

  it("accepts any policy object the original accepted, applying only the shapes it knows", () => {
    const r = validateSpec({
      steps: [
        { id: "a", timeout_seconds: 0 },
        {
          id: "b",
          policies: [
            {},
            { behavior: { kind: "loop" } },
            { behavior: "loop", id: "l", step_back: "1", max_iterations: "2" },
          ],
        },
      ],
    });
    expect(r.errors).toEqual([]);
    if (!r.ok) return;
    expect(normalizePolicies(r.spec.steps[1]!, r.spec.steps)).toEqual([
      expect.objectContaining({ behavior: "loop", id: "l", stepBack: 1, maxIterations: 2 }),
    ]);
  });

  it("accepts the original's condition objects, null behaviours and non-positive step_back", () => {
    const r = validateSpec({
      steps: [
        { id: "a" },
        {
          id: "b",
          policies: [
            {
              behavior: "loop",
              id: "l",
              condition: { on: "qa_failed" },
              conditions: [{ reason: "FAILURE" }, "x"],
              step_back: -2,
            },
            { behavior: null },
          ],
        },
      ],
    });
    expect(r.errors).toEqual([]);
    if (!r.ok) return;
    const [loop, ...rest] = normalizePolicies(r.spec.steps[1]!, r.spec.steps);
    expect(loop).toMatchObject({ conditions: ["failure", "x", "qa_failed"], stepBack: 0 });
    expect(rest).toEqual([]);
  });

  it("rejects duplicate step ids, naming both places", () => {
    const r = validateSpec({ steps: [{ id: "a" }, { id: "a" }] });
    expect(r.errors).toEqual([
      { pointer: "/steps/1/id", message: 'duplicate step id "a" (also /steps/0/id)' },
    ]);
  });

  it("escapes ~ and / in pointers", () => {
    const r = validateSpec({ steps: [{ id: "a", outputs: { aux: { "x/y~z": 5 } } }] });
    expect(r.errors[0]?.pointer).toBe("/steps/0/outputs/aux/x~1y~0z");
  });

  it("the checked-in JSON Schema is the one generated from the source", () => {
    const checkedIn = JSON.parse(
      readFileSync(new URL("../../schemas/protocol-spec.schema.json", import.meta.url), "utf8"),
    );
    expect(checkedIn).toEqual(protocolSpecJsonSchema());
    const planning = JSON.parse(
      readFileSync(new URL("../../schemas/protocol-planning.schema.json", import.meta.url), "utf8"),
    );
    expect(planning).toEqual(planningJsonSchema());
  });
});

describe("spec hash", () => {
  it("does not depend on key order and changes with content", () => {
    const a = { steps: [{ id: "a", qa: { policy: "skip", reason: "r" } }], version: 1 };
    const b = { version: 1, steps: [{ qa: { reason: "r", policy: "skip" }, id: "a" }] };
    expect(specHash(a)).toBe(specHash(b));
    expect(specHash(a)).toMatch(/^[0-9a-f]{12}$/);
    expect(specHash({ ...a, version: 2 })).not.toBe(specHash(a));
    expect(canonicalJson(b)).toBe('{"steps":[{"id":"a","qa":{"policy":"skip","reason":"r"}}],"version":1}');
  });
});

describe("policy normalisation", () => {
  it("maps the original aliases onto one shape", () => {
    const r = validateSpec(originalFormat);
    if (!r.ok) throw new Error("invalid");
    const [loop, trigger] = normalizePolicies(r.spec.steps[1]!, r.spec.steps);
    expect(loop).toEqual({
      behavior: "loop",
      id: "iterate",
      conditions: ["qa_failed"],
      targetStep: null,
      stepBack: 1,
      maxIterations: 2,
      skip: ["00-setup"],
    });
    expect(trigger).toEqual({
      behavior: "trigger",
      id: "t",
      conditions: ["success"],
      triggerStep: "00-setup",
      inline: true,
      maxIterations: 3,
    });
  });

  it("gives loops without max_iterations a finite limit", () => {
    const [loop] = normalizePolicies({ id: "a", policies: [{ behavior: "loop" }] }, [{ id: "a" }]);
    expect(loop?.behavior === "loop" && loop.maxIterations).toBe(3);
  });
});
