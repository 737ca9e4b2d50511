/** `tgz diff`, `tgz worktree list|prune` and `tgz pr`: the git side of runs. */
import { existsSync } from "node:fs";
import { diffOf } from "../../git/checkpoints.js";
import { repoRoot } from "../../git/git-command.js";
import {
  listProtocolWorktrees,
  protocolWorktreesRoot,
  pruneWorktree,
  type WorktreeInfo,
} from "../../git/worktrees.js";
import { openRunPullRequest } from "../../pr/open-run-pr.js";
import { checkpointsEnabled, stepBaseCommit } from "../../runner/step-checkpoints.js";
import { errorMessage, InvalidInputError, NotFoundError } from "../../shared/errors.js";
import { realPathLoose } from "../../shared/paths.js";
import { EVENT } from "../../store/event-types.js";
import type { ProtocolRun } from "../../store/types.js";
import type { AppContext } from "../app-context.js";
import { table } from "../format.js";

/** Steps whose latest attempt has not reached its checkpoint yet: their change is in the working tree. */
const UNDER_WAY = new Set(["running", "needs_qa"]);

/**
 * What a step changed: from where it starts (the checkpoint of the step before it, or the run's
 * start) to its latest checkpoint, or to the working tree while it runs. Without a step: the whole
 * run, from its start to the working tree. The worktree's index is never touched.
 */
export async function diffCommand(
  app: AppContext,
  runId: string,
  stepId: string | undefined,
): Promise<number> {
  const run = await app.store.getProtocolRun(Number(runId));
  const project = await app.store.getProject(run.projectId);
  if (!run.worktreePath || !checkpointsEnabled({ run, project }))
    throw new InvalidInputError(
      `run ${runId} works in the main checkout and has no checkpoints (plan it with \`tgz plan\` to get a branch of its own)`,
    );
  if (!existsSync(run.worktreePath))
    throw new InvalidInputError(`the worktree of run ${runId} (${run.worktreePath}) no longer exists`);
  let from: string | null;
  let to: string | undefined;
  if (stepId) {
    const steps = await app.store.listStepRuns(run.id);
    const step = steps.find((s) => s.stepName === stepId);
    if (!step) throw new NotFoundError("step", stepId);
    from = stepBaseCommit({ run, project }, steps, step);
    const saved = step.runtimeState.checkpoint;
    to = typeof saved === "string" && !UNDER_WAY.has(step.status) ? saved : undefined;
  } else {
    from = typeof run.templateConfig.base_commit === "string" ? run.templateConfig.base_commit : null;
  }
  if (!from) throw new InvalidInputError(`run ${runId} has no recorded start commit`);
  const diff = await diffOf(run.worktreePath, from, to);
  process.stdout.write(diff.patch || "(no changes)\n");
  return 0;
}

async function worktreesWithRuns(
  app: AppContext,
  repo: string,
): Promise<{ info: WorktreeInfo; run: ProtocolRun | undefined }[]> {
  const root = await repoRoot(repo);
  const project = await app.store.findProjectByPath(realPathLoose(root));
  const runs = (project ? await app.store.listProtocolRuns(project.id) : []).filter(
    (r): r is ProtocolRun & { worktreePath: string } =>
      r.worktreePath !== null && r.worktreePath !== project?.localPath,
  );
  const infos = await listProtocolWorktrees(root, {
    root: protocolWorktreesRoot(root, process.env),
    runs: runs.map((r) => ({ path: r.worktreePath, base: r.baseBranch })),
    defaultBase: project?.baseBranch ?? "main",
  });
  return infos.map((info) => ({
    info,
    run: runs.find((r) => realPathLoose(r.worktreePath) === realPathLoose(info.path)),
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
    info.unmergedCommits === null ? "?" : String(info.unmergedCommits),
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
      await pruneWorktree(repo, info, { force: Boolean(opts.force), runStatus: run?.status ?? null });
    } catch (err) {
      refused++;
      process.stderr.write(`${errorMessage(err)}\n`);
      continue;
    }
    process.stdout.write(`pruned ${info.branch ?? info.path} (${mb(info.sizeBytes)})\n`);
    if (run) {
      await app.store.appendEvent({
        protocolRunId: run.id,
        eventType: EVENT.worktreePruned,
        message: `Worktree ${info.path} and branch ${info.branch ?? "-"} removed`,
        metadata: { path: info.path, branch: info.branch, forced: Boolean(opts.force), head: info.head },
      });
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
