/**
 * Prompt files of imported steps: an agent's promptPath file(s) joined as CodeMachine joins them, its
 * chained prompts (those the selected track and conditions show) appended, and CodeMachine
 * placeholders `{name}` / `{!name}` turned into the runner's `{{name}}`, with a spec placeholder that
 * reads the file when the step runs. An undefined placeholder becomes empty in the 0.7 dialect and
 * stays as written in 0.8, as each CodeMachine does. Every file read stays inside the package or the
 * repository and within the import's limits.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { isInside } from "../shared/paths.js";
import type { Catalog, ChainedEntry } from "./catalog.js";
import { BUILTINS_08, type Dialect, PLACEHOLDER, STATIC_BUILTINS } from "./dialect.js";
import type { PackageLocation } from "./find-package.js";
import { type Asker, checkFileCount, checkFileSize, type ReadBudget, refuse } from "./import-limits.js";
import type { PlaceholderFile } from "./placeholder-files.js";
import type { Selection } from "./select-steps.js";

/** Where package files are looked for, and the budget they are read within. */
export interface PackageFiles {
  pkg: PackageLocation;
  repoDir: string;
  budget: ReadBudget;
}

export interface PromptContext extends PackageFiles {
  catalog: Catalog;
  dialect: Dialect;
  selection: Selection;
  /** placeholders.js entries, checked at import (placeholder-files.ts). */
  placeholderFiles: Map<string, PlaceholderFile>;
  /** Files to write into the protocol folder, by relative path. */
  files: Record<string, string>;
  placeholders: Record<string, unknown>;
  warnings: string[];
}

/** `found`, the file named `path`, if it lies inside the package or the repository, symlinks resolved. */
function readable(roots: PackageFiles, found: string, path: string, asker: Asker, field: string): string {
  if (!isInside(roots.pkg.root, found) && !isInside(roots.repoDir, found))
    throw refuse(
      asker,
      field,
      `"${path}" is outside the package and the repository; package files may only read inside them`,
    );
  return found;
}

/**
 * A file a package names, found as CodeMachine 0.8 finds it (package root, then its prompts folder,
 * then the repository); it must lie inside the package or the repository, symlinks resolved.
 */
