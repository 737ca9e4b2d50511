/**
 * Where a CodeMachine workflow is defined: a 0.8 package (`codemachine.json` / `.codemachine.json`
 * with optional `paths`), a 0.7-style root (`config/` + `templates/workflows/`), or the legacy
 * `.codemachine/config/` layout of a project — looked for at PATH, then in PATH/.codemachine.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { isInside } from "../shared/paths.js";
import { Fields } from "./field-checks.js";
import { CodeMachineImportError } from "./import-errors.js";

export type Layout = "package" | "root" | "legacy";

export interface PackageLocation {
  root: string;
  layout: Layout;
  name: string;
  version: string | null;
  configDir: string;
  workflowsDir: string;
  promptsDir: string;
  /** The chosen `*.workflow.js`, or null when the layout has none (legacy: main agents in order). */
  workflowFile: string | null;
}

function manifest(dir: string): { file: string; data: Record<string, unknown> } | undefined {
  for (const name of ["codemachine.json", ".codemachine.json"]) {
    const file = join(dir, name);
    if (!existsSync(file)) continue;
    try {
      return { file, data: JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown> };
    } catch (err) {
      throw new CodeMachineImportError(file, `is not valid JSON: ${(err as Error).message}`);
    }
  }
  return undefined;
}

/** A manifest folder: a path inside the package (symlinks resolved), or the default. */
function packageDir(dir: string, paths: Fields | undefined, key: string, fallback: string): string {
  const value = paths?.string(key, "a folder inside the package") ?? fallback;
  const abs = resolve(dir, value);
  if (!isInside(dir, abs))
    throw new CodeMachineImportError(
      paths!.file,
      `paths.${key}: "${value}" is outside the package folder ${dir}; package paths must stay inside it`,
    );
  return abs;
}

function locate(dir: string): Omit<PackageLocation, "workflowFile"> | undefined {
  const m = manifest(dir);
  if (m) {
    const fields = Fields.of(m.file, "manifest", m.data, "a JSON object");
    const paths = fields.record("paths");
    return {
      root: dir,
      layout: "package",
      name: fields.string("name") ?? "workflow",
      version: fields.string("version") ?? null,
      configDir: packageDir(dir, paths, "config", "config"),
      workflowsDir: packageDir(dir, paths, "workflows", "templates/workflows"),
      promptsDir: packageDir(dir, paths, "prompts", "prompts"),
    };
  }
  if (existsSync(join(dir, "config", "main.agents.js")) && existsSync(join(dir, "templates", "workflows"))) {
    return {
      root: dir,
      layout: "root",
      name: "workflow",
      version: null,
      configDir: join(dir, "config"),
      workflowsDir: join(dir, "templates", "workflows"),
      promptsDir: join(dir, "prompts"),
    };
  }
  return undefined;
}

export function findPackage(path: string, workflow?: string): PackageLocation {
  const start = resolve(path);
  if (!existsSync(start)) throw new CodeMachineImportError(start, "does not exist");
  let found = locate(start) ?? locate(join(start, ".codemachine"));
  if (!found && existsSync(join(start, ".codemachine", "config", "main.agents.js"))) {
    const root = join(start, ".codemachine");
    found = {
      root,
      layout: "legacy",
      name: "workflow",
      version: null,
      configDir: join(root, "config"),
      workflowsDir: join(root, "templates", "workflows"),
      promptsDir: join(root, "prompts"),
    };
  }
  if (!found) {
    throw new CodeMachineImportError(
      start,
      "no CodeMachine workflow here: expected codemachine.json, config/ with templates/workflows/, or .codemachine/config/",
    );
  }
  if (!existsSync(join(found.configDir, "main.agents.js")))
    throw new CodeMachineImportError(found.configDir, "has no main.agents.js");
  const workflows = existsSync(found.workflowsDir)
    ? readdirSync(found.workflowsDir)
        .filter((f) => f.endsWith(".workflow.js"))
        .sort()
    : [];
  const names = workflows.map((f) => f.replace(/\.workflow\.js$/, ""));
  if (workflow !== undefined) {
    const i = names.indexOf(workflow.replace(/\.workflow\.js$/, ""));
    if (i < 0)
      throw new CodeMachineImportError(
        found.workflowsDir,
        `no workflow "${workflow}" (found: ${names.join(", ") || "none"})`,
      );
    return { ...found, workflowFile: join(found.workflowsDir, workflows[i]!) };
  }
  if (workflows.length > 1)
    throw new CodeMachineImportError(
      found.workflowsDir,
      `several workflows, pick one with --workflow: ${names.join(", ")}`,
    );
  if (workflows.length === 0 && found.layout !== "legacy")
    throw new CodeMachineImportError(found.workflowsDir, "has no *.workflow.js");
  return { ...found, workflowFile: workflows[0] ? join(found.workflowsDir, workflows[0]) : null };
}
