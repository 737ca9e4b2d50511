/**
 * The queue can lose jobs (a Redis without persistence restarts) while the store still says a run is
 * `running` or `planning`. The reconciler, run by the server and every worker at start and then
 * periodically, finds such runs that no live runner holds and no queued or active job is about,
 * and queues their job again (for a planning import its `import`, from the source kept on the run)
 * under the singleton key the API uses, so reconcilers racing each other and the API queue it once,
 * with a `run_requeued` event.
 */
import type { JobQueue } from "../queue/job-queue.js";
import { type JobRequest, jobs } from "../services/dispatch.js";
import { importJobOf, importSourceOf } from "../services/import-run.js";
import { errorMessage } from "../shared/errors.js";
import { EVENT } from "../store/event-types.js";
import type { ProtocolRun, Store } from "../store/types.js";
import { runOfJob } from "./job-handlers.js";
import type { WorkerLogger } from "./job-worker.js";

export interface ReconcilerOptions {
  store: Store;
  queue: JobQueue;
  logger?: WorkerLogger;
  /** How often to look; default 30 s. */
  intervalMs?: number;
  /**
   * A run whose status changed this recently is left alone: the API moves a run to `running` just
   * before it queues the job, and that job must not be doubled. Default 30 s.
   */
  settleMs?: number;
}

/** Open jobs looked at per pass; more than this many queued jobs means the queue is not idle anyway. */
const OPEN_JOBS_LIMIT = 10_000;

/** The job an action queues for such a run, with the same singleton key: a planning import is imported. */
function jobFor(run: ProtocolRun): JobRequest {
  const source = importSourceOf(run);
  if (run.status === "planning" && source) return importJobOf(run, source);
  return run.status === "planning"
    ? { kind: "plan", payload: { protocol_run_id: run.id }, singletonKey: `plan:${run.id}` }
    : jobs.executeRun(run);
}

export class RunReconciler {
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: ReconcilerOptions) {}

  /** One pass; returns the runs it queued again. */
  async reconcile(): Promise<number[]> {
    const { store, queue } = this.opts;
    const settled = store.clock.now() - (this.opts.settleMs ?? 30_000);
    const runs = (await store.listUnleasedRuns(["running", "planning"])).filter(
      (r) => Date.parse(r.updatedAt) <= settled,
    );
    if (runs.length === 0) return [];
    const open = await queue.list({ states: ["waiting", "delayed", "active"], limit: OPEN_JOBS_LIMIT });
    const covered = new Set(
      open.map((j) => {
        try {
          return runOfJob(j.payload);
        } catch {
          return undefined;
        }
      }),
    );
    const requeued: number[] = [];
    for (const run of runs) {
      if (covered.has(run.id)) continue;
      const { kind, payload, singletonKey } = jobFor(run);
      const job = await queue.enqueue(kind, payload, singletonKey ? { singletonKey } : {});
      if (job.deduplicated) continue;
      await store.appendEvent({
        protocolRunId: run.id,
        eventType: EVENT.runRequeued,
        message: `The run was ${run.status} with no runner and no job; ${kind} queued again`,
        metadata: { job_id: job.id, kind, status: run.status },
      });
      this.opts.logger?.warn({ run: run.id, job: job.id, kind }, "run had no job; queued again");
      requeued.push(run.id);
    }
    return requeued;
  }

  /** Reconciles now and then every interval until stopped; a failed pass is logged and retried next time. */
  start(): void {
    const tick = () => {
      this.pass = this.reconcile().catch((err) =>
        this.opts.logger?.warn({ error: errorMessage(err) }, "reconciling runs failed; trying again later"),
      );
    };
    tick();
    this.timer = setInterval(tick, this.opts.intervalMs ?? 30_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.pass;
  }
}
