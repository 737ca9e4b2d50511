/** Creating runs from specs: protocol numbers stay unique under concurrency, on both databases. */
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createRunFromSpec } from "../../src/services/create-run.js";
import { DuplicateNameError } from "../../src/store/store-errors.js";
import { dropTestSchemas, freshStore, postgresReachable } from "../store/store-backends.js";

const pgUp = await postgresReachable();
const spec = { steps: [{ id: "a", engine_id: "shell", inputs: { command: "true" } }] };

for (const backend of ["sqlite", "postgres"] as const) {
  describe.skipIf(backend === "postgres" && !pgUp)(`creating runs on ${backend}`, () => {
    afterAll(async () => {
      if (backend === "postgres") await dropTestSchemas();
    });

    it("gives concurrent runs of one repository distinct numbers, after the folders already there", async () => {
      const store = await freshStore(backend);
      const repo = mkdtempSync(join(tmpdir(), "tgz-numbers-"));
      mkdirSync(join(repo, ".protocols", "0007-left-by-hand"), { recursive: true });
      const created = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          createRunFromSpec(store, { repoDir: repo, spec, name: `job ${i}` }),
        ),
      );
      const numbers = created.map((c) => c.run.protocolName.slice(0, 4)).sort();
      expect(numbers).toEqual(["0008", "0009", "0010", "0011", "0012", "0013"]);
      expect(new Set(created.map((c) => c.run.protocolRoot)).size).toBe(6);
      await expect(
        createRunFromSpec(store, { repoDir: repo, spec, name: created[0]!.run.protocolName }),
      ).rejects.toBeInstanceOf(DuplicateNameError);
      await store.close();
    });
  });
}
