/**
 * Prompt files of imported steps: an agent's promptPath file(s) joined as CodeMachine joins them, its
 * chained prompts (those the selected track and conditions show) appended, and CodeMachine
 * placeholders `{name}` / `{!name}` turned into the runner's `{{name}}`, with a spec placeholder that
 * reads the file when the step runs. Every file read stays inside the package or the repository.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative } from "node:path";
import { isInside } from "../shared/paths.js";
import type { Catalog, ChainedEntry } from "./catalog.js";
import type { PackageLocation } from "./find-package.js";
import { CodeMachineImportError } from "./import-errors.js";
import type { Dialect, Selection } from "./select-steps.js";

const PLACEHOLDER = /\{(!)?([a-zA-Z_][a-zA-Z0-9_]*)\}/g;
/** CodeMachine 0.8's built-ins that the runner provides under the same names; they win over placeholders.js. */
const STATIC_BUILTINS = new Set(["date", "datetime", "timestamp", "user_name"]);
const BUILTINS_08 = [...STATIC_BUILTINS, "project_name", "selected_track", "selected_conditions"];

export interface PromptContext {
  pkg: PackageLocation;
  catalog: Catalog;
  repoDir: string;
  dialect: Dialect;
  selection: Selection;
  /** Files to write into the protocol folder, by relative path. */
  files: Record<string, string>;
  placeholders: Record<string, unknown>;
  warnings: string[];
}

/** Who asks for a file, for messages: the file and entry at fault and the field naming it. */
export interface Asker {
  file: string;
  where: string;
}

/**
 * A file a package names, found as CodeMachine 0.8 finds it (package root, then its prompts folder,
 * then the repository); it must lie inside the package or the repository, symlinks resolved.
 */
