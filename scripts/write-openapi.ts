/** Regenerates docs/openapi.json from the server's route declarations (`npx tsx scripts/write-openapi.ts`). */
import { writeFileSync } from "node:fs";
import { openApiText } from "../src/server/openapi-file.js";

writeFileSync(new URL("../docs/openapi.json", import.meta.url), await openApiText());
