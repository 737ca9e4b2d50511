/**
 * Placeholder values for `{{name}}`: literals from the spec, files read when the step runs (so a file
 * an earlier step writes can feed a later prompt), and built-ins. Only the names a step uses are read.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { userInfo } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { isInside } from "../shared/paths.js";
import { FilePlaceholder } from "../spec/schema.js";
import { StepResolutionError } from "./step-resolution-error.js";

export interface PlaceholderRoots {
  workspace: string;
  protocolRoot: string;
}

const NAME = /\{\{\s*([\w.-]+)\s*\}\}/g;

export function usedNames(...texts: string[]): Set<string> {
  const names = new Set<string>();
  for (const t of texts) for (const m of t.matchAll(NAME)) names.add(m[1]!);
  return names;
}

/** `dir/*.ext`: matching files sorted case-insensitively, each headed by its name; none may lead out of `base`. */
function readGlob(pattern: string, base: string, pointer: string, read = true): string | undefined {
  const dir = dirname(pattern);
  const ext = basename(pattern).slice(1);
  if (!existsSync(dir)) return undefined;
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(ext))
    .sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()));
  const outside = files.find((f) => !isInside(base, join(dir, f)));
  if (outside)
    throw new StepResolutionError(pointer, `placeholder file ${join(dir, outside)} leads outside its folder`);
  if (files.length === 0 || !read) return undefined;
  return files.map((f) => `<!-- File: ${f} -->\n\n${readFileSync(join(dir, f), "utf8")}`).join("\n\n---\n\n");
}

function readPlaceholderFile(path: string, pointer: string): string {
  if (!statSync(path).isFile())
    throw new StepResolutionError(pointer, `placeholder file ${path} is not a file`);
  return readFileSync(path, "utf8");
}

/** The placeholder's file (or glob), held inside its folder: the path, then what it leads to. */
function placeholderPath(name: string, spec: FilePlaceholder, roots: PlaceholderRoots) {
  const base = spec.from === "protocol" ? roots.protocolRoot : roots.workspace;
  const path = resolve(base, spec.file);
  const pointer = `/placeholders/${name}`;
  if (!isInside(base, path))
    throw new StepResolutionError(
      pointer,
      `placeholder file "${spec.file}" escapes the ${spec.from ?? "workspace"}`,
    );
  return { base, path, pointer, glob: basename(path).startsWith("*.") };
}

function readFilePlaceholder(name: string, spec: FilePlaceholder, roots: PlaceholderRoots): string {
  const { base, path, pointer } = placeholderPath(name, spec, roots);
  const content = basename(path).startsWith("*.")
    ? readGlob(path, base, pointer)
    : existsSync(path)
      ? readPlaceholderFile(path, pointer)
      : undefined;
  if (content !== undefined) return content;
  if (spec.optional) return "";
  throw new StepResolutionError(
    pointer,
    `required placeholder {{${name}}}: ${spec.file} does not exist (yet)`,
  );
}

export function builtinValues(projectName: string): Record<string, string> {
  const now = new Date();
  return {
    date: now.toISOString().slice(0, 10),
    datetime: now.toISOString(),
    timestamp: String(Math.floor(now.getTime() / 1000)),
    user_name: userInfo().username,
    project_name: projectName,
  };
}

/**
 * The values of the placeholders `names` uses. With `readFiles: false` (validation before the run)
 * file placeholders are only checked for containment (symlinks resolved), not read.
 */
export function placeholderValues(
  placeholders: Record<string, unknown> | null | undefined,
  names: Set<string>,
  roots: PlaceholderRoots,
  readFiles: boolean,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of names) {
    const value = placeholders?.[name];
    if (value === undefined) continue;
    const file = FilePlaceholder.safeParse(value);
    if (!file.success) out[name] = value;
    else if (readFiles) out[name] = readFilePlaceholder(name, file.data, roots);
    else {
      // before the run: where it points, not what it holds (an earlier step may write it)
      const { base, path, pointer, glob } = placeholderPath(name, file.data, roots);
      if (glob) readGlob(path, base, pointer, false);
    }
  }
  return out;
}
