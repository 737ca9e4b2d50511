/** Creating runs from specs: protocol numbers stay unique under concurrency, on both databases. */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
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
      // the repository is registered once, however many of its first runs race
      expect(new Set(created.map((c) => c.run.projectId)).size).toBe(1);
      expect(await store.listProjects()).toHaveLength(1);
      await expect(
        createRunFromSpec(store, { repoDir: repo, spec, name: created[0]!.run.protocolName }),
      ).rejects.toBeInstanceOf(DuplicateNameError);
      await store.close();
    });
  });
}

describe("the spec's folder", () => {
  const spec = {
    steps: [{ id: "a", engine_id: "replay", prompt_ref: "p.md", inputs: { final: "done" } }],
  };

  async function sqlite() {
    return freshStore("sqlite");
  }

  it("is copied from inside the repository too, so a relative prompt resolves the same", async () => {
    const store = await sqlite();
    const repo = mkdtempSync(join(tmpdir(), "tgz-specdir-"));
    mkdirSync(join(repo, "specs"));
    writeFileSync(join(repo, "specs", "p.md"), "the prompt");
    writeFileSync(join(repo, "specs", "protocol.json"), JSON.stringify(spec));
    const { run } = await createRunFromSpec(store, {
      repoDir: repo,
      specPath: join(repo, "specs", "protocol.json"),
    });
    expect(readFileSync(join(run.protocolRoot!, "p.md"), "utf8")).toBe("the prompt");
    await store.close();
  });

  it("refuses a folder that holds the repository, leaving nothing behind", async () => {
    const store = await sqlite();
    const parent = mkdtempSync(join(tmpdir(), "tgz-parent-"));
    const repo = join(parent, "repo");
    mkdirSync(repo);
    writeFileSync(join(parent, "protocol.json"), JSON.stringify(spec));
    await expect(
      createRunFromSpec(store, { repoDir: repo, specPath: join(parent, "protocol.json") }),
    ).rejects.toThrow(/contains the repository/);
    expect(existsSync(join(repo, ".protocols", "0001-protocol"))).toBe(false);
    expect(await store.listProtocolRuns()).toEqual([]);
    await store.close();
  });

  it("refuses a folder far bigger than a spec needs, instead of copying it", async () => {
    const store = await sqlite();
    const repo = mkdtempSync(join(tmpdir(), "tgz-repo-"));
    const downloads = mkdtempSync(join(tmpdir(), "tgz-downloads-"));
    writeFileSync(join(downloads, "protocol.json"), JSON.stringify(spec));
    writeFileSync(join(downloads, "big.iso"), Buffer.alloc(51 * 1024 * 1024));
    await expect(
      createRunFromSpec(store, { repoDir: repo, specPath: join(downloads, "protocol.json") }),
    ).rejects.toThrow(/folder of their own/);
    expect(existsSync(join(repo, ".protocols", "0001-protocol"))).toBe(false);
    await store.close();
  });
});
