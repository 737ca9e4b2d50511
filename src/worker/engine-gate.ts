/**
 * Per-engine concurrency caps across every worker of one database (`TASKSGODZILLA_ENGINE_CONCURRENCY`,
 * e.g. `codex=2,claude-code=1`): a step waits for a slot before its engine call and renews it while
 * the call runs, so a crashed worker's slot frees itself when its lease lapses; a worker that loses
 * its slot stops the call.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { ConcurrencySlots } from "../queue/store-queue.js";
import type { RunnerDeps } from "../runner/run-context.js";
import { errorMessage, HandoffError, InvalidInputError } from "../shared/errors.js";

export function parseCaps(text: string | undefined): Record<string, number> {
  const caps: Record<string, number> = {};
  for (const part of (text ?? "")
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const [id, n] = part.split("=");
    if (!id || !n || !/^\d+$/.test(n) || Number(n) < 1)
      throw new InvalidInputError(`TASKSGODZILLA_ENGINE_CONCURRENCY: "${part}" is not engine=N (N >= 1)`);
    caps[id] = Number(n);
  }
  return caps;
}

/** Short, so the slot of a worker that died frees itself soon; renewed every third of it while held. */
const SLOT_LEASE_MS = 10_000;

/** The engine slot a call held lapsed or was taken: the call stops and its job goes back to the queue. */
export class EngineSlotLostError extends HandoffError {
  readonly code = "engine_slot_lost";
  constructor(engineId: string, why: string) {
    super(`lost the ${engineId} concurrency slot (${why}); the call stops and runs again`);
  }
}

export type EngineGate = NonNullable<RunnerDeps["engineGate"]>;

/**
 * The gate of one job: waits for a slot before an engine call and renews it while the call runs.
 * When the slot cannot be kept (taken over after a lapse, or not renewable before it expires),
 * `onLost` aborts the job as a lost lease would, so two calls never run under one slot.
 */
export function engineGate(
  slots: ConcurrencySlots,
  caps: Record<string, number>,
  holder: string,
  onLost: (err: EngineSlotLostError) => void,
  slotLeaseMs = SLOT_LEASE_MS,
): EngineGate {
  return async (engineId, signal) => {
    const cap = caps[engineId];
    if (!cap) return async () => undefined;
    const key = `engine:${engineId}`;
    let held = await slots.acquire(key, cap, holder, slotLeaseMs);
    while (!held) {
      if (signal.aborted)
        throw signal.reason instanceof Error
          ? signal.reason
          : new Error("aborted while waiting for an engine slot");
      await sleep(250);
      held = await slots.acquire(key, cap, holder, slotLeaseMs);
    }
    const slot = held;
    const everyMs = Math.floor(slotLeaseMs / 3);
    let until = Date.now() + slotLeaseMs;
    const lost = (why: string) => {
      clearInterval(renew);
      onLost(new EngineSlotLostError(engineId, why));
    };
    const renew = setInterval(() => {
      slots.renew(key, slot, slotLeaseMs).then(
        (ok) => {
          if (ok) until = Date.now() + slotLeaseMs;
          else lost("it lapsed and was taken");
        },
        // a database hiccup is ridden out while the slot still holds
        (err) => {
          if (Date.now() + everyMs >= until) lost(`cannot renew it: ${errorMessage(err)}`);
        },
      );
    }, everyMs);
    return async () => {
      clearInterval(renew);
      await slots.release(key, slot);
    };
  };
}
