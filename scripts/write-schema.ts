/** Regenerates the published JSON Schemas in schemas/ from their zod sources (`npm run schema`). */
import { writeFileSync } from "node:fs";
import { priceTableJsonSchema } from "../src/cost/price-schema.js";
import { planningJsonSchema } from "../src/planning/plan-schema.js";
import { protocolSpecJsonSchema } from "../src/spec/json-schema.js";

const write = (name: string, schema: unknown) =>
  writeFileSync(new URL(`../schemas/${name}`, import.meta.url), `${JSON.stringify(schema, null, 2)}\n`);

write("protocol-spec.schema.json", protocolSpecJsonSchema());
write("protocol-planning.schema.json", planningJsonSchema());
write("model-prices.schema.json", priceTableJsonSchema());
