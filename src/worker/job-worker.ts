/**
 * A worker: claims jobs, heartbeats each lease, and runs the job's handler with a signal that aborts
 * (killing the engine's process group) as soon as the lease is taken away. Handlers are idempotent:
 * a job may run again after a worker died. A worker that stops gracefully hands its jobs back at once.
 *
 * An outage of the queue's backend (the database or Redis) is ridden out: heartbeats and the
 * queue calls after a job are retried with backoff for up to OUTAGE_BUDGET_MS, a lease that lapsed
 * only because it could not be renewed does not stop the job (the run it works on is held by its
 * runner's own lease, which nobody takes during an outage), and a job that failed because a backend
 * is away (an InfrastructureError) goes back to the queue with backoff without using up an attempt.
 */
import type { BaseLogger } from "pino";
import type { ClaimedJob, JobKind, JobQueue } from "../queue/job-queue.js";
import { LeaseLostError, WorkerStoppingError } from "../queue/queue-errors.js";
import { type Clock, systemClock } from "../shared/clock.js";
import { errorMessage, HandoffError, infrastructureFailure } from "../shared/errors.js";
import { OUTAGE_BUDGET_MS } from "../store/ride-outages.js";
import { RunBusyError } from "../store/store-errors.js";
import { isTransientError } from "./retry-policy.js";

/**
 * `signal` aborts when the job must stop (lease lost, worker stopping); `abort` lets what the handler
 * runs hand the job back itself (an engine slot it lost).
 */
export type JobHandler = (
  job: ClaimedJob,
  signal: AbortSignal,
  abort: (reason: HandoffError) => void,
) => Promise<void>;

export type WorkerLogger = Pick<BaseLogger, "info" | "warn" | "error">;

export interface WorkerOptions {
  queue: JobQueue;
  handlers: Partial<Record<JobKind, JobHandler>>;
  workerId: string;
  leaseMs?: number;
  pollMs?: number;
  /** Jobs run at once by this worker. */
  concurrency?: number;
  logger?: WorkerLogger;
  /** Told of each job this worker finished and what came of it (metrics); hand-backs are not finishes. */
  onFinished?: (job: ClaimedJob, outcome: JobOutcome, seconds: number) => void;
  /** Heartbeats, backoff and retries are timed by it; default the system clock. */
  clock?: Clock;
  /** How long an outage of the queue's backend is ridden out; default OUTAGE_BUDGET_MS. */
  outageBudgetMs?: number;
}

/** What a finished job came to: done, failed with a retry to come, or failed for good (dead). */
export type JobOutcome = "completed" | "retried" | "failed";

/** A queue call that failed (a heartbeat, completing a job): first retry, doubling to the cap. */
const RETRY_MS = 250;
const MAX_RETRY_MS = 2000;
/** A job stopped by an outage is tried again after this, doubling to the cap, without using an attempt. */
const OUTAGE_BACKOFF_MS = 1000;
const MAX_OUTAGE_BACKOFF_MS = 30_000;
/** How long a stop that aborts waits for its jobs to be handed back (the queue may be away). */
const HANDBACK_WAIT_MS = 5000;

export class JobWorker {
  private stopping = false;
  /** Aborted by stop: ends the loop's waits (a backoff, a claim the queue does not answer). */
  private readonly halt = new AbortController();
  private readonly stopped = new Promise<undefined>((resolve) =>
    this.halt.signal.addEventListener("abort", () => resolve(undefined), { once: true }),
  );
  private readonly running = new Set<Promise<void>>();
  private readonly controllers = new Set<AbortController>();
  /** Jobs this worker saw stopped by an outage in a row (any job finishing ends the streak): their backoff. */
  private outageStreak = 0;
  private loop: Promise<void> | undefined;

  constructor(private readonly opts: WorkerOptions) {}

  private get clock(): Clock {
    return this.opts.clock ?? systemClock;
  }

  private get outageBudgetMs(): number {
    return this.opts.outageBudgetMs ?? OUTAGE_BUDGET_MS;
  }

  private get leaseMs() {
    return this.opts.leaseMs ?? 30_000;
  }

  private get beatMs() {
    return Math.max(100, Math.floor(this.leaseMs / 3));
  }

