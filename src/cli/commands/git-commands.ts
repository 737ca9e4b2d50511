/** `tgz diff`, `tgz worktree list|prune` and `tgz pr`: the git side of runs. */
import { realpathSync } from "node:fs";
import { diffOf } from "../../git/checkpoints.js";
import { repoRoot } from "../../git/git-command.js";
import { listWorktrees, pruneWorktree, type WorktreeInfo } from "../../git/worktrees.js";
import { openRunPullRequest } from "../../pr/open-run-pr.js";
import { InvalidInputError, NotFoundError } from "../../shared/errors.js";
import type { ProtocolRun } from "../../store/types.js";
import type { AppContext } from "../app-context.js";
import { table } from "../format.js";

/** What a step changed (its base commit to its checkpoint), or the whole run (base to HEAD). */
export async function diffCommand(
  app: AppContext,
  runId: string,
  stepId: string | undefined,
): Promise<number> {
  const run = await app.store.getProtocolRun(Number(runId));
  if (!run.worktreePath) throw new InvalidInputError(`run ${runId} has no worktree`);
  let from: unknown = run.templateConfig.base_commit;
  let to: unknown;
  if (stepId) {
    const step = (await app.store.listStepRuns(run.id)).find((s) => s.stepName === stepId);
    if (!step) throw new NotFoundError("step", stepId);
    from = step.runtimeState.base_commit;
    to = step.runtimeState.checkpoint;
  }
  if (typeof from !== "string")
    throw new InvalidInputError(
      `no checkpoint recorded for ${stepId ? `step ${stepId}` : `run ${runId}`} (only planned runs in their own worktree have checkpoints)`,
    );
  const diff = await diffOf(run.worktreePath, from, typeof to === "string" ? to : undefined);
  process.stdout.write(diff.patch || "(no changes)\n");
  return 0;
}

const ACTIVE = new Set(["planning", "running"]);

async function worktreesWithRuns(
  app: AppContext,
  repo: string,
): Promise<{ info: WorktreeInfo; run: ProtocolRun | undefined }[]> {
  const root = await repoRoot(repo);
  const project = await app.store.findProjectByPath(realpathSync(root));
  const runs = project ? await app.store.listProtocolRuns(project.id) : [];
  const infos = await listWorktrees(root, project?.baseBranch ?? "main");
  return infos.map((info) => ({
    info,
    run: runs.find((r) => r.worktreePath && realpathSync(r.worktreePath) === realpathSync(info.path)),
  }));
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

export async function worktreeListCommand(
  app: AppContext,
  opts: { repo?: string; json?: boolean },
): Promise<number> {
  const rows = await worktreesWithRuns(app, opts.repo ?? process.cwd());
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify(
        rows.map(({ info, run }) => ({ ...info, run_id: run?.id ?? null, run_status: run?.status ?? null })),
        null,
        2,
      )}\n`,
    );
    return 0;
  }
  const total = rows.reduce((n, r) => n + r.info.sizeBytes, 0);
  const lines = rows.map(({ info, run }) => [
    info.branch ?? "-",
    run ? `#${run.id} ${run.status}` : "-",
    mb(info.sizeBytes),
    `${Math.round(info.ageMs / 3_600_000)} h`,
    info.dirty ? "dirty" : "clean",
    String(info.unmergedCommits),
    info.path,
  ]);
  process.stdout.write(
    `${table([["BRANCH", "RUN", "SIZE", "AGE", "STATE", "UNMERGED", "PATH"], ...lines])}\nTotal: ${mb(total)} in ${rows.length} worktree(s)\n`,
  );
  return 0;
}

export async function worktreePruneCommand(
  app: AppContext,
  branches: string[],
  opts: { repo?: string; force?: boolean },
): Promise<number> {
  const repo = opts.repo ?? process.cwd();
  const rows = (await worktreesWithRuns(app, repo)).filter(
    (r) => branches.length === 0 || (r.info.branch && branches.includes(r.info.branch)),
  );
  let refused = 0;
  for (const { info, run } of rows) {
    try {
      await pruneWorktree(repo, info, {
        force: Boolean(opts.force),
        active: Boolean(run && ACTIVE.has(run.status)),
      });
      process.stdout.write(`pruned ${info.branch ?? info.path} (${mb(info.sizeBytes)})\n`);
    } catch (err) {
      refused++;
      process.stderr.write(`${(err as Error).message}\n`);
    }
  }
  return refused > 0 ? 1 : 0;
}

export async function prCommand(
  app: AppContext,
  runId: string,
  opts: { remote?: string; json?: boolean },
): Promise<number> {
  const opened = await openRunPullRequest(app.store, Number(runId), process.env, opts.remote);
  process.stdout.write(
    opts.json
      ? `${JSON.stringify(opened)}\n`
      : `${opened.existed ? "Already open" : "Opened"}: ${opened.url}\n`,
  );
  return 0;
}
