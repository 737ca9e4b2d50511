/** The price table, its matching rules and overrides, and what a model's usage costs. */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  estimatePromptCost,
  formatCost,
  formatUsd,
  priceCall,
  priceUsage,
  totalCost,
} from "../../src/cost/call-cost.js";
import { PriceTableSpec } from "../../src/cost/price-schema.js";
import {
  candidateNames,
  PriceTable,
  PriceTableError,
  priceTableFor,
  SHIPPED_PRICES_FILE,
} from "../../src/cost/price-table.js";
import { claudeCodeAdapter } from "../../src/engines/cli/claude-code-adapter.js";
import type { CallContext } from "../../src/engines/cli/cli-adapter.js";
import type { EngineRequest, TokenUsage } from "../../src/engines/engine-port.js";

const shipped = PriceTable.shipped();
const usage = (u: Partial<TokenUsage>): TokenUsage => ({
  input: 0,
  cachedInput: 0,
  output: 0,
  reasoning: 0,
  estimated: false,
  ...u,
});
const M = 1_000_000;
const dir = () => mkdtempSync(join(tmpdir(), "tgz-prices-"));

describe("the shipped price table", () => {
  it("is a valid, versioned and dated table covering the models the four engines run", () => {
    const spec = PriceTableSpec.parse(JSON.parse(readFileSync(SHIPPED_PRICES_FILE, "utf8")));
    expect(spec.version).toBeGreaterThanOrEqual(1);
    expect(spec.date).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(shipped.describe()).toBe(`v${spec.version} (${spec.date})`);
    for (const model of [
      "gpt-5.5",
      "gpt-5.3-codex",
      "claude-opus-4-8",
      "claude-sonnet-4-5",
      "gemini-2.5-flash",
    ])
      expect(shipped.find(model)?.key).toBe(model);
    for (const [key, price] of Object.entries(spec.models)) {
      expect(price.provider, key).toMatch(/^(openai|anthropic|google)$/);
      // a cache read never costs more than fresh input
      expect(price.cached_input ?? price.input, key).toBeLessThanOrEqual(price.input);
    }
  });
});

describe("matching a model name to its price", () => {
  it.each([
    ["gpt-5.5", "gpt-5.5"],
    ["GPT-5.5", "gpt-5.5"],
    ["claude-opus-4-1-20250805", "claude-opus-4-1"],
    ["claude-opus-4-8-20261120", "claude-opus-4-8"],
    ["claude-haiku-4-5-20251001", "claude-haiku-4-5"],
    ["claude-opus-4-1@20250805", "claude-opus-4-1"],
    ["claude-3-7-sonnet-latest", "claude-3-7-sonnet"],
    ["claude-sonnet-4-5[1m]", "claude-sonnet-4-5"],
    ["claude-opus-4-0", "claude-opus-4"],
    ["gpt-4o-2024-08-06", "gpt-4o"],
    ["openai/gpt-5", "gpt-5"],
    ["anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"],
    ["opencode/gpt-5.1-codex", "gpt-5.1-codex"],
    ["openrouter/anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"],
    ["google/gemini-2.5-pro", "gemini-2.5-pro"],
    ["models/gemini-2.5-flash", "gemini-2.5-flash"],
    ["gemini-2.0-flash-001", "gemini-2.0-flash"],
    ["gemini-3.1-pro-preview", "gemini-3.1-pro"],
    ["gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash"],
  ])("%s is priced as %s", (model, key) => {
    expect(shipped.find(model)?.key).toBe(key);
  });

  it.each([
    // another model of the family, not its neighbour
    "gpt-5.6-sol",
    "gpt-5.5x",
    "claude-opus-4-9",
    // billed by a subscription or a cloud's own prices: never guessed from the provider's list
    "github-copilot/gpt-5",
    "amazon-bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0",
    "fake/fake-model",
  ])("%s has no price", (model) => {
    expect(shipped.find(model)).toBeUndefined();
  });

  it("tries the names in order, most specific first", () => {
    expect(candidateNames("OpenRouter/anthropic/claude-sonnet-4.5-20250929")).toEqual([
      "openrouter/anthropic/claude-sonnet-4.5-20250929",
      "claude-sonnet-4.5-20250929",
      "claude-sonnet-4.5",
      "claude-sonnet-4-5",
    ]);
  });
});

