/**
 * The dependency rules `npm run lint` checks (.dependency-cruiser.cjs, docs/architecture.md
 * "Layers"), run with the real dependency-cruiser on a small tree of the same folders: each kind of
 * violation is caught and named, and a tree that keeps the rules passes.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../..");
const DEPCRUISE = join(ROOT, "node_modules/dependency-cruiser/bin/dependency-cruise.mjs");

interface Violation {
  from: string;
  to: string;
  rule: { name: string };
}

/** Runs the project's rules over `files` (path → source) laid out as a src/ tree of their own. */
function cruise(files: Record<string, string>): Violation[] {
  const dir = mkdtempSync(join(tmpdir(), "tgz-deps-"));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", strict: true } }),
  );
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  const r = spawnSync(
    process.execPath,
    [DEPCRUISE, "src", "--config", join(ROOT, ".dependency-cruiser.cjs"), "--output-type", "json"],
    { cwd: dir, encoding: "utf8" },
  );
  if (!r.stdout) throw new Error(`dependency-cruiser gave no output: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { summary: { violations: Violation[] } }).summary.violations;
}

/** Each violation as "rule: from → to", a package named by its name. */
const named = (violations: Violation[]) =>
  [
    ...new Set(
      violations.map(
        (v) => `${v.rule.name}: ${v.from} → ${v.to.replace(/^.*node_modules\/([^/]+)\/.*$/, "$1")}`,
      ),
    ),
  ].sort();

describe("the dependency rules", () => {
  it("pass a tree that imports only down the layers, through public files", () => {
    expect(
      cruise({
        "src/shared/errors.ts": "export const a = 1;\n",
        "src/store/types.ts": 'import { a } from "../shared/errors.js";\nexport const b = a;\n',
        "src/runner/run.ts": 'import { b } from "../store/types.js";\nexport const c = b;\n',
        "src/engines/processes.ts": 'export { p } from "./process/run-process.js";\n',
        "src/engines/process/run-process.ts": "export const p = 1;\n",
        "src/server/route.ts":
          'import { c } from "../runner/run.js";\nimport { p } from "../engines/processes.js";\nexport const d = c + p;\n',
      }),
    ).toEqual([]);
  });

  it("catch a file cycle, a folder cycle, an upward import, a deep import and a driver outside the store", () => {
    const violations = cruise({
      // a file cycle inside the runner
      "src/runner/a.ts": 'import { b } from "./b.js";\nexport const a = () => b;\n',
      "src/runner/b.ts": 'import { a } from "./a.js";\nexport const b = () => a;\n',
      // a folder cycle between two folders of one layer
      "src/git/g.ts": 'import { q } from "../queue/q.js";\nexport const g = () => q;\n',
      "src/queue/q.ts": 'import { g } from "../git/g.js";\nexport const q = () => g;\n',
      // the store importing the runner: up the layers
      "src/store/s.ts": 'import { a } from "../runner/a.js";\nexport const s = a;\n',
      // the runner reaching into the engines' internals
      "src/engines/process/run-process.ts": "export const p = 1;\n",
      "src/runner/c.ts": 'import { p } from "../engines/process/run-process.js";\nexport const c = p;\n',
      // the store's implementation and its driver, outside the store
      "src/store/kysely-store.ts": "export const k = 1;\n",
      "src/server/m.ts":
        'import { k } from "../store/kysely-store.js";\nimport { sql } from "kysely";\nexport const m = [k, sql];\n',
    });
    expect(named(violations)).toEqual([
      "database-drivers-in-store: src/server/m.ts → kysely",
      "layer-store: src/store/s.ts → src/runner/a.ts",
      "no-circular-folders: src/git → src/queue",
      "no-circular-folders: src/queue → src/git",
      // a cycle is named once, by its first edge
      "no-circular: src/git/g.ts → src/queue/q.ts",
      "no-circular: src/runner/a.ts → src/runner/b.ts",
      "no-deep-import: src/runner/c.ts → src/engines/process/run-process.ts",
      "store-internals: src/server/m.ts → src/store/kysely-store.ts",
    ]);
  });
});
