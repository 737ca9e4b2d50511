/**
 * CodeMachine packages for import tests: small ones written on the spot, and copies of the packages in
 * test/fixtures/codemachine (a 0.8 local package, a 0.8 stock-layout workflow, a 0.7 root).
 */
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { expect } from "vitest";
import { type ImportOptions, importCodemachine } from "../../src/codemachine/import-codemachine.js";
import { CodeMachineImportError } from "../../src/codemachine/import-errors.js";
import { validateSpec } from "../../src/spec/validate-spec.js";

const FIXTURES = join(import.meta.dirname, "../fixtures/codemachine");
/** A project whose `.codemachine/` is a 0.8 local package (`.codemachine.json`): plan → build → check loop. */
export const LOCAL_PACKAGE = join(FIXTURES, "local-package");
/** A 0.8 workflow in the stock layout (config/ + templates/workflows/, no manifest): tracks, conditions, chained prompts. */
export const STOCK_08 = join(FIXTURES, "stock-08");
/** A 0.7 package root: resolveUI, resolveFolder, a loop counting dividers, notCompletedFallback. */
export const STOCK_07 = join(FIXTURES, "stock-07");

export type Spec = {
  steps: Record<string, any>[];
  placeholders?: Record<string, unknown>;
  metadata: { codemachine: Record<string, any> };
};

export function writeTree(dir: string, files: Record<string, string>): string {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

export function pkg(files: Record<string, string>): string {
  return writeTree(mkdtempSync(join(tmpdir(), "tgz-cm-")), files);
}

/** A fixture copied into a fresh folder (the local package is both the repository and the package). */
export function exampleCopy(fixture = LOCAL_PACKAGE): string {
  const dir = mkdtempSync(join(tmpdir(), "tgz-cm-fixture-"));
  cpSync(fixture, dir, { recursive: true });
  return dir;
}

export async function imp(dir: string, extra: Partial<ImportOptions> = {}) {
  const r = await importCodemachine(dir, { repoDir: dir, env: {}, ...extra });
  expect(validateSpec(r.spec).errors).toEqual([]);
  return { ...r, spec: r.spec as unknown as Spec };
}

/** The import error for `dir`; fails the test when the import succeeds or fails otherwise. */
export async function importError(dir: string, extra: Partial<ImportOptions> = {}): Promise<string> {
  const err = await importCodemachine(dir, { repoDir: dir, env: {}, ...extra }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CodeMachineImportError);
  return (err as Error).message;
}

/** A minimal 0.7 root around `files`: one workflow `w` with the step `a` unless files replace them. */
export function rootWith(files: Record<string, string>): string {
  return pkg({
    "config/main.agents.js": "module.exports = [{ id: 'a', name: 'A', promptPath: 'prompts/a.md' }];",
    "templates/workflows/w.workflow.js": "export default { name: 'w', steps: [resolveStep('a')] };",
    "prompts/a.md": "a",
    ...files,
  });
}
