/** Money budget decisions: before a call, at each usage figure during it, after it; and the cap's day. */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { budgetDay, isTimeZone } from "../../src/cost/budget-day.js";
import { type CostTotal, NO_COST } from "../../src/cost/call-cost.js";
import {
  CallBudgetWatch,
  checkMoney,
  type MoneyCheck,
  type MoneyLimits,
  type MoneySpent,
  moneyLimitsFor,
} from "../../src/cost/money-budget.js";
import { PriceTable } from "../../src/cost/price-table.js";
import type { TokenUsage } from "../../src/engines/engine-port.js";

const usd = (n: number): CostTotal => ({ usd: n, partial: false, unknownModels: [] });
const strict = (n: number) => ({ usd: n, mode: "strict" as const });
const warn = (n: number) => ({ usd: n, mode: "warn" as const });
const spent: MoneySpent = { step: usd(0.5), protocol: usd(5), project: usd(50), project_day: usd(8) };
const check = (over: Partial<MoneyCheck>): MoneyCheck => ({
  limits: {},
  spent,
  call: NO_COST,
  checkpoint: "before_call",
  allowUnknown: false,
  ...over,
});
const M = 1_000_000;
const usage = (u: Partial<TokenUsage>): TokenUsage => ({
  input: 0,
  cachedInput: 0,
  output: 0,
  reasoning: 0,
  estimated: false,
  ...u,
});

describe("money budget decisions", () => {
  it("strict refuses a call whose estimate would pass a limit, with the figures", () => {
    const d = checkMoney(check({ limits: { step: strict(1) }, call: usd(0.6) }));
    expect(d).toEqual({
      action: "stop",
      breach: {
        scope: "step",
        mode: "strict",
        kind: "over_limit",
        checkpoint: "before_call",
        limitUsd: 1,
        spentUsd: 0.5,
        callUsd: 0.6,
        partial: false,
        unknownModels: [],
      },
      message: "step money budget $1.00 (strict): $0.50 spent + $0.60 estimated for the next call",
    });
  });

  it("allows a call that lands exactly on the limit", () => {
    expect(checkMoney(check({ limits: { step: strict(1) }, call: usd(0.5) }))).toEqual({
      action: "allow",
      partial: false,
    });
  });

  it("counts what each scope already spent: run, project and the project's day", () => {
    expect(checkMoney(check({ limits: { protocol: strict(5.05) }, call: usd(0.1) }))).toMatchObject({
      action: "stop",
      breach: { scope: "protocol" },
      message: expect.stringMatching(/^run money budget \$5\.05 \(strict\)/),
    });
    expect(checkMoney(check({ limits: { project: strict(50) }, call: usd(0.01) }))).toMatchObject({
      breach: { scope: "project" },
    });
    expect(checkMoney(check({ limits: { project_day: strict(8) }, call: usd(0.01) }))).toMatchObject({
      action: "stop",
      breach: { scope: "project_day" },
      message: expect.stringMatching(/^project daily money budget \$8\.00/),
    });
  });

  it("warn records every limit passed instead of stopping; off ignores", () => {
    const d = checkMoney(check({ limits: { step: warn(0.1), protocol: warn(1) }, call: usd(0.01) }));
    expect(d).toMatchObject({
      action: "warn",
      breaches: [
        { scope: "step", mode: "warn" },
        { scope: "protocol", mode: "warn" },
      ],
    });
    expect(checkMoney(check({ limits: { step: { usd: 0.1, mode: "off" } }, call: usd(1) }))).toEqual({
      action: "allow",
      partial: false,
    });
  });

  it("keeps each scope in its own mode: a strict limit wins over warnings found first", () => {
    const limits: MoneyLimits = { step: warn(0.1), protocol: strict(5.001) };
    expect(checkMoney(check({ limits, call: usd(0.01) }))).toMatchObject({
      action: "stop",
      breach: { scope: "protocol" },
    });
  });

  it("after a call, a strict overrun stops the run; between calls it checks the spend alone", () => {
    const after = checkMoney(
      check({ limits: { step: strict(0.6) }, call: usd(0.2), checkpoint: "after_call" }),
    );
    expect(after).toMatchObject({
      action: "stop",
      message: "step money budget $0.60 (strict): $0.50 spent + $0.20 for this call",
    });
    expect(checkMoney(check({ limits: { step: strict(0.4) } }))).toMatchObject({ action: "stop" });
  });

  describe("an unknown cost", () => {
    const unknownCall: CostTotal = { usd: null, partial: true, unknownModels: ["mystery-model"] };

    it("blocks under a strict money budget, naming the model and the fix", () => {
      const d = checkMoney(check({ limits: { step: strict(10) }, call: unknownCall }));
      expect(d).toMatchObject({ action: "stop", breach: { kind: "unknown_cost", partial: true } });
      expect(d.action === "stop" && d.message).toBe(
        "step money budget $10.00 (strict) cannot be enforced: the cost of mystery-model is unknown (no price) " +
          "beside $0.50 spent + $0.00 estimated for the next call; add its price under prices.models in " +
          "tasksgodzilla.config.* (or set the model), or set budgets.allow_unknown_cost: true",
      );
    });

    it("also blocks when it is in what the scope already spent", () => {
      const earlier: MoneySpent = { protocol: { usd: 1, partial: true, unknownModels: ["old-model"] } };
      expect(
        checkMoney(check({ limits: { protocol: strict(10) }, spent: earlier, call: usd(0.1) })),
      ).toMatchObject({
        action: "stop",
        breach: { kind: "unknown_cost", unknownModels: ["old-model"], spentUsd: 1 },
      });
    });

    it("counts as $0 when the project allows it, and the decision says it was partial", () => {
      expect(
        checkMoney(check({ limits: { step: strict(10) }, call: unknownCall, allowUnknown: true })),
      ).toEqual({
        action: "allow",
        partial: true,
      });
      // the known part still counts
      const partial: CostTotal = { usd: 20, partial: true, unknownModels: ["mystery-model"] };
      expect(
        checkMoney(check({ limits: { step: strict(10) }, call: partial, allowUnknown: true })),
      ).toMatchObject({
        action: "stop",
        breach: { kind: "over_limit", partial: true },
        message: expect.stringMatching(/plus the unknown cost of mystery-model$/),
      });
    });

    it("is a warning under a warn budget, and nothing without a money limit", () => {
      expect(checkMoney(check({ limits: { step: warn(10) }, call: unknownCall }))).toMatchObject({
        action: "warn",
        breaches: [{ kind: "unknown_cost" }],
      });
      expect(checkMoney(check({ call: unknownCall }))).toEqual({ action: "allow", partial: false });
    });
  });
});