export function packageFile(roots: PackageFiles, path: string, asker: Asker, field: string): string {
  const candidates = isAbsolute(path)
    ? [path]
    : [
        join(roots.pkg.root, path),
        join(roots.pkg.promptsDir, path.replace(/^(templates\/)?prompts\//, "")),
        join(roots.pkg.promptsDir, path),
        join(roots.repoDir, path),
      ];
  const found = candidates.find((c) => existsSync(c));
  if (!found)
    throw refuse(
      asker,
      field,
      `"${path}" not found (looked in the package ${roots.pkg.root} and the repository ${roots.repoDir})`,
    );
  return readable(roots, found, path, asker, field);
}

/** The step's promptPath file(s), joined with a blank line as CodeMachine joins them. */
export function promptFilesText(
  roots: PackageFiles,
  step: Asker & { promptPath: string | string[] },
): string {
  const paths = Array.isArray(step.promptPath) ? step.promptPath : [step.promptPath];
  return paths
    .map((p) => roots.budget.read(packageFile(roots, p, step, "promptPath"), step, "promptPath"))
    .join("\n\n");
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
function chainedFiles(roots: PackageFiles, entry: ChainedEntry, asker: Asker): string[] {
  const field = "chainedPromptsPath";
  const found = packageFile(roots, entry.path, asker, field);
  if (!statSync(found).isDirectory()) return [found];
  const names = readdirSync(found).filter((f) => f.endsWith(".md"));
  checkFileCount(names.length, entry.path, asker, field, "holds");
  const files = names
    .filter((f) => statSync(join(found, f), { throwIfNoEntry: false })?.isFile())
    .sort()
    .map((f) => readable(roots, join(found, f), join(entry.path, f), asker, field));
  checkFileSize(files, entry.path, asker, field, "holds");
  return files;
}

const FRONTMATTER = /^---\r?\n([\s\S]*?)\r?\n---\r?\n?/;

/** A chained prompt as CodeMachine sends it: without its frontmatter, labelled by its `description`. */
function followUp(n: number, file: string, text: string): string {
  const m = FRONTMATTER.exec(text);
  const description = m?.[1]
    ?.split("\n")
    .map((line) => /^description:\s*(.*?)\s*$/.exec(line)?.[1])
    .find((v) => v !== undefined)
    ?.replace(/^(["'])(.*)\1$/, "$2");
  const body = (m ? text.slice(m[0].length) : text).trim();
  return `\n\n---\n\n## Follow-up ${n} (${basename(file)})${description ? `: ${description}` : ""}\n\n${body}`;
}

function undefinedWarning(ctx: PromptContext, name: string): string {
  if (ctx.dialect === "0.7" && BUILTINS_08.includes(name))
    return "is a built-in only from CodeMachine 0.8, this workflow is read as 0.7, and config/placeholders.js does not define it";
  if (name === "selected_track") return "has no value: the workflow offers no tracks";
  if (name === "selected_conditions") return "has no value: no condition was chosen (--condition)";
  return "is not defined in config/placeholders.js";
}

/** The value of a 0.8 built-in the runner does not provide itself, from the choices; undefined when there is none. */
function chosenValue(ctx: PromptContext, name: string): string | undefined {
  if (name === "selected_track") return ctx.selection.track;
  if (name === "selected_conditions" && ctx.selection.conditions.length)
    return ctx.selection.conditions.join(", ");
  return undefined;
}

/** A package placeholder's files copied into the protocol folder, so the run does not depend on where the package is. */
function copyPackageFiles(ctx: PromptContext, entry: PlaceholderFile, optional: boolean): string {
  const asker = { file: join(ctx.pkg.configDir, "placeholders.js"), where: "module.exports.packageDir" };
  const copied = join("codemachine", "package", relative(ctx.pkg.root, resolve(ctx.pkg.root, entry.path)));
  if (!entry.glob && entry.files.length === 0 && !optional)
    throw refuse(asker, entry.name, `package file "${entry.path}" not found`);
  for (const f of entry.files)
    ctx.files[entry.glob ? join(dirname(copied), basename(f)) : copied] = ctx.budget.read(
      f,
      asker,
      entry.name,
    );
  return copied;
}

/** What `{name}` / `{!name}` becomes: a runner placeholder, kept as written (0.8) or nothing (0.7). */
function convertPlaceholder(
  ctx: PromptContext,
  whole: string,
  name: string,
  optional: boolean,
  asker: Asker,
) {
  const entry = ctx.placeholderFiles.get(name);
  if (ctx.dialect === "0.8") {
    // 0.8 resolves its built-ins before placeholders.js
    if (STATIC_BUILTINS.has(name)) {
      if (entry)
        ctx.warnings.push(
          `config/placeholders.js: ${name} is shadowed by CodeMachine 0.8's built-in {${name}}, as in CodeMachine`,
        );
      return `{{${name}}}`;
    }
    const chosen = chosenValue(ctx, name);
    if (chosen !== undefined) {
      ctx.placeholders[name] = chosen;
      return `{{${name}}}`;
    }
    if (name === "project_name" && !entry) return `{{${name}}}`;
  }
  if (!entry) {
    const at = `${relative(ctx.pkg.root, asker.file) || asker.file}: ${asker.where}`;
    const shown = `{${optional ? "!" : ""}${name}}`;
    ctx.warnings.push(
      ctx.dialect === "0.8"
        ? `${at}: placeholder ${shown} ${undefinedWarning(ctx, name)}; it stays as written, as CodeMachine 0.8 leaves a placeholder it cannot resolve`
        : `${at}: placeholder ${shown} ${undefinedWarning(ctx, name)}; it becomes empty, as CodeMachine 0.7 empties an undefined placeholder`,
    );
    return ctx.dialect === "0.8" ? whole : "";
  }
  // optional uses get a key of their own: a missing file is then no error
  const key = optional ? `${name}__optional` : name;
  const file = entry.kind === "userDir" ? entry.path : copyPackageFiles(ctx, entry, optional);
  ctx.placeholders[key] = {
    file,
    from: entry.kind === "userDir" ? "workspace" : "protocol",
    ...(optional ? { optional: true } : {}),
  };
  return `{{${key}}}`;
}

/** The text of one step's prompt: its files joined with a blank line, then its chained prompts. */
export function stepPromptText(
  ctx: PromptContext,
  step: Asker & { promptPath: string | string[]; chainedPromptsPath: ChainedEntry[] },
): string {
  const chained = step.chainedPromptsPath
    .filter((c) => chainedShown(c, ctx.selection))
    .flatMap((c) => chainedFiles(ctx, c, step));
  const follow = chained.map((f, i) => followUp(i + 1, f, ctx.budget.read(f, step, "chainedPromptsPath")));
  const text = promptFilesText(ctx, step) + follow.join("");
  return text.replace(PLACEHOLDER, (whole, bang: string | undefined, name: string) =>
    convertPlaceholder(ctx, whole, name, Boolean(bang), step),
  );
}
