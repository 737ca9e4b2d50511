/** Protocol numbers and names: `NNNN-<short-name>`, which is also the branch and worktree name. */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { InvalidInputError } from "../shared/errors.js";
import type { StoreOps } from "../store/types.js";
import { GitError, git } from "./git-command.js";

/** The folder of a checkout that holds the protocol folders (`.protocols/NNNN-<name>/`). */
export const PROTOCOLS_DIR = ".protocols";

/**
 * A name that is numbered already (`0007-x`, four digits at least): kept as it is, it is a branch
 * name and a folder name, so one path segment (no `/`, no `..`) and a valid ref (no `.` or `.lock` end).
 */
export const NUMBERED_NAME = /^\d{4,}-(?!.*\.\.)[A-Za-z0-9._-]*[A-Za-z0-9_-](?<!\.lock)$/;

/** Lowercase `[a-z0-9-]`, no leading/trailing dash, at most `max` characters; `fallback` when nothing is left. */
export function slugify(text: string, max = 48, fallback = "task"): string {
  const slug = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, max)
    .replace(/-+$/g, "");
  return slug || fallback;
}

/** A git-safe branch slug, never empty. */
export function sanitizeBranchName(short: string): string {
  return slugify(short);
}

export function protocolName(n: number, short: string): string {
  return `${String(n).padStart(4, "0")}-${sanitizeBranchName(short)}`;
}

/** The longest protocol name: it is a folder name and a branch name. */
export const MAX_PROTOCOL_NAME = 100;

/** The highest protocol number: numbers past it could not be counted on exactly (nor the next one). */
export const MAX_PROTOCOL_NUMBER = Number.MAX_SAFE_INTEGER - 1;

/** The number a protocol name starts with (`0007-x` → 7, `10000-x` → 10000), else 0. */
function protocolNumberOf(name: string): number {
  const m = /^(\d{4,})-/.exec(name);
  const n = m ? Number(m[1]) : 0;
  // a number numbering cannot hold exactly is no number of ours (the API refuses such names)
  return Number.isSafeInteger(n) ? n : 0;
}

/**
 * Protocol folders in `dir/.protocols/`, and the local and remote-tracking branches of its repository.
 * Read before the write transaction that numbers a run: a folder listing and a git call need no lock.
 */
export async function namesInCheckout(dir: string): Promise<string[]> {
  const names: string[] = [];
  const folder = join(dir, PROTOCOLS_DIR);
  if (existsSync(folder)) names.push(...readdirSync(folder));
  try {
    // the last path segment: refs/heads/0005-x and refs/remotes/origin/0005-x both name 0005-x
    const refs = await git(dir, [
      "for-each-ref",
      "--format=%(refname:lstrip=-1)",
      "refs/heads",
      "refs/remotes",
    ]);
    names.push(...refs.split("\n"));
  } catch (err) {
    // a workspace that is not a git repository has no branches to count
    if (!(err instanceof GitError)) throw err;
  }
  return names;
}

/**
 * One past the highest number taken in the project: by a run (its name or its branch), or among
 * `inCheckout` (namesInCheckout: protocol folders, local and remote-tracking branches, so a
 * teammate's pushed `0007-x` counts too). Call it inside the write transaction that inserts the
 * run: writers take turns on the runs, so concurrent creators never share a number.
 */
export async function nextProtocolNumber(
  tx: Pick<StoreOps, "listProtocolRuns">,
  projectId: number,
  inCheckout: string[],
): Promise<number> {
  const names = (await tx.listProtocolRuns(projectId)).flatMap((r) => [r.protocolName, runBranch(r)]);
  const next = Math.max(0, ...[...names, ...inCheckout].map(protocolNumberOf)) + 1;
  if (!Number.isSafeInteger(next))
    throw new InvalidInputError(
      `protocol numbers of project ${projectId} are used up (a run or branch is numbered ${next - 1}); name the run NNNN-<name> with a free number`,
    );
  return next;
}

/** The branch a planned run works on (recorded at planning), else its protocol name. */
export function runBranch(run: { protocolName: string; templateConfig: Record<string, unknown> }): string {
  const branch = run.templateConfig.branch;
  return typeof branch === "string" ? branch : run.protocolName;
}
