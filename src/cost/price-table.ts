/**
 * Model prices: the shipped, versioned table with whatever a team adds or replaces over it, and the
 * rules that find a model's price from the name an engine reports (docs/cost.md, "Matching").
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { InvalidInputError } from "../shared/errors.js";
import { jsonPointer } from "../spec/validate-spec.js";
import { type ModelPriceSpec, PriceTableSpec } from "./price-schema.js";

/** The table shipped with the package. */
export const SHIPPED_PRICES_FILE = fileURLToPath(new URL("../../prices/model-prices.json", import.meta.url));

export class PriceTableError extends InvalidInputError {}

/** A model's prices in USD per million tokens, each kind of token with its own. */
export interface ModelPrice {
  input: number;
  cachedInput: number;
  cacheWrite: number;
  output: number;
  reasoning: number;
}

/** The price a model name resolved to, and where it came from. */
export interface PriceMatch {
  /** The table entry's name (the model name given, after the matching rules). */
  key: string;
  price: ModelPrice;
  /** `shipped`, a table file's path, or `config` (inline prices). */
  source: string;
}

interface Entry {
  key: string;
  aliases: string[];
  price: ModelPrice;
  source: string;
}

/**
 * Provider prefixes whose models are billed at the provider's own list price, so `openai/gpt-5` is
 * priced as `gpt-5`. Other prefixes (github-copilot, amazon-bedrock, azure …) bill differently and
 * stay unknown unless a price is configured for the full name.
 */
const PASS_THROUGH_PREFIXES = new Set([
  "openai",
  "anthropic",
  "google",
  "gemini",
  "models",
  "opencode",
  "openrouter",
]);

/** A dated snapshot or release tag at the end of a model name. */
const SNAPSHOT_SUFFIXES = [
  /@\d{8}$/, // Vertex: claude-opus-4-1@20250805
  /-\d{8}$/, // Anthropic: claude-opus-4-1-20250805
  /-\d{4}-\d{2}-\d{2}$/, // OpenAI: gpt-4o-2024-08-06
  /-\d{3,4}$/, // gemini-2.0-flash-001, gpt-4-0613
  /-(latest|preview|exp)(-\d{2,4})*$/, // claude-3-7-sonnet-latest, gemini-2.5-flash-preview-09-2025
];

function stripProviders(name: string): string {
  const parts = name.split("/");
  while (parts.length > 1 && PASS_THROUGH_PREFIXES.has(parts[0]!)) parts.shift();
  return parts.join("/");
}

function stripSnapshot(name: string): string {
  for (let changed = true; changed; ) {
    changed = false;
    for (const suffix of SNAPSHOT_SUFFIXES) {
      const shorter = name.replace(suffix, "");
      if (shorter !== name && shorter.length > 0) {
        name = shorter;
        changed = true;
      }
    }
  }
  return name;
}

/**
 * The names a model is looked up under, most specific first: as given; without pass-through provider
 * prefixes; without a bracketed variant (`[1m]`); without a dated snapshot or release tag; with dots
 * between digits as dashes (`claude-sonnet-4.5`, OpenRouter's spelling of `claude-sonnet-4-5`).
 */
export function candidateNames(model: string): string[] {
  const steps = [
    (n: string) => n.trim().toLowerCase(),
    stripProviders,
    (n: string) => n.replace(/\[[^\]]*\]$/, ""),
    stripSnapshot,
    (n: string) => n.replace(/(\d)\.(\d)/g, "$1-$2"),
  ];
  const names: string[] = [];
  let name = model;
  for (const step of steps) {
    name = step(name);
    if (name && !names.includes(name)) names.push(name);
  }
  return names;
}

function toPrice(p: ModelPriceSpec): ModelPrice {
  return {
    input: p.input,
    cachedInput: p.cached_input ?? p.input,
    cacheWrite: p.cache_write ?? p.input,
    output: p.output,
    reasoning: p.reasoning ?? p.output,
  };
}

function parseTableFile(path: string): PriceTableSpec {
  let raw: unknown;
  try {
    const text = readFileSync(path, "utf8");
    raw = /\.ya?ml$/.test(path) ? YAML.parse(text) : JSON.parse(text);
  } catch (err) {
    throw new PriceTableError(`${path}: cannot read the price table: ${(err as Error).message}`);
  }
  const parsed = PriceTableSpec.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${jsonPointer(i.path) || "/"}: ${i.message}`);
    throw new PriceTableError(`${path}: invalid price table\n${lines.join("\n")}`);
  }
  return parsed.data;
}

export class PriceTable {
  private readonly index = new Map<string, Entry>();

  private constructor(
    /** The shipped table's version and date: what a recorded cost was priced with. */
    readonly version: number,
    readonly date: string,
    /** The layers over the shipped table, in the order applied. */
    readonly layers: readonly string[],
    private readonly entries: readonly Entry[],
  ) {
    // a later entry (from a layer over the shipped table) takes over its names from an earlier one
    for (const e of entries) for (const name of [e.key, ...e.aliases]) this.index.set(name, e);
  }

  /** The table shipped with the package, read once. */
  static shipped(): PriceTable {
    shippedTable ??= PriceTable.fromFile(SHIPPED_PRICES_FILE, "shipped");
    return shippedTable;
  }

  /** A table file of its own (the shipped format); throws PriceTableError naming what is wrong. */
  static fromFile(path: string, source = path): PriceTable {
    const spec = parseTableFile(path);
    return new PriceTable(spec.version, spec.date, [], entriesOf(spec.models, source));
  }

  /** This table with `models` laid over it (a name already priced is replaced), from `source`. */
  with(models: Record<string, ModelPriceSpec>, source: string): PriceTable {
    return new PriceTable(
      this.version,
      this.date,
      [...this.layers, source],
      [...this.entries, ...entriesOf(models, source)],
    );
  }

  /** This table with a table file's models laid over it. */
  withFile(path: string): PriceTable {
    return this.with(parseTableFile(path).models, path);
  }

  /** The price of a model by the matching rules, or undefined when the table has none. */
  find(model: string): PriceMatch | undefined {
    for (const name of candidateNames(model)) {
      const e = this.index.get(name);
      if (e) return { key: e.key, price: e.price, source: e.source };
    }
    return undefined;
  }

  /** `v1 (2026-12-01)`, with the layers over it: how a cost figure was priced. */
  describe(): string {
    const base = `v${this.version} (${this.date})`;
    return this.layers.length > 0 ? `${base} + ${this.layers.join(" + ")}` : base;
  }
}

let shippedTable: PriceTable | undefined;

function entriesOf(models: Record<string, ModelPriceSpec>, source: string): Entry[] {
  const name = (n: string) => n.trim().toLowerCase();
  return Object.entries(models).map(([key, p]) => ({
    key: name(key),
    aliases: (p.aliases ?? []).map(name),
    price: toPrice(p),
    source,
  }));
}

/** Where a project's prices come from, resolved from the environment and its config file. */
export interface PriceSettings {
  /** Table files laid over the shipped table, in order (TASKSGODZILLA_PRICES_FILE, then `prices.file`). */
  files: string[];
  /** `prices.models` of the config file, laid over everything else. */
  models: Record<string, ModelPriceSpec>;
}

/** The shipped table with a project's files and inline prices over it; throws PriceTableError. */
export function priceTableFor(settings: PriceSettings): PriceTable {
  let table = PriceTable.shipped();
  for (const file of settings.files) table = table.withFile(file);
  if (Object.keys(settings.models).length > 0) table = table.with(settings.models, "config");
  return table;
}