describe("pricing usage", () => {
  // every kind of token at its own price, so each one counted twice or left out shows
  const table = shipped.with(
    { "test-model": { input: 1, cached_input: 0.1, cache_write: 1.25, output: 4, reasoning: 8 } },
    "config",
  );

  it("prices cache reads, cache writes and reasoning apart, counting no token twice", () => {
    const cost = priceUsage(
      table,
      "test-model",
      usage({ input: 10 * M, cachedInput: 6 * M, cacheWrite: 1 * M, output: 3 * M, reasoning: 1 * M }),
    );
    // fresh input 3M × 1 + cached 6M × 0.1 + written 1M × 1.25 + answer 2M × 4 + reasoning 1M × 8
    expect(cost).toMatchObject({
      known: true,
      model: "test-model",
      price: { key: "test-model", source: "config" },
    });
    expect(cost.usd).toBeCloseTo(3 + 0.6 + 1.25 + 8 + 8, 10);
  });

  it("charges cached and reasoning tokens at the input and output prices when the table gives none", () => {
    const plain = shipped.with({ plain: { input: 2, output: 10 } }, "config");
    const cost = priceUsage(
      plain,
      "plain",
      usage({ input: M, cachedInput: M / 2, output: M, reasoning: M / 2 }),
    );
    expect(cost.usd).toBeCloseTo(2 + 10, 10);
  });

  it("prices GPT-5.5 with its cached input at a tenth", () => {
    const cost = priceUsage(shipped, "gpt-5.5", usage({ input: M, cachedInput: M / 2, output: M / 10 }));
    expect(cost.usd).toBeCloseTo(0.5 * 5 + 0.5 * 0.5 + 0.1 * 30, 10);
  });

  it("clamps figures an engine reported inconsistently instead of charging a token twice", () => {
    const cost = priceUsage(
      table,
      "test-model",
      usage({ input: M, cachedInput: 2 * M, output: M, reasoning: 3 * M }),
    );
    expect(cost.usd).toBeCloseTo(0.1 + 8, 10);
  });

  it("gives an unpriced model an unknown cost, never $0, and says why", () => {
    const cost = priceUsage(shipped, "gpt-9-secret", usage({ input: 100, output: 10 }));
    expect(cost).toEqual({
      known: false,
      usd: null,
      model: "gpt-9-secret",
      reason: expect.stringContaining('no price for model "gpt-9-secret"'),
    });
    expect(priceUsage(shipped, undefined, usage({ input: 1, output: 1 }))).toMatchObject({
      known: false,
      reason: "the engine named no model and none was asked for",
    });
  });

  it("costs $0 for usage without tokens, whatever the model (a shell step)", () => {
    expect(priceUsage(shipped, undefined, usage({}))).toEqual({
      known: true,
      usd: 0,
      model: null,
      price: null,
    });
  });

  it("estimates a prompt's cost as uncached input", () => {
    expect(estimatePromptCost(shipped, "claude-sonnet-4-5", 2 * M).usd).toBeCloseTo(6, 10);
  });

  it("agrees with the cost Claude Code reports itself, per model, on a recorded call with a subagent", () => {
    const stream = readFileSync(
      join(
        import.meta.dirname,
        "..",
        "engines",
        "fixtures",
        "agent-streams",
        "claude-subagent-model.stream.jsonl",
      ),
      "utf8",
    )
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const d = dir();
    const parser = claudeCodeAdapter.parser(
      {} as EngineRequest,
      {
        settings: {},
        home: d,
        userHome: d,
        scratch: d,
        stateDir: d,
      } as CallContext,
    );
    for (const e of stream) parser.event(e);
    const parts = priceCall(shipped, { requestedModel: "claude-opus-4-1", ...parser.summary() });
    const reported = (stream.at(-1)!.modelUsage ?? {}) as Record<string, { costUSD: number }>;
    expect(parts.map((p) => [p.model, p.cost.usd])).toEqual([
      ["claude-opus-4-8-20261120", expect.closeTo(reported["claude-opus-4-8"]!.costUSD, 12)],
      ["claude-haiku-4-5-20251001", expect.closeTo(reported["claude-haiku-4-5-20251001"]!.costUSD, 12)],
    ]);
  });
});

describe("pricing an engine call", () => {
  it("prices each model's part when the call used several", () => {
    const parts = priceCall(shipped, {
      requestedModel: "claude-opus-4-1",
      model: "claude-opus-4-8",
      usage: usage({ input: 2 * M, output: 2 * M }),
      usageByModel: {
        "claude-opus-4-8": usage({ input: M, output: M }),
        "claude-haiku-4-5": usage({ input: M, output: M }),
      },
    });
    expect(parts.map((p) => [p.model, p.cost.usd])).toEqual([
      ["claude-opus-4-8", 30],
      ["claude-haiku-4-5", 6],
    ]);
  });

  it("prices on the model the engine reported, else on the one asked for", () => {
    const [ran] = priceCall(shipped, {
      requestedModel: "claude-opus-4-1",
      model: "claude-opus-4-8",
      usage: usage({ input: M }),
    });
    expect(ran).toMatchObject({ model: "claude-opus-4-8", cost: { usd: 5 } });
    const [asked] = priceCall(shipped, { requestedModel: "claude-opus-4-1", usage: usage({ input: M }) });
    expect(asked).toMatchObject({ model: "claude-opus-4-1", cost: { usd: 15 } });
    expect(priceCall(shipped, { requestedModel: "gpt-5.5" })).toEqual([]);
  });
});

