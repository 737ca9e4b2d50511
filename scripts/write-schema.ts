/** Regenerates schemas/protocol-spec.schema.json from the zod source (`npm run schema`). */
import { writeFileSync } from "node:fs";
import { protocolSpecJsonSchema } from "../src/spec/json-schema.js";

writeFileSync(
  new URL("../schemas/protocol-spec.schema.json", import.meta.url),
  `${JSON.stringify(protocolSpecJsonSchema(), null, 2)}\n`,
);
