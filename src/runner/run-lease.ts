/**
 * One runner per run at a time. The runner takes the run's lease in the store and renews it every
 * second while it works; the same tick notices a pause or cancel made elsewhere (API, another
 * process). Either stops the engine call under way through the returned signal. A runner that dies
 * stops renewing, and once the lease lapses another may recover the run.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { TasksGodzillaError } from "../shared/errors.js";
import { RunBusyError } from "../store/store-errors.js";
import type { Store } from "../store/types.js";

/** How long a lease lasts without renewal: how soon a crashed runner's run can be taken over. */
export const RUN_LEASE_TTL_MS = 15_000;
const TICK_MS = 1_000;

/** The abort reason when this runner no longer holds the run: it must stop without writing. */
export class RunLeaseLostError extends TasksGodzillaError {
  readonly code = "run_lease_lost";
  constructor(runId: number) {
    super(`the lease on run ${runId} was lost; another runner may hold it now`);
  }
}

export interface RunHold {
  owner: string;
  /** Aborts on the caller's signal, a pause or cancel from elsewhere, or a lost lease. */
  signal: AbortSignal;
  release(): Promise<void>;
}

export async function holdRun(store: Store, runId: number, outer?: AbortSignal): Promise<RunHold> {
  const owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const run = await store.acquireRunLease(runId, owner, RUN_LEASE_TTL_MS);
  if (run.leaseOwner !== owner) {
    const left = run.leaseExpiresAt ? Date.parse(run.leaseExpiresAt) - Date.now() : RUN_LEASE_TTL_MS;
    throw new RunBusyError(runId, run.leaseOwner ?? "another runner", Math.max(left, 0) + TICK_MS);
  }
  const stopper = new AbortController();
  const signal = outer ? AbortSignal.any([outer, stopper.signal]) : stopper.signal;
  let renewedAt = Date.now();
  let busy = false;
  const tick = async () => {
    if (busy || stopper.signal.aborted) return;
    busy = true;
    try {
      if (!(await store.renewRunLease(runId, owner, RUN_LEASE_TTL_MS))) {
        stopper.abort(new RunLeaseLostError(runId));
        return;
      }
      renewedAt = Date.now();
      const status = await store.getProtocolStatus(runId);
      if (status === "paused" || status === "cancelled") stopper.abort(new Error(`run ${status}`));
    } catch {
      // a database hiccup is tolerated until the lease could have lapsed for others
      if (Date.now() - renewedAt > RUN_LEASE_TTL_MS - 3 * TICK_MS)
        stopper.abort(new RunLeaseLostError(runId));
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), TICK_MS);
  timer.unref();
  return {
    owner,
    signal,
    async release() {
      clearInterval(timer);
      await store.releaseRunLease(runId, owner).catch(() => undefined);
    },
  };
}

export function leaseLost(signal: AbortSignal): boolean {
  return signal.aborted && signal.reason instanceof RunLeaseLostError;
}