  private log(level: "info" | "warn" | "error", msg: string, fields: Record<string, unknown> = {}) {
    this.opts.logger?.[level]({ worker: this.opts.workerId, ...fields }, msg);
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Sleeps, or less when the worker stops. */
  private pause(ms: number): Promise<unknown> {
    return this.clock.sleep(ms, this.halt.signal);
  }

  private async run(): Promise<void> {
    const kinds = Object.keys(this.opts.handlers) as JobKind[];
    let backoff = 0;
    while (!this.stopping) {
      if (this.running.size >= (this.opts.concurrency ?? 1)) {
        await Promise.race([...this.running, this.stopped]);
        continue;
      }
      let job: ClaimedJob | undefined;
      try {
        const claiming = this.opts.queue.claim(this.opts.workerId, this.leaseMs, kinds);
        job = await Promise.race([claiming, this.stopped]);
        if (this.stopping) {
          this.handBackLate(claiming);
          break;
        }
        backoff = 0;
      } catch (err) {
        // a dropped database or Redis connection: back off (doubling, at most 5 s) and try again
        backoff = Math.min(5_000, Math.max(250, backoff * 2));
        this.log("warn", "claim failed; retrying", { error: errorMessage(err), retry_in_ms: backoff });
        await this.pause(backoff);
        continue;
      }
      if (!job) {
        await this.pause(this.opts.pollMs ?? 500);
        continue;
      }
      const p = this.execute(job).finally(() => this.running.delete(p));
      this.running.add(p);
    }
  }

  /** A claim still under way when the worker stopped: a job it brings goes straight back. */
  private handBackLate(claiming: Promise<ClaimedJob | undefined>): void {
    claiming
      .then((job) => job && this.opts.queue.release(job.id, job.leaseToken, { reason: "worker stopping" }))
      .catch(() => undefined);
  }

  /**
   * Heartbeats every third of the lease until the returned function is called. A lease taken away
   * while it was valid (the job was cancelled, or the queue gave it to another) aborts the job at
   * once. A failed beat is retried with backoff while the backend is away, for up to the outage
   * budget; past it the job is aborted as if its lease were lost. A lease found gone after beats
   * failed or hung (the queue was away: its lease lapsed, or Redis came back without the job) was
   * lost to the outage, not taken away: the job runs on, fenced by its run's lease, and a second
   * delivery of it finds the run held or done.
   */
  private heartbeat(job: ClaimedJob, controller: AbortController): () => void {
    const stop = new AbortController();
    const signal = AbortSignal.any([stop.signal, controller.signal]);
    const clock = this.clock;
    void (async () => {
      let leaseUntil = job.leaseExpiresAt;
      let failingSince: number | undefined;
      let wait = this.beatMs;
      let retry = RETRY_MS;
      for (;;) {
        await clock.sleep(wait, signal);
        if (signal.aborted) return;
        const began = clock.now();
        try {
          leaseUntil = await this.opts.queue.heartbeat(job.id, job.leaseToken, this.leaseMs);
          if (failingSince !== undefined)
            this.log("info", "heartbeat renewed after the queue was away", {
              job: job.id,
              away_ms: clock.now() - failingSince,
            });
          failingSince = undefined;
          wait = this.beatMs;
          retry = RETRY_MS;
        } catch (err) {
          if (signal.aborted) return;
          if (err instanceof LeaseLostError) {
            // a beat that waited for a reconnect counts as one the queue did not answer
            const answered = failingSince === undefined && clock.now() - began < this.beatMs;
            if (answered && clock.now() < leaseUntil) {
              this.log("warn", "lease lost; aborting the job", { job: job.id, error: err.message });
              controller.abort(err);
            } else {
              this.log(
                "warn",
                "lease lapsed while the queue was away; the job runs on under its run's lease",
                {
                  job: job.id,
                },
              );
            }
            return;
          }
          failingSince ??= clock.now();
          // the queue's backend away is ridden out for the outage budget; anything else only while
          // the lease holds
          const lapsing = infrastructureFailure(err)
            ? clock.now() - failingSince >= this.outageBudgetMs
            : clock.now() + RETRY_MS >= leaseUntil;
          if (lapsing) {
            this.log("error", "cannot heartbeat and the lease is lapsing; aborting the job", {
              job: job.id,
              error: errorMessage(err),
            });
            controller.abort(new LeaseLostError(job.id));
            return;
          }
          this.log("warn", "heartbeat failed; retrying while the queue is away", {
            job: job.id,
            error: errorMessage(err),
            failing_ms: clock.now() - failingSince,
          });
          wait = retry;
          retry = Math.min(MAX_RETRY_MS, retry * 2);
        }
      }
    })();
    return () => stop.abort();
  }

  private async execute(job: ClaimedJob): Promise<void> {
    const controller = new AbortController();
    this.controllers.add(controller);
    const stopBeat = this.heartbeat(job, controller);
    const started = this.clock.now();
    const fields = { job: job.id, kind: job.kind, attempt: job.attempts };
    this.log("info", "job started", fields);
    try {
      const handler = this.opts.handlers[job.kind];
      if (!handler) throw new Error(`no handler for job kind ${job.kind}`);
      await handler(job, controller.signal, (reason) => controller.abort(reason));
      if (controller.signal.aborted) return await this.handBack(job, controller.signal.reason);
      if ((await this.settle(job, () => this.opts.queue.complete(job.id, job.leaseToken))) === "lost") return;
      this.outageStreak = 0;
      this.log("info", "job completed", { ...fields, duration_ms: this.clock.now() - started });
      this.opts.onFinished?.(job, "completed", (this.clock.now() - started) / 1000);
    } catch (err) {
      if (controller.signal.aborted) return await this.handBack(job, controller.signal.reason);
      if (err instanceof HandoffError) return await this.handBack(job, err);
      if (err instanceof RunBusyError) {
        // another runner has the run: not a failure of this job, which runs once that one is done
        this.log("info", "run busy; job handed back", { ...fields, retry_in_ms: err.retryAfterMs });
        await this.settle(job, () =>
          this.opts.queue.release(job.id, job.leaseToken, { delayMs: err.retryAfterMs, reason: err.message }),
        );
        return;
      }
      const outage = infrastructureFailure(err);
      if (outage) {
        // the work is fine, its backend was away: tried again later, the attempt not used up
        const delayMs = Math.min(MAX_OUTAGE_BACKOFF_MS, OUTAGE_BACKOFF_MS * 2 ** this.outageStreak++);
        this.log("warn", "job stopped by an outage; handed back", {
          ...fields,
          backend: outage.backend,
          error: outage.message,
          retry_in_ms: delayMs,
        });
        await this.settle(job, () =>
          this.opts.queue.release(job.id, job.leaseToken, { delayMs, reason: outage.message }),
        );
        return;
      }
      this.outageStreak = 0;
      const retryable = isTransientError(err);
      const outcome = await this.settle(job, () =>
        this.opts.queue.fail(job.id, job.leaseToken, { message: errorMessage(err), retryable }),
      );
      if (outcome === "lost") return;
      if (outcome === "retrying")
        this.log("warn", "job failed; retrying with backoff", { ...fields, error: errorMessage(err) });
      else this.log("error", "job failed; dead-lettered", { ...fields, retryable, error: errorMessage(err) });
      this.opts.onFinished?.(
        job,
        outcome === "retrying" ? "retried" : "failed",
        (this.clock.now() - started) / 1000,
      );
    } finally {
      stopBeat();
      this.controllers.delete(controller);
    }
  }

  /** A job aborted for a handoff goes back to the queue, unless its lease is someone else's already. */
  private async handBack(job: ClaimedJob, reason: unknown): Promise<void> {
    if (reason instanceof LeaseLostError) return;
    this.log("info", "job handed back", { job: job.id, kind: job.kind, reason: errorMessage(reason) });
    await this.settle(job, () =>
      this.opts.queue.release(job.id, job.leaseToken, { reason: errorMessage(reason) }),
    );
  }

  /**
   * Runs a queue call about a finished job, retrying it with backoff while the queue is away (for
   * up to the outage budget). "lost" when the job is no longer this worker's.
   */
  private async settle<T>(job: ClaimedJob, call: () => Promise<T>): Promise<T | "lost"> {
    const since = this.clock.now();
    let wait = RETRY_MS;
    for (;;) {
      try {
        return await call();
      } catch (err) {
        if (err instanceof LeaseLostError || this.clock.now() - since >= this.outageBudgetMs) {
          this.log("warn", "job outcome not recorded; its lease is lost", {
            job: job.id,
            error: errorMessage(err),
          });
          return "lost";
        }
        await this.clock.sleep(wait);
        wait = Math.min(MAX_RETRY_MS, wait * 2);
      }
    }
  }

  /**
   * Stops claiming and waits for the running jobs. With `abort`, they are aborted and handed back
   * to the queue (their steps go back to pending) for another worker to continue at once; that
   * wait is bounded by HANDBACK_WAIT_MS.
   */
  async stop(opts: { abort?: boolean } = {}): Promise<void> {
    this.stopping = true;
    this.halt.abort();
    if (opts.abort) for (const c of this.controllers) c.abort(new WorkerStoppingError(this.opts.workerId));
    await this.loop;
    const settled = Promise.allSettled(this.running).then(() => true);
    if (!opts.abort) {
      await settled;
      return;
    }
    // handing back needs the queue: when it is away, the jobs' leases lapse instead
    if (!(await Promise.race([settled, this.clock.sleep(HANDBACK_WAIT_MS).then(() => false)])))
      this.log("warn", "jobs not handed back in time; their leases lapse", { jobs: this.running.size });
  }
}
