/** `tgz diff`, `tgz worktree list|prune` and `tgz pr`: the git side of runs. */
import { dataDir } from "../../config/data-paths.js";
import { repoRoot } from "../../git/git-command.js";
import { jobs } from "../../services/dispatch.js";
import { listRunWorktrees, pruneRunWorktree } from "../../services/prune-worktrees.js";
import { openPr } from "../../services/run-actions.js";
import { runDiff } from "../../services/step-diff.js";
import { errorMessage, NotFoundError } from "../../shared/errors.js";
import { EVENT } from "../../store/event-types.js";
import type { StepRun } from "../../store/types.js";
import type { AppContext } from "../app-context.js";
import { table } from "../format.js";
import { localDispatch, withQueueDispatch } from "../local-work.js";
import { parseRunId } from "../run-id.js";

/** `tgz diff RUN [STEP]`: the step's change from its checkpoints, or the whole run's (see runDiff). */
export async function diffCommand(
  app: AppContext,
  runId: string,
  stepId: string | undefined,
): Promise<number> {
  const run = await app.store.getProtocolRun(parseRunId(runId));
  let step: StepRun | null = null;
  if (stepId) {
    step = (await app.store.listStepRuns(run.id)).find((s) => s.stepName === stepId) ?? null;
    if (!step) throw new NotFoundError("step", stepId);
  }
  const diff = await runDiff(app.store, run, step, dataDir(process.env));
  process.stdout.write(diff.patch || "(no changes)\n");
  return 0;
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

export async function worktreeListCommand(
  app: AppContext,
  opts: { repo?: string; json?: boolean },
): Promise<number> {
  const rows = await listRunWorktrees(app.store, opts.repo ?? process.cwd());
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
    info.unmergedCommits === null
      ? "?"
      : `${info.unmergedCommits}${info.mergedByContent ? " (merged by content)" : ""}`,
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
  const all = await listRunWorktrees(app.store, repo);
  const unknown = branches.filter((b) => !all.some((r) => r.info.branch === b));
  if (unknown.length > 0) {
    process.stderr.write(
      `no protocol worktree with branch ${unknown.join(", ")} in ${await repoRoot(repo)} (see \`tgz worktree list\`); nothing pruned\n`,
    );
    return 1;
  }
  const rows = all.filter(
    (r) => branches.length === 0 || (r.info.branch && branches.includes(r.info.branch)),
  );
  const force = Boolean(opts.force);
  let refused = 0;
  for (const row of rows) {
    try {
      await pruneRunWorktree(app.store, repo, row, { force });
    } catch (err) {
      refused++;
      process.stderr.write(`${errorMessage(err)}\n`);
      continue;
    }
    process.stdout.write(`pruned ${row.info.branch ?? row.info.path} (${mb(row.info.sizeBytes)})\n`);
  }
  return refused > 0 ? 1 : 0;
}

/**
 * `tgz pr RUN`: the open_pr action (refused for a run without a branch of its own); its job pushes
 * the branch and opens the PR/MR here, now (`--queue`: a worker does it).
 */
export async function prCommand(
  app: AppContext,
  runId: string,
  opts: { remote?: string; json?: boolean; queue?: boolean },
): Promise<number> {
  const id = parseRunId(runId);
  const outcome = await openPr({ store: app.store, source: "cli" }, id);
  const job = jobs.openPr(outcome.run, opts.remote);
  if (opts.queue) {
    const queued = await withQueueDispatch(app, (dispatch) => dispatch(job, outcome.run));
    process.stdout.write(
      opts.json ? `${JSON.stringify({ job: queued })}\n` : `PR queued (job ${queued.id})\n`,
    );
    return 0;
  }
  const since = (await app.store.listEvents({ protocolRunId: id, newestFirst: true, limit: 1 }))[0]?.id ?? 0;
  await localDispatch(app, { json: true })(job, outcome.run);
  // what the job did, as the ledger has it
  const [opened] = await app.store.listEvents({
    protocolRunId: id,
    afterId: since,
    eventTypes: [EVENT.prOpened],
  });
  if (!opened) return 1;
  const {
    provider: _provider,
    repository: _repository,
    ...pr
  } = opened.metadata as {
    url: string;
    existed: boolean;
    provider: string;
    repository: string;
  };
  process.stdout.write(
    opts.json ? `${JSON.stringify(pr)}\n` : `${pr.existed ? "Already open" : "Opened"}: ${pr.url}\n`,
  );
  return 0;
}
