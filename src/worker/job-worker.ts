/**
 * A worker: claims jobs, heartbeats each lease, and runs the job's handler with a signal that aborts
 * (killing the engine's process group) as soon as the lease is lost. Handlers are idempotent: a job
 * may run again after a worker died.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { ClaimedJob, JobKind, JobQueue } from "../queue/job-queue.js";
import { errorMessage, TasksGodzillaError } from "../shared/errors.js";

export type JobHandler = (job: ClaimedJob, signal: AbortSignal) => Promise<void>;

export interface WorkerOptions {
  queue: JobQueue;
  handlers: Partial<Record<JobKind, JobHandler>>;
  workerId: string;
  leaseMs?: number;
  pollMs?: number;
  /** Jobs run at once by this worker. */
  concurrency?: number;
  log?: (line: Record<string, unknown>) => void;
}

export class JobWorker {
  private stopping = false;
  private readonly running = new Set<Promise<void>>();
  private readonly controllers = new Set<AbortController>();
  private loop: Promise<void> | undefined;

  constructor(private readonly opts: WorkerOptions) {}

  private get leaseMs() {
    return this.opts.leaseMs ?? 30_000;
  }

  private log(line: Record<string, unknown>) {
    this.opts.log?.({ worker: this.opts.workerId, ...line });
  }

  start(): void {
    this.loop ??= this.run();
  }

  private async run(): Promise<void> {
    const kinds = Object.keys(this.opts.handlers) as JobKind[];
    while (!this.stopping) {
      if (this.running.size >= (this.opts.concurrency ?? 1)) {
        await Promise.race(this.running);
        continue;
      }
      let job: ClaimedJob | undefined;
      try {
        job = await this.opts.queue.claim(this.opts.workerId, this.leaseMs, kinds);
      } catch (err) {
        // a dropped database or Redis connection: back off and try again
        this.log({ level: "warn", msg: "claim failed; retrying", error: errorMessage(err) });
        await sleep(Math.min(5_000, (this.opts.pollMs ?? 500) * 4));
        continue;
      }
      if (!job) {
        await sleep(this.opts.pollMs ?? 500);
        continue;
      }
      const p = this.execute(job).finally(() => this.running.delete(p));
      this.running.add(p);
    }
    await Promise.allSettled(this.running);
  }

  private async execute(job: ClaimedJob): Promise<void> {
    const controller = new AbortController();
    this.controllers.add(controller);
    const beat = setInterval(
      () => {
        this.opts.queue.heartbeat(job.id, job.leaseToken, this.leaseMs).catch((err) => {
          this.log({
            level: "warn",
            msg: "lease lost; aborting the job",
            job: job.id,
            error: errorMessage(err),
          });
          controller.abort(err);
        });
      },
      Math.max(100, Math.floor(this.leaseMs / 3)),
    );
    const started = Date.now();
    this.log({ level: "info", msg: "job started", job: job.id, kind: job.kind, attempt: job.attempts });
    try {
      const handler = this.opts.handlers[job.kind];
      if (!handler) throw new Error(`no handler for job kind ${job.kind}`);
      await handler(job, controller.signal);
      if (controller.signal.aborted) return; // the lease is someone else's now: neither complete nor fail
      await this.opts.queue.complete(job.id, job.leaseToken);
      this.log({
        level: "info",
        msg: "job completed",
        job: job.id,
        kind: job.kind,
        duration_ms: Date.now() - started,
      });
    } catch (err) {
      if (controller.signal.aborted) return;
      const retryable = TasksGodzillaError.is(err) ? err.retryable : false;
      const outcome = await this.opts.queue
        .fail(job.id, job.leaseToken, { message: errorMessage(err), retryable })
        .catch(() => "lost");
      this.log({
        level: "error",
        msg: "job failed",
        job: job.id,
        kind: job.kind,
        outcome,
        error: errorMessage(err),
      });
    } finally {
      clearInterval(beat);
      this.controllers.delete(controller);
    }
  }

  /** Stops claiming; with `abort`, running jobs are aborted (their steps go back to pending). */
  async stop(opts: { abort?: boolean } = {}): Promise<void> {
    this.stopping = true;
    if (opts.abort) for (const c of this.controllers) c.abort(new Error("worker stopping"));
    await this.loop;
  }
}
