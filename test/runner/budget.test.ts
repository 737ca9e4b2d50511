import { describe, expect, it } from "vitest";
import { checkAfterCall, checkBeforeCall } from "../../src/runner/budget.js";
import { estimatedUsage, estimateTokens } from "../../src/runner/token-estimate.js";

const spent = { step: 50, protocol: 500, project: 5000 };
const strict = (limit: number) => ({ limit, mode: "strict" as const });

describe("budgets", () => {
  it("strict refuses before a call whose estimate would pass a limit, naming the scope", () => {
    const d = checkBeforeCall({ step: strict(100) }, spent, 51);
    expect(d).toEqual({ action: "stop", breach: { scope: "step", limit: 100, spent: 50, estimated: 51 } });
  });

  it("allows a call that lands exactly on the limit", () => {
    expect(checkBeforeCall({ step: strict(100) }, spent, 50)).toEqual({ action: "allow" });
  });

  it("is cumulative: protocol and project limits count what was already spent", () => {
    expect(checkBeforeCall({ protocol: strict(510) }, spent, 11)).toMatchObject({
      action: "stop",
      breach: { scope: "protocol" },
    });
    expect(checkBeforeCall({ project: strict(5000) }, spent, 1)).toMatchObject({
      action: "stop",
      breach: { scope: "project" },
    });
  });

  it("warn records instead of stopping; off ignores", () => {
    expect(checkBeforeCall({ step: { limit: 10, mode: "warn" } }, spent, 1)).toMatchObject({
      action: "warn",
      breach: { scope: "step" },
    });
    expect(checkBeforeCall({ step: { limit: 10, mode: "off" } }, spent, 1)).toEqual({ action: "allow" });
  });

  it("keeps each scope in its own mode: a step's warn or off never loosens a strict protocol limit", () => {
    const limits = { step: { limit: 10, mode: "off" as const }, protocol: strict(505) };
    expect(checkBeforeCall(limits, spent, 6)).toMatchObject({
      action: "stop",
      breach: { scope: "protocol" },
    });
    const warned = { step: { limit: 10, mode: "warn" as const }, protocol: strict(600) };
    expect(checkBeforeCall(warned, spent, 6)).toMatchObject({ action: "warn", breach: { scope: "step" } });
    // a strict breach wins over a warning found first
    expect(checkBeforeCall({ ...warned, project: strict(5001) }, spent, 6)).toMatchObject({
      action: "stop",
      breach: { scope: "project" },
    });
  });

  it("after a call, an overrun stops in strict mode", () => {
    expect(checkAfterCall({ step: strict(49) }, spent)).toEqual({
      action: "stop",
      breach: { scope: "step", limit: 49, spent: 50 },
    });
    expect(checkAfterCall({ step: strict(50) }, spent)).toEqual({ action: "allow" });
  });

  it("estimates with a real tokenizer and flags the estimate", () => {
    expect(estimateTokens("")).toBe(0);
    expect(estimateTokens("hello world")).toBe(2);
    expect(estimatedUsage("hello world", "ok")).toEqual({
      input: 2,
      cachedInput: 0,
      output: 1,
      reasoning: 0,
      estimated: true,
    });
  });
});
