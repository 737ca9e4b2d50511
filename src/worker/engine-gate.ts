/**
 * Per-engine concurrency caps across every worker of one database (`TASKSGODZILLA_ENGINE_CONCURRENCY`,
 * e.g. `codex=2,claude-code=1`): a step waits for a slot before its engine call and renews it while
 * the call runs, so a crashed worker's slot frees itself when its lease lapses.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { ConcurrencySlots } from "../queue/store-queue.js";
import { InvalidInputError } from "../shared/errors.js";

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

export function engineGate(slots: ConcurrencySlots, caps: Record<string, number>, holder: string) {
  return async (engineId: string, signal: AbortSignal): Promise<() => Promise<void>> => {
    const cap = caps[engineId];
    if (!cap) return async () => undefined;
    const key = `engine:${engineId}`;
    let held = await slots.acquire(key, cap, holder, SLOT_LEASE_MS);
    while (!held) {
      if (signal.aborted)
        throw signal.reason instanceof Error
          ? signal.reason
          : new Error("aborted while waiting for an engine slot");
      await sleep(250);
      held = await slots.acquire(key, cap, holder, SLOT_LEASE_MS);
    }
    const slot = held;
    const renew = setInterval(() => void slots.renew(key, slot, SLOT_LEASE_MS), SLOT_LEASE_MS / 3);
    return async () => {
      clearInterval(renew);
      await slots.release(key, slot);
    };
  };
}