export function packageFile(ctx: PromptContext, path: string, asker: Asker, field: string): string {
  const candidates = isAbsolute(path)
    ? [path]
    : [
        join(ctx.pkg.root, path),
        join(ctx.pkg.promptsDir, path.replace(/^(templates\/)?prompts\//, "")),
        join(ctx.pkg.promptsDir, path),
        join(ctx.repoDir, path),
      ];
  const found = candidates.find((c) => existsSync(c));
  if (!found)
    throw new CodeMachineImportError(
      asker.file,
      `${asker.where}: ${field}: "${path}" not found (looked in the package ${ctx.pkg.root} and the repository ${ctx.repoDir})`,
    );
  return readable(ctx, found, path, asker, field);
}

/** `found`, the file named `path`, if it lies inside the package or the repository, symlinks resolved. */
function readable(ctx: PromptContext, found: string, path: string, asker: Asker, field: string): string {
  if (!isInside(ctx.pkg.root, found) && !isInside(ctx.repoDir, found))
    throw new CodeMachineImportError(
      asker.file,
      `${asker.where}: ${field}: "${path}" is outside the package and the repository; package files may only read inside them`,
    );
  return found;
}

/** The regular files among `names` in `dir` (symlinks followed; a dangling one is no file). */
function regularFiles(dir: string, names: string[]): string[] {
  return names.filter((f) => statSync(join(dir, f), { throwIfNoEntry: false })?.isFile());
}

/** As CodeMachine's chained prompts: every condition (and one of conditionsAny) selected, the track among tracks. */
function chainedShown(entry: ChainedEntry, selection: Selection): boolean {
  const chosen = selection.conditions;
  if (entry.conditions?.length && !entry.conditions.every((c) => chosen.includes(c))) return false;
  if (entry.conditionsAny?.length && !entry.conditionsAny.some((c) => chosen.includes(c))) return false;
  if (entry.tracks?.length && !(selection.track && entry.tracks.includes(selection.track))) return false;
  return true;
}

/** A chained prompt entry: a file, or a folder of `.md` files in name order, each inside the package or the repository. */
function chainedFiles(ctx: PromptContext, entry: ChainedEntry, asker: Asker): string[] {
  const found = packageFile(ctx, entry.path, asker, "chainedPromptsPath");
  if (!statSync(found).isDirectory()) return [found];
  return regularFiles(
    found,
    readdirSync(found).filter((f) => f.endsWith(".md")),
  )
    .sort()
    .map((f) => readable(ctx, join(found, f), join(entry.path, f), asker, "chainedPromptsPath"));
}

function undefinedWarning(ctx: PromptContext, name: string): string {
  if (ctx.dialect === "0.7" && BUILTINS_08.includes(name))
    return "is a built-in only from CodeMachine 0.8, this workflow speaks 0.7, and config/placeholders.js does not define it";
  if (name === "selected_track") return "has no value: no track was chosen (--track)";
  if (name === "selected_conditions") return "has no value: no condition was chosen (--condition)";
  return "is not defined in config/placeholders.js";
}

/** The placeholder key for `{name}` / `{!name}` (optional uses get a key of their own), as 0.7 or 0.8 resolves it. */
function placeholderKey(
  ctx: PromptContext,
  name: string,
  optional: boolean,
  asker: Asker,
): string | undefined {
  const user = ctx.catalog.placeholders.userDir[name];
  const pkgFile = ctx.catalog.placeholders.packageDir[name];
  const defined = user !== undefined || pkgFile !== undefined;
  if (ctx.dialect === "0.8") {
    if (STATIC_BUILTINS.has(name)) {
      if (defined)
        ctx.warnings.push(
          `config/placeholders.js: ${name} is shadowed by CodeMachine 0.8's built-in {${name}}, as in CodeMachine`,
        );
      return name;
    }
    const chosen =
      name === "selected_track"
        ? ctx.selection.track
        : name === "selected_conditions" && ctx.selection.conditions.length
          ? ctx.selection.conditions.join(", ")
          : undefined;
    if (chosen !== undefined) {
      ctx.placeholders[name] = chosen;
      return name;
    }
    if (name === "project_name" && !defined) return name;
  }
  if (!defined) {
    ctx.warnings.push(
      `${relative(ctx.pkg.root, asker.file) || asker.file}: ${asker.where}: placeholder {${optional ? "!" : ""}${name}} ${undefinedWarning(ctx, name)}; it becomes empty (as in CodeMachine)`,
    );
    return undefined;
  }
  const key = optional ? `${name}__optional` : name;
  if (user !== undefined) {
    ctx.placeholders[key] = { file: user, from: "workspace", ...(optional ? { optional: true } : {}) };
    return key;
  }
  // package files travel with the protocol folder, so the run does not depend on the package location
  const copied = join("codemachine", "package", pkgFile!);
  const source = join(ctx.pkg.root, pkgFile!);
  const where = { file: join(ctx.pkg.configDir, "placeholders.js"), where: "module.exports.packageDir" };
  const inPackage = (file: string, shown: string) => {
    if (!isInside(ctx.pkg.root, file))
      throw new CodeMachineImportError(
        where.file,
        `${where.where}: ${name}: "${shown}" is outside the package`,
      );
    return file;
  };
  inPackage(source, pkgFile!);
  if (!pkgFile!.includes("*")) {
    if (existsSync(source)) ctx.files[copied] = readFileSync(source, "utf8");
    else if (!optional)
      throw new CodeMachineImportError(
        where.file,
        `${where.where}: ${name}: package file "${pkgFile}" not found`,
      );
  } else if (existsSync(dirname(source))) {
    const dir = dirname(source);
    const matches = readdirSync(dir).filter((f) => f.endsWith(basename(pkgFile!).slice(1)));
    for (const f of regularFiles(dir, matches)) {
      const file = inPackage(join(dir, f), join(dirname(pkgFile!), f));
      ctx.files[join(dirname(copied), f)] = readFileSync(file, "utf8");
    }
  }
  ctx.placeholders[key] = { file: copied, from: "protocol", ...(optional ? { optional: true } : {}) };
  return key;
}

function convertPlaceholders(ctx: PromptContext, text: string, asker: Asker): string {
  return text.replace(PLACEHOLDER, (_whole, bang: string | undefined, name: string) => {
    const key = placeholderKey(ctx, name, Boolean(bang), asker);
    return key ? `{{${key}}}` : "";
  });
}

/** The text of one step's prompt: its files joined with a blank line, then its chained prompts. */
export function stepPromptText(
  ctx: PromptContext,
  step: Asker & { promptPath: string | string[]; chainedPromptsPath: ChainedEntry[] },
): string {
  const paths = Array.isArray(step.promptPath) ? step.promptPath : [step.promptPath];
  const parts = paths.map((p) => readFileSync(packageFile(ctx, p, step, "promptPath"), "utf8"));
  const chained = step.chainedPromptsPath
    .filter((c) => chainedShown(c, ctx.selection))
    .flatMap((c) => chainedFiles(ctx, c, step));
  const follow = chained.map(
    (f, i) => `\n\n---\n\n## Follow-up ${i + 1} (${basename(f)})\n\n${readFileSync(f, "utf8")}`,
  );
  return convertPlaceholders(ctx, parts.join("\n\n") + follow.join(""), step);
}
