/**
 * Prompt files of imported steps: an agent's promptPath file(s) joined as CodeMachine joins them, its
 * chained prompts appended, and CodeMachine placeholders `{name}` / `{!name}` turned into the
 * runner's `{{name}}` with a spec placeholder that reads the file when the step runs.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative } from "node:path";
import type { Catalog } from "./catalog.js";
import type { PackageLocation } from "./find-package.js";
import { CodeMachineImportError } from "./import-errors.js";

const PLACEHOLDER = /\{(!)?([a-zA-Z_][a-zA-Z0-9_]*)\}/g;
/** Built-ins the runner provides under the same names. */
const RUNNER_BUILTINS = new Set(["date", "datetime", "timestamp", "user_name", "project_name"]);

export function resolvePromptFile(pkg: PackageLocation, repoDir: string, path: string): string | undefined {
  if (isAbsolute(path)) return existsSync(path) ? path : undefined;
  const candidates = [
    join(pkg.root, path),
    join(pkg.promptsDir, path.replace(/^(templates\/)?prompts\//, "")),
    join(pkg.promptsDir, path),
    join(repoDir, path),
  ];
  return candidates.find((c) => existsSync(c));
}

export interface PromptContext {
  pkg: PackageLocation;
  catalog: Catalog;
  repoDir: string;
  /** Files to write into the protocol folder, by relative path. */
  files: Record<string, string>;
  placeholders: Record<string, unknown>;
  warnings: string[];
}

/** A chained prompt entry: a file, or a folder of `.md` files in name order. */
function chainedFiles(ctx: PromptContext, entry: unknown, where: string): string[] {
  const path = typeof entry === "string" ? entry : (entry as { path: string }).path;
  const found = resolvePromptFile(ctx.pkg, ctx.repoDir, path);
  if (!found) throw new CodeMachineImportError(where, `chainedPromptsPath "${path}" not found`);
  if (!statSync(found).isDirectory()) return [found];
  return readdirSync(found)
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => join(found, f));
}

/** The placeholder key for `{name}` / `{!name}`: optional uses get a key of their own. */
function placeholderKey(
  ctx: PromptContext,
  name: string,
  optional: boolean,
  where: string,
): string | undefined {
  if (RUNNER_BUILTINS.has(name)) return name;
  const user = ctx.catalog.placeholders.userDir[name];
  const pkgFile = ctx.catalog.placeholders.packageDir[name];
  if (user === undefined && pkgFile === undefined) {
    ctx.warnings.push(
      `${where}: placeholder {${optional ? "!" : ""}${name}} is not defined in config/placeholders.js; it becomes empty (as in CodeMachine)`,
    );
    return undefined;
  }
  const key = optional ? `${name}__optional` : name;
  if (user !== undefined) {
    ctx.placeholders[key] = { file: user, from: "workspace", ...(optional ? { optional: true } : {}) };
  } else {
    // package files travel with the protocol folder, so the run does not depend on the package location
    const copied = join("codemachine", "package", pkgFile!);
    const source = join(ctx.pkg.root, pkgFile!);
    if (!pkgFile!.includes("*")) {
      if (existsSync(source)) ctx.files[copied] = readFileSync(source, "utf8");
      else if (!optional)
        throw new CodeMachineImportError(where, `placeholder {${name}}: package file ${pkgFile} not found`);
    } else if (existsSync(dirname(source))) {
      for (const f of readdirSync(dirname(source)).filter((f) => f.endsWith(basename(pkgFile!).slice(1)))) {
        ctx.files[join(dirname(copied), f)] = readFileSync(join(dirname(source), f), "utf8");
      }
    }
    ctx.placeholders[key] = { file: copied, from: "protocol", ...(optional ? { optional: true } : {}) };
  }
  return key;
}

export function convertPlaceholders(ctx: PromptContext, text: string, where: string): string {
  return text.replace(PLACEHOLDER, (_whole, bang: string | undefined, name: string) => {
    const key = placeholderKey(ctx, name, Boolean(bang), where);
    return key ? `{{${key}}}` : "";
  });
}

/** The text of one step's prompt: its files joined with a blank line, then its chained prompts. */
export function stepPromptText(
  ctx: PromptContext,
  step: {
    agentId: string;
    promptPath: string | string[] | undefined;
    chainedPromptsPath?: unknown[] | undefined;
    source: string;
  },
): string {
  const where = `${step.source} (agent ${step.agentId})`;
  const paths =
    step.promptPath === undefined ? [] : Array.isArray(step.promptPath) ? step.promptPath : [step.promptPath];
  if (paths.length === 0) throw new CodeMachineImportError(where, "promptPath is missing");
  const parts = paths.map((p) => {
    const file = resolvePromptFile(ctx.pkg, ctx.repoDir, p);
    if (!file)
      throw new CodeMachineImportError(
        where,
        `promptPath "${p}" not found (looked in ${relative(ctx.repoDir, ctx.pkg.root) || "."} and the repository)`,
      );
    return readFileSync(file, "utf8");
  });
  const chained = (step.chainedPromptsPath ?? []).flatMap((c) => chainedFiles(ctx, c, where));
  const follow = chained.map(
    (f, i) => `\n\n---\n\n## Follow-up ${i + 1} (${basename(f)})\n\n${readFileSync(f, "utf8")}`,
  );
  return convertPlaceholders(ctx, parts.join("\n\n") + follow.join(""), where);
}
