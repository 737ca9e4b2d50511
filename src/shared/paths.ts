/** Path containment with symlinks resolved: the check behind "paths stay inside their roots". */
import { existsSync, realpathSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve } from "node:path";

/** Real path of `p`, or of its deepest existing ancestor joined with the rest (for files not yet written). */
export function realPathLoose(p: string): string {
  const abs = resolve(p);
  if (existsSync(abs)) return realpathSync(abs);
  const parent = dirname(abs);
  if (parent === abs) return abs;
  return resolve(realPathLoose(parent), abs.slice(parent.length + 1));
}

export function isInside(root: string, p: string): boolean {
  const rel = relative(realPathLoose(root), realPathLoose(p));
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}
