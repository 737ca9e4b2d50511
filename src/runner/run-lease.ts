/**
 * One runner per run at a time. The runner takes the run's lease in the store and renews it every
 * second while it works; the same tick notices a pause or cancel made elsewhere (API, another
 * process). Either stops the engine call under way through the returned signal. A runner that dies
 * stops renewing, and once the lease lapses another may recover the run.
 *
 * A database outage is not a lost lease: while the database is away nobody can take the run, and
 * for a grace period after it the store lets the holders renew first (outage-watch.ts). So the
 * runner keeps its engine running through an outage of up to OUTAGE_BUDGET_MS, and its store calls
 * wait for the database (`store`, a view that rides outages). After an outage the lease is
 * confirmed before anything the runner writes lands: a runner that was cut off alone and taken
 * over meanwhile stops, and writes nothing.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Clock } from "../shared/clock.js";
import { HandoffError, infrastructureFailure } from "../shared/errors.js";
import { type Fence, OUTAGE_BUDGET_MS, rideOutages, storeUnder } from "../store/ride-outages.js";
import { RunBusyError } from "../store/store-errors.js";
import type { Store } from "../store/types.js";

/** How long a lease lasts without renewal: how soon a crashed runner's run can be taken over. */
export const RUN_LEASE_TTL_MS = 15_000;
const TICK_MS = 1_000;

/**
 * The abort reason when this runner no longer holds the run: it must stop without writing. The run
 * is another runner's now, so its job is handed back (a second delivery finds the run held or done).
 */
export class RunLeaseLostError extends HandoffError {
  readonly code = "run_lease_lost";
  constructor(runId: number) {
    super(`the lease on run ${runId} was lost; another runner may hold it now`);
  }
}

export interface RunHold {
  owner: string;
  /** Aborts on the caller's signal, a pause or cancel from elsewhere, or a lost lease. */
  signal: AbortSignal;
  /** The store for the held run's work: it waits out outages, and writes only while the lease is ours. */
  store: Store;
  release(): Promise<void>;
}

export interface HoldOptions {
  /** Default the store's clock. */
  clock?: Clock;
  /** How long an outage is ridden out before the hold counts as lost; default OUTAGE_BUDGET_MS. */
  outageBudgetMs?: number;
}

export async function holdRun(
  store: Store,
  runId: number,
  outer?: AbortSignal,
  opts: HoldOptions = {},
): Promise<RunHold> {
  const clock = opts.clock ?? store.clock;
  const budgetMs = opts.outageBudgetMs ?? OUTAGE_BUDGET_MS;
  const owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const run = await store.acquireRunLease(runId, owner, RUN_LEASE_TTL_MS);
  if (run.leaseOwner !== owner) {
    const left = run.leaseExpiresAt ? Date.parse(run.leaseExpiresAt) - clock.now() : RUN_LEASE_TTL_MS;
    throw new RunBusyError(runId, run.leaseOwner ?? "another runner", Math.max(left, 0) + TICK_MS);
  }
  // the tick and the fence see outages themselves
  const direct = storeUnder(store);
  const stopper = new AbortController();
  const signal = outer ? AbortSignal.any([outer, stopper.signal]) : stopper.signal;
  const lost = () => {
    const err = new RunLeaseLostError(runId);
    if (!stopper.signal.aborted) stopper.abort(err);
    return err;
  };
  const fence: Fence = {
    pending: false,
    async check() {
      if (!(await direct.renewRunLease(runId, owner, RUN_LEASE_TTL_MS))) throw lost();
    },
  };
  let renewedAt = clock.now();
  let busy = false;
  const tick = async () => {
    if (busy || stopper.signal.aborted) return;
    busy = true;
    try {
      if (!(await direct.renewRunLease(runId, owner, RUN_LEASE_TTL_MS))) {
        lost();
        return;
      }
      renewedAt = clock.now();
      const status = await direct.getProtocolStatus(runId);
      if (status === "paused" || status === "cancelled") stopper.abort(new Error(`run ${status}`));
    } catch (err) {
      // the database away is ridden out; past the budget (or for anything else once the lease
      // could have lapsed for others) the run is given up
      fence.pending = true;
      const limit = infrastructureFailure(err) ? budgetMs : RUN_LEASE_TTL_MS - 3 * TICK_MS;
      if (clock.now() - renewedAt > limit) lost();
    } finally {
      busy = false;
    }
  };
  const stopTicking = clock.every(TICK_MS, () => void tick());
  return {
    owner,
    signal,
    store: rideOutages(store, { budgetMs, fence }),
    async release() {
      stopTicking();
      await direct.releaseRunLease(runId, owner).catch(() => undefined);
    },
  };
}

export function leaseLost(signal: AbortSignal): boolean {
  return signal.aborted && signal.reason instanceof RunLeaseLostError;
}