describe("totals", () => {
  const known = priceUsage(shipped, "gpt-5.5", usage({ input: M }));
  const unknown = priceUsage(shipped, "mystery-model", usage({ input: M }));
  const unnamed = priceUsage(shipped, null, usage({ input: M }));

  it("add up known costs", () => {
    expect(totalCost([known, known])).toEqual({ usd: 10, partial: false, unknownModels: [] });
    expect(formatCost(totalCost([known, known]))).toBe("$10.00");
  });

  it("are partial with an unknown part: the known part is a lower bound, the unpriced models named", () => {
    const t = totalCost([known, unknown, unnamed]);
    expect(t).toEqual({ usd: 5, partial: true, unknownModels: ["mystery-model", "(engine default)"] });
    expect(formatCost(t)).toBe("≥ $5.00 (no price for mystery-model, (engine default))");
  });

  it("are unknown, not $0, when nothing in them is known, and stay partial when summed again", () => {
    const t = totalCost([unknown]);
    expect(t).toEqual({ usd: null, partial: true, unknownModels: ["mystery-model"] });
    expect(formatCost(t)).toBe("unknown (no price for mystery-model)");
    expect(totalCost([t, known])).toEqual({ usd: 5, partial: true, unknownModels: ["mystery-model"] });
    expect(totalCost([])).toEqual({ usd: 0, partial: false, unknownModels: [] });
  });

  it("show a cheap call's cost instead of rounding it to nothing", () => {
    expect(formatUsd(0.002019)).toBe("$0.002019");
    expect(formatUsd(1e-7)).toBe("$0.0000001");
    expect(formatUsd(12.345)).toBe("$12.35");
  });
});

describe("overrides", () => {
  it("inline prices replace a shipped model's and add new ones, aliases included", () => {
    const table = priceTableFor({
      files: [],
      models: {
        "gpt-5.5": { input: 4, cached_input: 0.4, output: 24, note: "negotiated" },
        "local-coder": { input: 0, output: 0, aliases: ["coder"] },
      },
    });
    expect(table.find("gpt-5.5")).toMatchObject({ source: "config", price: { input: 4, output: 24 } });
    expect(table.find("openai/gpt-5.5-2026-04-23")).toMatchObject({ key: "gpt-5.5", price: { input: 4 } });
    expect(priceUsage(table, "coder", usage({ input: M, output: M }))).toMatchObject({ known: true, usd: 0 });
    expect(table.find("claude-opus-4-8")?.source).toBe("shipped");
    expect(table.describe()).toBe(`${PriceTable.shipped().describe()} + config`);
  });

  it("lays a team's table files (JSON or YAML) over the shipped one, inline prices over both", () => {
    const d = dir();
    const json = join(d, "team.json");
    writeFileSync(
      json,
      JSON.stringify({
        version: 3,
        date: "2026-11-01",
        currency: "USD",
        unit: "per_million_tokens",
        models: { "claude-opus-4-8": { input: 4, output: 20 }, "acme/coder": { input: 1, output: 2 } },
      }),
    );
    const yaml = join(d, "more.yaml");
    writeFileSync(
      yaml,
      "version: 1\ndate: 2026-11-02\ncurrency: USD\nunit: per_million_tokens\nmodels:\n  acme/coder: { input: 3, output: 6 }\n",
    );
    const table = priceTableFor({
      files: [json, yaml],
      models: { "claude-opus-4-8": { input: 6, output: 30 } },
    });
    expect(table.find("acme/coder")).toMatchObject({ source: yaml, price: { input: 3 } });
    expect(table.find("claude-opus-4-8")).toMatchObject({ source: "config", price: { input: 6 } });
    // the shipped table's version is what the costs were priced with, the layers said beside it
    expect(table.version).toBe(PriceTable.shipped().version);
    expect(table.layers).toEqual([json, yaml, "config"]);
  });

  it("refuses a table file that is not valid, naming the file and each bad field", () => {
    const d = dir();
    const bad = join(d, "bad.json");
    writeFileSync(
      bad,
      JSON.stringify({
        version: 1,
        date: "yesterday",
        currency: "USD",
        unit: "per_million_tokens",
        models: { x: { input: -1 }, y: { input: 1, output: 2, cached: 1 } },
      }),
    );
    const err = (() => {
      try {
        priceTableFor({ files: [bad], models: {} });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(PriceTableError);
    const message = (err as Error).message;
    expect(message).toContain(`${bad}: invalid price table`);
    expect(message).toMatch(/\/date: /);
    expect(message).toMatch(/\/models\/x\/input: .*>=0/);
    expect(message).toMatch(/\/models\/x\/output: /);
    expect(message).toMatch(/\/models\/y: .*"cached"/);
    expect(() => priceTableFor({ files: [join(d, "missing.json")], models: {} })).toThrow(
      /missing\.json: cannot read the price table/,
    );
    writeFileSync(join(d, "broken.json"), "{ not json");
    expect(() => PriceTable.fromFile(join(d, "broken.json"))).toThrow(
      /broken\.json: cannot read the price table/,
    );
  });
});