describe("the limits that hold for a step", () => {
  const budgets = {
    ...loadConfig(undefined, {}).budgets,
    mode: "strict" as const,
    maxUsdPerStep: 1,
    maxUsdPerProtocol: 10,
    maxUsdPerProject: 100,
    maxUsdPerProjectPerDay: 20,
  };

  it("are the project's, in the project's mode, when the spec sets none", () => {
    expect(moneyLimitsFor(budgets, null, undefined)).toEqual({
      step: strict(1),
      protocol: strict(10),
      project: strict(100),
      project_day: strict(20),
    });
  });

  it("take the spec's max_usd and modes: a step's own, the run's for the step and the run", () => {
    const limits = moneyLimitsFor(budgets, { max_usd: 5, mode: "warn" }, { max_usd: 0.25, mode: "off" });
    expect(limits).toEqual({
      step: { usd: 0.25, mode: "off" },
      protocol: warn(5),
      project: strict(100),
      project_day: strict(20),
    });
    // a step without a mode of its own takes the run's
    expect(moneyLimitsFor(budgets, { mode: "warn" }, {}).step).toEqual(warn(1));
  });

  it("leave out the scopes without a limit", () => {
    const none = loadConfig(undefined, {}).budgets;
    expect(moneyLimitsFor(none, null, null)).toEqual({});
    expect(moneyLimitsFor(none, { max_usd: 3 }, null)).toEqual({ protocol: strict(3) });
  });
});

