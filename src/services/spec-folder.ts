/**
 * What `tgz run SPEC` brings along: the spec's own folder (its prompts, recordings) is copied into
 * the protocol folder, so a relative `prompt_ref` resolves the same wherever the spec lives. A folder
 * that holds the repository itself is not copied (its files are the repository's), and a folder far
 * bigger than a spec needs is refused rather than copied. A symbolic link is copied as the file it
 * leads to when that is inside the spec's folder or the repository, and left out otherwise, so the
 * protocol folder holds what `tgz spec validate --repo` checked and nothing from elsewhere.
 */
import { cpSync, lstatSync, readdirSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { PROTOCOLS_DIR } from "../git/protocol-names.js";
import { InvalidInputError } from "../shared/errors.js";
import { isInside } from "../shared/paths.js";

const SKIP = new Set([".git", "node_modules", PROTOCOLS_DIR]);
/** More than a spec and its prompts ever need: past this the spec sits in the wrong folder. */
const MAX_FILES = 2000;
const MAX_BYTES = 50 * 1024 * 1024;

export class SpecFolderError extends InvalidInputError {}

function measure(dir: string, acc = { files: 0, bytes: 0 }) {
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name)) continue;
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) measure(p, acc);
    else {
      acc.files++;
      acc.bytes += st.size;
    }
    if (acc.files > MAX_FILES || acc.bytes > MAX_BYTES) return acc;
  }
  return acc;
}

export function copySpecFolder(specPath: string, protocolRoot: string, workspace: string): void {
  const dir = dirname(resolve(specPath));
  // the repository's own root: its files are already where prompt_ref looks (the worktree)
  if (resolve(dir) === resolve(workspace)) return;
  if (isInside(dir, workspace))
    throw new SpecFolderError(
      `the spec's folder ${dir} contains the repository ${workspace}; put the spec and its prompts in a folder of their own`,
    );
  const size = measure(dir);
  if (size.files > MAX_FILES || size.bytes > MAX_BYTES)
    throw new SpecFolderError(
      `the spec's folder ${dir} holds more than ${MAX_FILES} files or ${MAX_BYTES / 1024 / 1024} MB, all of which would be copied into the protocol folder; put the spec and its prompts in a folder of their own`,
    );
  cpSync(dir, protocolRoot, {
    recursive: true,
    dereference: true,
    filter: (src) =>
      !SKIP.has(basename(src)) &&
      !isInside(protocolRoot, src) &&
      (!lstatSync(src).isSymbolicLink() || isInside(dir, src) || isInside(workspace, src)),
  });
}
