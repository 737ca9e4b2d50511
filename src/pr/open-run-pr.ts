/**
 * `tgz pr RUN`: commits what is left in the run's worktree (agent transcripts stay out: the protocol
 * folder git-ignores them), pushes the protocol branch and opens the PR/MR with the plan's summary,
 * its steps, verdicts and tokens. Whatever can be checked first (the worktree, the remote, how the
 * request will be opened: a logged-in CLI or a token) is, before anything is committed or pushed.
 * The outcome is an event either way.
 */
import { dataDir } from "../config/data-paths.js";
import { checkpoint } from "../git/checkpoints.js";
import { git } from "../git/git-command.js";
import { protocolWorktreeOf, requireWorktree } from "../git/run-worktree.js";
import { readPlanSummary } from "../planning/protocol-folder.js";
import { errorMessage, InvalidInputError, TasksGodzillaError } from "../shared/errors.js";
import { EVENT } from "../store/event-types.js";
import type { Store } from "../store/types.js";
import { choosePrRoute, type OpenedPr, openPullRequest } from "./open-pull-request.js";
import { prBody } from "./pr-body.js";
import { resolvePrTarget } from "./pr-target.js";

export class NoRemoteError extends TasksGodzillaError {
  readonly code = "no_remote";
  constructor(worktree: string, remote: string) {
    super(
      `the repository of ${worktree} has no remote "${remote}": add one (git remote add ${remote} URL) or pass --remote NAME`,
    );
  }
}

async function remoteUrlOf(worktree: string, remote: string): Promise<string> {
  try {
    return (await git(worktree, ["remote", "get-url", remote])).trim();
  } catch {
    throw new NoRemoteError(worktree, remote);
  }
}

export async function openRunPullRequest(
  store: Store,
  runId: number,
  env: NodeJS.ProcessEnv,
  remote = "origin",
): Promise<OpenedPr> {
  const run = await store.getProtocolRun(runId);
  const worktree = protocolWorktreeOf(run, dataDir(env));
  if (!worktree) {
    throw new InvalidInputError(
      `run ${runId} works in a checkout of yours, not on a branch of its own; plan it with \`tgz plan\` to get one`,
    );
  }
  const { path: wt, branch } = worktree;
  try {
    requireWorktree(run);
    const remoteUrl = await remoteUrlOf(wt, remote);
    const target = resolvePrTarget(remoteUrl, env);
    const route = await choosePrRoute(target, wt, env);
    await checkpoint(wt, `${run.protocolName}: final sync`);
    await git(wt, ["push", "--set-upstream", remote, `${branch}:${branch}`]);
    const steps = await store.listStepRuns(runId);
    const verdicts = await store.listEvents({
      protocolRunId: runId,
      eventTypes: [EVENT.qaVerdict, EVENT.qaSkipped],
      limit: 100_000,
    });
    const usage = await store.sumUsage({ protocolRunId: runId });
    const byStep = await store.sumUsageByStep(runId);
    const stepsSummary = steps.map((s) => ({
      id: s.stepName,
      status: s.status,
      verdict:
        (verdicts.filter((e) => e.stepRunId === s.id).at(-1)?.metadata.verdict as string | undefined) ?? null,
      tokens: byStep.get(s.id)?.total ?? 0,
    }));
    const meta = (run.templateConfig.protocol_spec?.metadata ?? {}) as { title?: string };
    const title = meta.title ?? run.description ?? run.protocolName;
    const body = prBody({
      protocolName: run.protocolName,
      title,
      task: run.description,
      summary: run.protocolRoot ? readPlanSummary(run.protocolRoot) : null,
      specHash: run.templateConfig.spec_meta?.spec_hash ?? null,
      steps: stepsSummary,
      totalTokens: usage.total,
      estimatedCalls: usage.estimatedCalls,
    });
    const opened = await openPullRequest(
      target,
      { title: `${run.protocolName}: ${title}`, body, head: branch, base: run.baseBranch },
      wt,
      route,
    );
    await store.appendEvent({
      protocolRunId: runId,
      eventType: EVENT.prOpened,
      message: `${target.provider === "github" ? "PR" : "MR"} ${opened.existed ? "already open" : "opened"}: ${opened.url}`,
      metadata: { ...opened, provider: target.provider, repository: target.repository },
    });
    return opened;
  } catch (err) {
    await store.appendEvent({
      protocolRunId: runId,
      eventType: EVENT.prFailed,
      message: `Opening the PR failed: ${errorMessage(err)}`,
      metadata: { error: errorMessage(err) },
    });
    throw err;
  }
}
