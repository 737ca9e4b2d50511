/**
 * A view of the store for work that must outlive a database outage (the runner, the worker's job
 * handlers): a call that fails with StoreUnavailableError is tried again with backoff (250 ms,
 * doubling to 2 s) until the database answers, for up to OUTAGE_BUDGET_MS; only then does the
 * error go up. A transaction is retried whole (its function runs again: it only touches the store).
 * The API uses the store itself, so a request fails at once with a 503.
 *
 * With a `fence`, the first call after an outage (retried or new) waits for its check: a holder of
 * a lease confirms that the lease is still its own before anything it does lands on the database,
 * so a process that was cut off alone, and whose work another took over meanwhile, writes nothing.
 */
import type { Clock } from "../shared/clock.js";
import { errorMessage } from "../shared/errors.js";
import { StoreUnavailableError } from "./store-errors.js";
import type { Store } from "./types.js";

/** How long work waits for the database before it gives up: well past a restart or a failover. */
export const OUTAGE_BUDGET_MS = 60_000;

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 2_000;

export interface OutageReport {
  state: "down" | "up";
  /** Down: why. */
  error?: string;
  /** Up: how long the database was away for this view. */
  downForMs?: number;
}

export interface RideOutagesOptions {
  budgetMs?: number;
  /** Told once when the database goes away and once when it answers again. */
  onOutage?: (report: OutageReport) => void;
  fence?: Fence;
}

/**
 * What must hold again after an outage before work goes on. `pending` is set by the view when a
 * call finds the database away (and by the fence's owner when it does); `check` runs before the
 * next call and throws to fail it (and every later one, until it passes). It must use the store
 * under the view, not the view.
 */
export interface Fence {
  pending: boolean;
  check(): Promise<void>;
}

/** The store under a view, so views are never stacked (one retry loop per call). */
const bases = new WeakMap<object, { store: Store; opts: RideOutagesOptions }>();

const REPOSITORIES = new Set(["secrets", "stats", "slots", "jobs"]);

export function rideOutages(store: Store, options: RideOutagesOptions = {}): Store {
  const under = bases.get(store);
  const base = under?.store ?? store;
  const opts = { ...under?.opts, ...options };
  const clock: Clock = base.clock;
  const budgetMs = opts.budgetMs ?? OUTAGE_BUDGET_MS;
  let downSince: number | undefined;

  const retry = async <T>(call: () => Promise<T>): Promise<T> => {
    const started = clock.now();
    let delay = FIRST_RETRY_MS;
    for (;;) {
      try {
        if (opts.fence?.pending) {
          await opts.fence.check();
          opts.fence.pending = false;
        }
        const result = await call();
        if (downSince !== undefined) {
          opts.onOutage?.({ state: "up", downForMs: clock.now() - downSince });
          downSince = undefined;
        }
        return result;
      } catch (err) {
        if (!(err instanceof StoreUnavailableError)) throw err;
        if (opts.fence) opts.fence.pending = true;
        if (downSince === undefined) {
          downSince = clock.now();
          opts.onOutage?.({ state: "down", error: errorMessage(err) });
        }
        if (clock.now() - started >= budgetMs) throw err;
        await clock.sleep(delay);
        delay = Math.min(MAX_RETRY_MS, delay * 2);
      }
    }
  };

  /** Every method of `target` retried, called on `target` itself (its own inner calls are not). */
  const retrying = <T extends object>(target: T): T =>
    new Proxy(target, {
      get(t, prop) {
        const value = Reflect.get(t, prop, t);
        if (typeof prop === "string" && REPOSITORIES.has(prop) && value && typeof value === "object")
          return retrying(value as object);
        if (typeof value !== "function" || prop === "close" || prop === "constructor") return value;
        return (...args: unknown[]) =>
          retry(() => (value as (...a: unknown[]) => Promise<unknown>).apply(t, args));
      },
    });

  const view = retrying(base);
  bases.set(view, { store: base, opts });
  return view;
}

/** The store under a view (the store itself when it is none): for calls that handle outages themselves. */
export function storeUnder(store: Store): Store {
  return bases.get(store)?.store ?? store;
}
