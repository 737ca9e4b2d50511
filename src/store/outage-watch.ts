/**
 * When this process last found the database away. A lease (a run's, a job's, an engine slot's)
 * whose holder could not renew it during an outage has lapsed by the clock, but its holder is
 * still working and renews it within a second or two of the database coming back. So for a grace
 * period after this process finds the database back it takes over no lapsed lease: the holders
 * renew theirs first.
 */
import type { Clock } from "../shared/clock.js";

/** Longer than a holder's slowest retry after an outage (backoff capped at 2 s) and a claimer's poll. */
export const TAKEOVER_GRACE_MS = 10_000;

const NEVER = new Date(0).toISOString();

export class OutageWatch {
  private down = false;
  private backAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly clock: Clock,
    private readonly graceMs = TAKEOVER_GRACE_MS,
  ) {}

  /** The database did not answer just now. */
  seen(): void {
    this.down = true;
  }

  /** The database answered: after an outage, the grace starts now. */
  answered(): void {
    if (!this.down) return;
    this.down = false;
    this.backAt = this.clock.now();
  }

  /**
   * The ISO time a lease must have expired before to be taken over: now, or — while the database
   * is away and within the grace after it came back — the epoch, so that none is.
   */
  lapsedBefore(): string {
    const now = this.clock.now();
    return this.down || now - this.backAt < this.graceMs ? NEVER : new Date(now).toISOString();
  }
}
