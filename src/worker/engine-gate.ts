/**
 * Concurrency caps across every worker of one database (`TASKSGODZILLA_ENGINE_CONCURRENCY`, e.g.
 * `codex=2,claude-code=1,provider:openai=3`): per engine id, and per provider, where an engine's
 * provider is its `provider` setting (`engines.<id>.provider` in the project's config, or
 * `TASKSGODZILLA_ENGINE_<ID>_PROVIDER`; an engine without one counts under no provider). A call
 * waits until it holds a slot of every cap that applies and renews them while it runs, so a
 * crashed worker's slots free themselves when their lease lapses; a worker that loses one stops the call.
 */
import type { RunnerDeps } from "../runner/run-context.js";
import { type Clock, systemClock } from "../shared/clock.js";
import { errorMessage, HandoffError, InvalidInputError, infrastructureFailure } from "../shared/errors.js";
import type { SlotsRepository } from "../store/repositories.js";
import { OUTAGE_BUDGET_MS } from "../store/ride-outages.js";
import type { Store } from "../store/types.js";

const PROVIDER = "provider:";

export function parseCaps(text: string | undefined): Record<string, number> {
  const caps: Record<string, number> = {};
  for (const part of (text ?? "")
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const [id, n] = part.split("=");
    const name = id?.startsWith(PROVIDER) ? id.slice(PROVIDER.length) : id;
    if (!id || !name || !/^[A-Za-z0-9._-]+$/.test(name) || !n || !/^\d+$/.test(n) || Number(n) < 1)
      throw new InvalidInputError(
        `TASKSGODZILLA_ENGINE_CONCURRENCY: "${part}" is not engine=N or provider:name=N (N >= 1)`,
      );
    caps[id] = Number(n);
  }
  return caps;
}

/** Short, so the slot of a worker that died frees itself soon; renewed every third of it while held. */
const SLOT_LEASE_MS = 10_000;
/** How often a call waiting for a slot looks again; also the retry of a renewal that failed. */
const WAIT_MS = 250;

/** The engine slot a call held lapsed or was taken: the call stops and its job goes back to the queue. */
export class EngineSlotLostError extends HandoffError {
  readonly code = "engine_slot_lost";
  constructor(label: string, why: string) {
    super(`lost the ${label} concurrency slot (${why}); the call stops and runs again`);
  }
}

export type EngineGate = NonNullable<RunnerDeps["engineGate"]>;

/** The provider an engine's calls count under for the caps, if it has one. */
export type ProviderOf = (engineId: string) => Promise<string | undefined>;

export interface GateOptions {
  holder: string;
  /** Called when a slot cannot be kept: the job is aborted as a lost lease would abort it. */
  onLost: (err: EngineSlotLostError) => void;
  providerOf?: ProviderOf;
  slotLeaseMs?: number;
  /** Waits and renewals are timed by it; default the system clock. */
  clock?: Clock;
  /** How long the database may be away before a held slot counts as lost; default OUTAGE_BUDGET_MS. */
  outageBudgetMs?: number;
}

interface Cap {
  key: string;
  cap: number;
  /** For messages: the engine id, or "provider <name>". */
  label: string;
}

/**
 * The gate of one job: before an engine call, waits for a slot of each cap that applies (all at
 * once or none, so a call never sits on one slot while it waits for another), then renews them
 * while the call runs. When a slot is taken over (it lapsed), `onLost` aborts the job, so two calls
 * never run under one slot. The database away is waited out, while waiting and while renewing, for
 * up to the outage budget: nobody takes a slot meanwhile (outage-watch.ts), so the call goes on.
 */
