/**
 * Protocol worktrees of a repository and pruning them: each worktree with the run that works in it,
 * and the prune of one, which holds the run's lease while its worktree goes (so no runner or planner
 * starts there meanwhile) and records it on the run in one transaction with what it does to the run.
 */
import { dataDir } from "../config/data-paths.js";
import { repoRoot } from "../git/git-command.js";
import { protocolWorktreeOf } from "../git/run-worktree.js";
import {
  listProtocolWorktrees,
  type PruneRun,
  protocolWorktreesRoot,
  pruneWorktree,
  type WorktreeInfo,
} from "../git/worktrees.js";
import { holdRun } from "../runner/run-lease.js";
import { realPathLoose } from "../shared/paths.js";
import { EVENT } from "../store/event-types.js";
import { RunBusyError } from "../store/store-errors.js";
import type { ProtocolRun, Store } from "../store/types.js";

export interface RunWorktreeRow {
  info: WorktreeInfo;
  run: ProtocolRun | undefined;
}

/**
 * The repository's protocol worktrees, each with the run that works in it. Runs are matched by path
 * over every project (a project known only by its git URL has runs here too).
 */
export async function listRunWorktrees(
  store: Store,
  repo: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunWorktreeRow[]> {
  const root = await repoRoot(repo);
  const data = dataDir(env);
  const project = await store.findProjectByPath(realPathLoose(root));
  const runs = (await store.listProtocolRuns()).flatMap((run) => {
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

/**
 * What pruning needs to know of a run, read under its lease (taken for the prune); a run whose lease
 * a live process holds is `leased`.
 */
async function holdForPrune(store: Store, run: ProtocolRun) {
  let release: () => Promise<void> = async () => undefined;
  let leased = false;
  try {
    release = (await holdRun(store, run.id)).release;
  } catch (err) {
    if (!(err instanceof RunBusyError)) throw err;
    leased = true;
  }
  // read again under the lease: the run may have moved on since the worktrees were listed
  const now = await store.getProtocolRun(run.id);
  const merges = await store.listEvents({
    protocolRunId: run.id,
    eventTypes: [EVENT.prMerged, EVENT.mrMerged],
    limit: 1,
  });
  const info: PruneRun = { id: run.id, status: now.status, leased, prMerged: merges.length > 0 };
  return { info, run: now, release };
}

/**
 * Removes one protocol worktree and its branch (refused, with the reason, by `pruneWorktree`'s rules:
 * uncommitted or unmerged work and paused runs unless `force`, never a planning or running run with a
 * live owner). The run gets `worktree_pruned`; a run left `planning` by a dead planner is blocked, so
 * nothing plans it again unasked.
 */
export async function pruneRunWorktree(
  store: Store,
  repo: string,
  row: RunWorktreeRow,
  opts: { force: boolean },
): Promise<void> {
  const held = row.run ? await holdForPrune(store, row.run) : undefined;
  try {
    await pruneWorktree(repo, row.info, { force: opts.force, run: held?.info ?? null });
    if (!held) return;
    const { run } = held;
    const { info } = row;
    await store.transaction(async (tx) => {
      await tx.appendEvent({
        protocolRunId: run.id,
        eventType: EVENT.worktreePruned,
        message: `Worktree ${info.path} and branch ${info.branch ?? "-"} removed`,
        metadata: { path: info.path, branch: info.branch, forced: opts.force, head: info.head },
      });
      if (run.status === "planning")
        await tx.transitionProtocol(run.id, "blocked", {
          eventType: EVENT.protocolBlocked,
          message: "Planning abandoned: its worktree was pruned",
          metadata: { reason: "worktree_pruned" },
        });
    });
  } finally {
    await held?.release();
  }
}
