/** Runs git with an argument array (never a shell) and turns its failures into typed errors. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { TasksGodzillaError } from "../shared/errors.js";

const exec = promisify(execFile);

export class GitError extends TasksGodzillaError {
  readonly code = "git_failed";
  constructor(
    readonly args: string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`git ${args.join(" ")} failed (exit ${exitCode}): ${stderr.trim() || "no output"}`);
  }
}

export class NotAGitRepositoryError extends TasksGodzillaError {
  readonly code = "not_a_git_repository";
  constructor(dir: string) {
    super(`${dir} is not inside a git repository (run \`git init\` there, or pass --repo)`);
  }
}

export class BaseBranchMissingError extends TasksGodzillaError {
  readonly code = "base_branch_missing";
  constructor(repo: string, base: string) {
    super(
      `base branch "${base}" exists neither as a branch nor as origin/${base} in ${repo} (pass --base with an existing branch, or fetch it)`,
    );
  }
}

/** Identity used for commits only when the repository has none configured. */
const FALLBACK_IDENTITY = ["-c", "user.name=TasksGodzilla", "-c", "user.email=tasksgodzilla@localhost"];

/**
 * How internal commits (checkpoints, restores, the plan) are made whatever the user's git config
 * says: never signed (a signing key that needs a passphrase or an agent would fail the run) and
 * without hooks (a hook that formats, lints or refuses would change or stop the commit of what a
 * step did). The user's hooks still run on their own commits, and on `tgz pr`'s push.
 */
const INTERNAL_COMMIT = ["-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"];

export interface GitOptions {
  /** An internal commit: unsigned, no hooks, a fallback identity when the repository has none. */
  internalCommit?: boolean;
  /** Extra environment, e.g. `GIT_INDEX_FILE` to work on a scratch index. */
  env?: Record<string, string>;
}

export async function git(cwd: string, args: string[], opts: GitOptions = {}): Promise<string> {
  const full = opts.internalCommit
    ? [...INTERNAL_COMMIT, ...((await hasIdentity(cwd)) ? [] : FALLBACK_IDENTITY), ...args]
    : args;
  try {
    const { stdout } = await exec("git", full, {
      cwd,
      maxBuffer: 64 * 1024 * 1024,
      ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}),
    });
    return stdout;
  } catch (err) {
    const e = err as { code?: number | string; stderr?: string; message: string };
    if (e.code === "ENOENT") throw new GitError(args, null, `git not found or ${cwd} does not exist`);
    throw new GitError(args, typeof e.code === "number" ? e.code : null, e.stderr ?? e.message);
  }
}

async function hasIdentity(cwd: string): Promise<boolean> {
  try {
    await exec("git", ["config", "user.email"], { cwd });
    return true;
  } catch {
    return false;
  }
}

/** The repository's top folder; throws NotAGitRepositoryError outside one. */
export async function repoRoot(dir: string): Promise<string> {
  try {
    return (await git(dir, ["rev-parse", "--show-toplevel"])).trim();
  } catch {
    throw new NotAGitRepositoryError(dir);
  }
}

export async function headCommit(dir: string): Promise<string> {
  return (await git(dir, ["rev-parse", "HEAD"])).trim();
}

async function refExists(repo: string, ref: string): Promise<boolean> {
  try {
    await git(repo, ["rev-parse", "--verify", "--quiet", ref]);
    return true;
  } catch {
    return false;
  }
}

export function branchExists(repo: string, branch: string): Promise<boolean> {
  return refExists(repo, `refs/heads/${branch}`);
}

/** The remote whose branches stand in for missing local ones, and whose base a merged branch is judged against. */
const BASE_REMOTE = "origin";

/** The base branch as refs that exist: the local branch and/or its remote-tracking branch `origin/<base>`. */
export async function baseRefs(repo: string, base: string): Promise<string[]> {
  const candidates = [`refs/heads/${base}`, `refs/remotes/${BASE_REMOTE}/${base}`];
  const found: string[] = [];
  for (const ref of candidates) if (await refExists(repo, ref)) found.push(ref);
  return found;
}