export function engineGate(
  slots: SlotsRepository,
  caps: Record<string, number>,
  opts: GateOptions,
): EngineGate {
  const slotLeaseMs = opts.slotLeaseMs ?? SLOT_LEASE_MS;
  const clock = opts.clock ?? systemClock;
  const budgetMs = opts.outageBudgetMs ?? OUTAGE_BUDGET_MS;
  const providerCaps = Object.keys(caps).some((k) => k.startsWith(PROVIDER));
  const capsOf = async (engineId: string): Promise<Cap[]> => {
    const out: Cap[] = [];
    if (caps[engineId]) out.push({ key: `engine:${engineId}`, cap: caps[engineId], label: engineId });
    const provider = providerCaps ? await opts.providerOf?.(engineId) : undefined;
    const cap = provider ? caps[`${PROVIDER}${provider}`] : undefined;
    if (provider && cap) out.push({ key: `${PROVIDER}${provider}`, cap, label: `provider ${provider}` });
    return out;
  };
  /** Gives slots back; one it cannot (the database away) lapses by itself. */
  const releaseAll = async (held: { cap: Cap; token: string }[]) => {
    for (const h of held) await slots.release(h.cap.key, h.token).catch(() => undefined);
  };
  const acquireAll = async (wanted: Cap[]) => {
    const held: { cap: Cap; token: string }[] = [];
    try {
      for (const cap of wanted) {
        const token = await slots.acquire(cap.key, cap.cap, opts.holder, slotLeaseMs);
        if (!token) {
          await releaseAll(held);
          return undefined;
        }
        held.push({ cap, token });
      }
    } catch (err) {
      await releaseAll(held);
      throw err;
    }
    return held;
  };
  /** Waits until every slot is held; an outage counts as "not yet", up to the budget. */
  const waitFor = async (wanted: Cap[], signal: AbortSignal) => {
    let failingSince: number | undefined;
    for (;;) {
      if (signal.aborted)
        throw signal.reason instanceof Error
          ? signal.reason
          : new Error("aborted while waiting for an engine slot");
      try {
        const held = await acquireAll(wanted);
        failingSince = undefined;
        if (held) return held;
      } catch (err) {
        if (!infrastructureFailure(err)) throw err;
        failingSince ??= clock.now();
        if (clock.now() - failingSince >= budgetMs) throw err;
      }
      await clock.sleep(WAIT_MS, signal);
    }
  };

  return async (engineId, signal) => {
    const wanted = await capsOf(engineId);
    if (wanted.length === 0) return async () => undefined;
    const held = await waitFor(wanted, signal);
    const stop = new AbortController();
    void (async () => {
      const everyMs = Math.floor(slotLeaseMs / 3);
      let failingSince: number | undefined;
      for (;;) {
        await clock.sleep(failingSince === undefined ? everyMs : WAIT_MS, stop.signal);
        if (stop.signal.aborted) return;
        try {
          const kept = await Promise.all(held.map((h) => slots.renew(h.cap.key, h.token, slotLeaseMs)));
          if (stop.signal.aborted) return;
          const gone = held.find((_, i) => !kept[i]);
          if (gone) return opts.onLost(new EngineSlotLostError(gone.cap.label, "it lapsed and was taken"));
          failingSince = undefined;
        } catch (err) {
          // the database away is ridden out (nobody can take the slot while it is); anything else
          // only while the slot still holds
          failingSince ??= clock.now();
          const limit = infrastructureFailure(err) ? budgetMs : slotLeaseMs - everyMs;
          if (clock.now() - failingSince >= limit)
            return opts.onLost(
              new EngineSlotLostError(held[0]!.cap.label, `cannot renew it: ${errorMessage(err)}`),
            );
        }
      }
    })();
    return async () => {
      stop.abort();
      await releaseAll(held);
    };
  };
}

/** Makes the gate of one piece of work, given how to stop it when a slot is lost. */
export type GateFactory = (onLost: (err: EngineSlotLostError) => void, providerOf: ProviderOf) => EngineGate;

/**
 * The engine caps of this process (`TASKSGODZILLA_ENGINE_CONCURRENCY`) as slots in the store: the one
 * place they are built, for workers, the server's worker and the CLI alike. Undefined without caps.
 */
export function capsGate(store: Store, holder: string, env: NodeJS.ProcessEnv): GateFactory | undefined {
  const caps = parseCaps(env.TASKSGODZILLA_ENGINE_CONCURRENCY);
  if (Object.keys(caps).length === 0) return undefined;
  return (onLost, providerOf) =>
    engineGate(store.slots, caps, { holder, onLost, providerOf, clock: store.clock });
}