describe("one call under money budgets", () => {
  const prices = PriceTable.shipped();
  const watch = (limits: MoneyLimits, extra: { allowUnknown?: boolean; requestedModel?: string } = {}) =>
    new CallBudgetWatch({
      prices,
      limits,
      spent: { step: usd(1), protocol: usd(1) },
      allowUnknown: extra.allowUnknown ?? false,
      requestedModel: extra.requestedModel ?? "claude-opus-4-8",
    });

  it("is inactive without a money limit on", () => {
    expect(watch({}).active).toBe(false);
    expect(watch({ step: { usd: 1, mode: "off" } }).active).toBe(false);
    expect(watch({ step: strict(2) }).active).toBe(true);
  });

  it("prices the prompt's estimate on the model asked for before the call", () => {
    // 200k input tokens of claude-opus-4-8 at $5/M: $1 on top of $1 spent
    expect(watch({ step: strict(2) }).beforeCall(200_000)).toEqual({ action: "allow", partial: false });
    expect(watch({ step: strict(1.99) }).beforeCall(200_000)).toMatchObject({
      action: "stop",
      breach: { checkpoint: "before_call", callUsd: 1 },
    });
    expect(watch({ step: strict(5) }, { requestedModel: "mystery-model" }).beforeCall(10)).toMatchObject({
      action: "stop",
      breach: { kind: "unknown_cost", unknownModels: ["mystery-model"] },
    });
  });

  it("stops a call mid-stream once the usage it streamed crosses a strict limit", () => {
    const w = watch({ step: strict(2) });
    // each event: 10k output tokens of claude-opus-4-8 at $25/M = $0.25
    const event = { usage: usage({ output: 10_000 }), model: "claude-opus-4-8" };
    const actions = [1, 2, 3, 4, 5].map(() => w.onUsage(event).action);
    expect(actions).toEqual(["allow", "allow", "allow", "allow", "stop"]);
    expect(w.streamedCost.usd).toBeCloseTo(1.25, 10);
  });

  it("prices streamed usage on the model each event names, else the one asked for", () => {
    const w = watch({ step: strict(100) });
    w.onUsage({ usage: usage({ input: M }), model: "claude-haiku-4-5" });
    w.onUsage({ usage: usage({ input: M }) });
    expect(w.streamedCost).toEqual({ usd: 1 + 5, partial: false, unknownModels: [] });
  });

  it("warns once per scope in a call, and again for a scope not warned yet", () => {
    const w = watch({ step: warn(1.1), protocol: warn(1.5) });
    const event = { usage: usage({ output: 10_000 }), model: "claude-opus-4-8" }; // $0.25
    const seen = [1, 2, 3, 4].map(() => {
      const d = w.onUsage(event);
      return d.action === "warn" ? d.breaches.map((b) => b.scope) : d.action;
    });
    expect(seen).toEqual([["step"], "allow", ["protocol"], "allow"]);
    // after the call: both already warned about in this call
    expect(w.afterCall({ usage: usage({ output: 40_000 }), model: "claude-opus-4-8" })).toEqual({
      action: "allow",
      partial: false,
    });
  });

  it("after the call, prices its final usage per model it ran on", () => {
    const w = watch({ step: strict(7) });
    const d = w.afterCall({
      usage: usage({ input: 2 * M }),
      model: "claude-opus-4-8",
      usageByModel: { "claude-opus-4-8": usage({ input: M }), "claude-haiku-4-5": usage({ input: M }) },
    });
    expect(d).toEqual({ action: "allow", partial: false });
    expect(w.afterCall({ usage: usage({ input: 2 * M }), model: "claude-opus-4-8" })).toMatchObject({
      action: "stop",
      breach: { checkpoint: "after_call", callUsd: 10, spentUsd: 1 },
    });
  });
});

describe("the daily cap's day", () => {
  it("is the calendar day in the project's time zone, DST days included", () => {
    expect(budgetDay(new Date("2026-12-07T22:50:00Z"))).toEqual({
      day: "2026-12-07",
      start: new Date("2026-12-07T00:00:00Z"),
      end: new Date("2026-12-08T00:00:00Z"),
    });
    expect(budgetDay(new Date("2026-12-07T23:50:00Z"), "Europe/Paris")).toEqual({
      day: "2026-12-08",
      start: new Date("2026-12-07T23:00:00Z"),
      end: new Date("2026-12-08T23:00:00Z"),
    });
    // the day clocks go forward has 23 hours
    expect(budgetDay(new Date("2026-03-29T12:00:00Z"), "Europe/Paris")).toEqual({
      day: "2026-03-29",
      start: new Date("2026-03-28T23:00:00Z"),
      end: new Date("2026-03-29T22:00:00Z"),
    });
    expect(budgetDay(new Date("2026-12-08T03:00:00Z"), "America/Los_Angeles").day).toBe("2026-12-07");
  });

  it("knows time zone names and refuses others", () => {
    expect(isTimeZone("Europe/Paris")).toBe(true);
    expect(isTimeZone("Mars/Olympus")).toBe(false);
    expect(() => budgetDay(new Date(), "Mars/Olympus")).toThrow(RangeError);
  });
});
