/**
 * The files `config/placeholders.js` names, checked at import, every entry whether a prompt uses it
 * or not: a `userDir` path is relative to the repository and stays in it (the run reads it in its
 * worktree), a `packageDir` path stays in the package, symlinks resolved; a glob is `dir/*.ext`
 * and brings in a bounded number and size of files.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { isInside } from "../shared/paths.js";
import type { Catalog } from "./catalog.js";
import type { PackageLocation } from "./find-package.js";
import { type Asker, checkFileCount, checkFileSize, refuse } from "./import-limits.js";

export type PlaceholderKind = "userDir" | "packageDir";

export interface PlaceholderFile {
  name: string;
  kind: PlaceholderKind;
  /** As written in placeholders.js. */
  path: string;
  /** `dir/*.ext`: the files of `dir` whose names end in `.ext`. */
  glob: boolean;
  /** The files it names that exist now (absolute; a glob's in the order CodeMachine joins them). */
  files: string[];
}

/** `dir/*.ext` (the glob the runner reads): the suffix `.ext`; null for a plain file name. */
function globSuffix(path: string, asker: Asker, field: string): string | null {
  const name = basename(path);
  const special = /[*?[]/;
  if (!special.test(path)) return null;
  if (name.startsWith("*.") && !special.test(name.slice(1)) && !special.test(dirname(path)))
    return name.slice(1);
  throw refuse(
    asker,
    field,
    `"${path}": only "dir/*.ext" globs are supported (every file of one folder whose name ends in .ext)`,
  );
}

/** The regular files of `dir` ending in `suffix`, sorted as CodeMachine sorts them (case-insensitively). */
function globMatches(dir: string, suffix: string, shown: string, asker: Asker, field: string): string[] {
  const names = readdirSync(dir).filter((f) => f.endsWith(suffix));
  // a huge folder is refused on its names, before each file is looked at
  checkFileCount(names.length, shown, asker, field, "matches");
  return names
    .filter((f) => statSync(join(dir, f), { throwIfNoEntry: false })?.isFile())
    .sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()))
    .map((f) => join(dir, f));
}

function checkEntry(
  kind: PlaceholderKind,
  name: string,
  path: string,
  root: string,
  asker: Asker,
): PlaceholderFile {
  const field = name; // errors read "module.exports.userDir: spec: …"
  const where = kind === "userDir" ? "the repository" : "the package";
  if (kind === "userDir" && isAbsolute(path))
    throw refuse(
      asker,
      field,
      `"${path}" is an absolute path; userDir files are read in the run's worktree, so name them relative to the repository`,
    );
  const suffix = globSuffix(path, asker, field);
  const target = resolve(root, path);
  const within = suffix === null ? target : dirname(target);
  const rel = relative(root, within);
  if (rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel))
    throw refuse(asker, field, `"${path}" is outside ${where}`);
  if (!isInside(root, within))
    throw refuse(asker, field, `"${path}" is outside ${where} (through a symlink)`);
  let files: string[] = [];
  if (suffix !== null) {
    if (existsSync(within) && statSync(within).isDirectory())
      files = globMatches(within, suffix, path, asker, field);
  } else if (statSync(target, { throwIfNoEntry: false })?.isFile()) files = [target];
  for (const f of files)
    if (!isInside(root, f)) {
      const shown = relative(root, f);
      throw refuse(asker, field, `"${shown}" is outside ${where} (through a symlink)`);
    }
  checkFileSize(files, path, asker, field, suffix === null ? "has" : "matches");
  return { name, kind, path, glob: suffix !== null, files };
}

/**
 * Every placeholders.js entry checked, by name; where both lists name it, userDir wins, as CodeMachine
 * resolves it.
 */
export function checkPlaceholderFiles(
  catalog: Catalog,
  pkg: PackageLocation,
  repoDir: string,
): Map<string, PlaceholderFile> {
  const file = join(pkg.configDir, "placeholders.js");
  const out = new Map<string, PlaceholderFile>();
  const lists: [PlaceholderKind, string][] = [
    ["packageDir", pkg.root],
    ["userDir", repoDir],
  ];
  for (const [kind, root] of lists) {
    const asker = { file, where: `module.exports.${kind}` };
    for (const [name, path] of Object.entries(catalog.placeholders[kind]))
      out.set(name, checkEntry(kind, name, path, root, asker));
  }
  return out;
}
