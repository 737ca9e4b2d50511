/**
 * The shape of a price table (the shipped `prices/model-prices.json`, or a team's own file) and of the
 * `prices` section of tasksgodzilla.config.*. Prices are USD per million tokens, as providers publish them.
 */
import { z } from "zod";

const Usd = z.number().nonnegative().describe("USD per million tokens.");

export const ModelPriceSpec = z
  .strictObject({
    provider: z.string().min(1).optional().describe("Who publishes the price (openai, anthropic, google …)."),
    input: Usd.describe("Prompt tokens that were neither read from nor written to the prompt cache."),
    cached_input: Usd.optional().describe("Prompt tokens read from the prompt cache. Default: `input`."),
    cache_write: Usd.optional().describe(
      "Prompt tokens written to the prompt cache (Anthropic: 5-minute writes). Default: `input`.",
    ),
    output: Usd.describe("Output tokens other than reasoning."),
    reasoning: Usd.optional().describe("Reasoning (thinking) output tokens. Default: `output`."),
    aliases: z.array(z.string().min(1)).optional().describe("Other names of the same model."),
    note: z.string().optional().describe("What the price leaves out (e.g. a long-prompt tier)."),
  })
  .describe("One model's prices.");

export const PriceTableSpec = z
  .strictObject({
    $schema: z.string().optional(),
    version: z.number().int().positive().describe("Bumped whenever a price changes."),
    date: z.iso.date().describe("When the prices were taken from the providers' pages (YYYY-MM-DD)."),
    currency: z.literal("USD"),
    unit: z.literal("per_million_tokens"),
    sources: z.record(z.string(), z.url()).optional().describe("Each provider's pricing page."),
    models: z.record(z.string().min(1), ModelPriceSpec).describe("Prices by model name."),
  })
  .describe("A TasksGodzilla model price table.");

/** `prices` in tasksgodzilla.config.*: a table file of the team's, and/or prices given inline. */
export const PricesConfig = z
  .strictObject({
    file: z
      .string()
      .min(1)
      .optional()
      .describe("A price table file (the shipped table's format), relative to the repository."),
    models: z
      .record(z.string().min(1), ModelPriceSpec)
      .optional()
      .describe("Prices by model name, over the shipped table and `file`."),
  })
  .describe("Model prices that extend or replace the shipped table.");

export type ModelPriceSpec = z.infer<typeof ModelPriceSpec>;
export type PriceTableSpec = z.infer<typeof PriceTableSpec>;
export type PricesConfig = z.infer<typeof PricesConfig>;

export const PRICE_TABLE_SCHEMA_ID = "https://tasksgodzilla.dev/schemas/model-prices.schema.json";

/** The published JSON Schema of a price table file, generated from the zod source. */
export function priceTableJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(PriceTableSpec, { target: "draft-2020-12", io: "input" }) as Record<
    string,
    unknown
  >;
  return { $id: PRICE_TABLE_SCHEMA_ID, title: "ModelPrices", ...schema };
}
