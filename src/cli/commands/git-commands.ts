/** `tgz diff`, `tgz worktree list|prune` and `tgz pr`: the git side of runs. */
import { dataDir } from "../../config/data-paths.js";
import { diffOf } from "../../git/checkpoints.js";
import { repoRoot } from "../../git/git-command.js";
import { protocolWorktreeOf, requireWorktree } from "../../git/run-worktree.js";
import {
  listProtocolWorktrees,
  type PruneRun,
  protocolWorktreesRoot,
  pruneWorktree,
  type WorktreeInfo,
} from "../../git/worktrees.js";
import { openRunPullRequest } from "../../pr/open-run-pr.js";
import { holdRun } from "../../runner/run-lease.js";
import { stepBaseCommit } from "../../runner/step-checkpoints.js";
import { errorMessage, InvalidInputError, NotFoundError } from "../../shared/errors.js";
import { realPathLoose } from "../../shared/paths.js";
import { EVENT } from "../../store/event-types.js";
import { RunBusyError } from "../../store/store-errors.js";
import type { ProtocolRun } from "../../store/types.js";
import type { AppContext } from "../app-context.js";
import { table } from "../format.js";
import { parseRunId } from "../run-id.js";

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
  const run = await app.store.getProtocolRun(parseRunId(runId));
  const place = { run, config: { dataDir: dataDir(process.env) } };
  const worktree = protocolWorktreeOf(run, place.config.dataDir);
  if (!worktree)
    throw new InvalidInputError(
      `run ${runId} works in a checkout of yours, not a protocol worktree, and has no checkpoints (plan it with \`tgz plan\` to get a branch of its own)`,
    );
  requireWorktree(run);
  let from: string | null;
  let to: string | undefined;
  if (stepId) {
    const steps = await app.store.listStepRuns(run.id);
    const step = steps.find((s) => s.stepName === stepId);
    if (!step) throw new NotFoundError("step", stepId);
    from = stepBaseCommit(place, steps, step);
    const saved = step.runtimeState.checkpoint;
    to = typeof saved === "string" && !UNDER_WAY.has(step.status) ? saved : undefined;
  } else {
    from = worktree.baseCommit;
  }
  if (!from) throw new InvalidInputError(`run ${runId} has no recorded start commit`);
  const diff = await diffOf(worktree.path, from, to);
  process.stdout.write(diff.patch || "(no changes)\n");
  return 0;
}

/**
 * The repository's protocol worktrees, each with the run that works in it. Runs are matched by path
 * over every project (a project known only by its git URL has runs here too).
 */
async function worktreesWithRuns(
  app: AppContext,
  repo: string,
): Promise<{ info: WorktreeInfo; run: ProtocolRun | undefined }[]> {
  const root = await repoRoot(repo);
  const data = dataDir(process.env);
  const project = await app.store.findProjectByPath(realPathLoose(root));
  const runs = (await app.store.listProtocolRuns()).flatMap((run) => {
    const worktree = protocolWorktreeOf(run, data);
    return worktree ? [{ run, path: realPathLoose(worktree.path) }] : [];
  });
  const infos = await listProtocolWorktrees(root, {
    root: protocolWorktreesRoot(root, data),
    runs: runs.map((r) => ({ path: r.path, base: r.run.baseBranch })),
    defaultBase: project?.baseBranch ?? "main",
  });
  return infos.map((info) => ({
    info,
    run: runs.find((r) => r.path === realPathLoose(info.path))?.run,
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

/**
 * What pruning needs to know of a run. Its lease is taken for the prune (so no runner or planner
 * starts in the worktree meanwhile); a run whose lease a live process holds is `leased`.
 */
async function pruneRun(app: AppContext, run: ProtocolRun) {
  let release: () => Promise<void> = async () => undefined;
  let leased = false;
  try {
    release = (await holdRun(app.store, run.id)).release;
  } catch (err) {
    if (!(err instanceof RunBusyError)) throw err;
    leased = true;
  }
  // read again under the lease: the run may have moved on since the worktrees were listed
  const now = await app.store.getProtocolRun(run.id);
  const merges = await app.store.listEvents({
    protocolRunId: run.id,
    eventTypes: [EVENT.prMerged, EVENT.mrMerged],
    limit: 1,
  });
  const info: PruneRun = { id: run.id, status: now.status, leased, prMerged: merges.length > 0 };
  return { info, run: now, release };
}

/** Records the prune on the run; a run left `planning` by a dead planner is blocked, so nothing plans it again unasked. */
async function recordPrune(app: AppContext, run: ProtocolRun, info: WorktreeInfo, forced: boolean) {
  await app.store.transaction(async (tx) => {
    await tx.appendEvent({
      protocolRunId: run.id,
      eventType: EVENT.worktreePruned,
      message: `Worktree ${info.path} and branch ${info.branch ?? "-"} removed`,
      metadata: { path: info.path, branch: info.branch, forced, head: info.head },
    });
    if (run.status === "planning")
      await tx.transitionProtocol(run.id, "blocked", {
        eventType: EVENT.protocolBlocked,
        message: "Planning abandoned: its worktree was pruned",
        metadata: { reason: "worktree_pruned" },
      });
  });
}

export async function worktreePruneCommand(
  app: AppContext,
  branches: string[],
  opts: { repo?: string; force?: boolean },
): Promise<number> {
  const repo = opts.repo ?? process.cwd();
  const all = await worktreesWithRuns(app, repo);
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
  for (const { info, run } of rows) {
    // a run's lease is held while its worktree goes, so no runner or planner starts there meanwhile
    const held = run ? await pruneRun(app, run) : undefined;
    try {
      await pruneWorktree(repo, info, { force, run: held?.info ?? null });
      if (held) await recordPrune(app, held.run, info, force);
    } catch (err) {
      refused++;
      process.stderr.write(`${errorMessage(err)}\n`);
      continue;
    } finally {
      await held?.release();
    }
    process.stdout.write(`pruned ${info.branch ?? info.path} (${mb(info.sizeBytes)})\n`);
  }
  return refused > 0 ? 1 : 0;
}

export async function prCommand(
  app: AppContext,
  runId: string,
  opts: { remote?: string; json?: boolean },
): Promise<number> {
  const opened = await openRunPullRequest(app.store, parseRunId(runId), process.env, opts.remote);
  process.stdout.write(
    opts.json
      ? `${JSON.stringify(opened)}\n`
      : `${opened.existed ? "Already open" : "Opened"}: ${opened.url}\n`,
  );
  return 0;
}
