/**
 * Engine caps through the store: a slot that cannot be kept stops the call holding it, like a lost
 * lease — down to the engine's processes — while a renewal that fails once is ridden out.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { ConcurrencySlots, StoreQueue } from "../../src/queue/store-queue.js";
import type { KyselyStore } from "../../src/store/kysely-store.js";
import { EngineSlotLostError, engineGate } from "../../src/worker/engine-gate.js";
import { jobHandlers } from "../../src/worker/job-handlers.js";
import { JobWorker } from "../../src/worker/job-worker.js";
import { scenario } from "../scenario/harness.js";
import { waitGone } from "../support/processes.js";
import { capturedLogger, depsFor, shellRun, until } from "./worker-setup.js";

const closers: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

async function store() {
  const s = await scenario();
  closers.push(() => s.close());
  return { ...s, store: s.store as KyselyStore };
}

/** Another holder takes every slot over, as after a lapse. */
const takeOver = (s: KyselyStore) =>
  s.kysely.updateTable("concurrency_slots").set({ token: "someone-else" }).execute();

describe("engine gate", () => {
  it("reports a slot taken over while the call runs", async () => {
    const { store: st } = await store();
    const lost: Error[] = [];
    const gate = engineGate(new ConcurrencySlots(st.kysely), { shell: 1 }, "w1", (e) => lost.push(e), 600);
    const release = await gate("shell", new AbortController().signal);
    await sleep(450);
    expect(lost).toEqual([]);
    await takeOver(st);
    await until(() => lost.length, 2000, "slot loss reported");
    expect(lost[0]).toBeInstanceOf(EngineSlotLostError);
    await sleep(500);
    expect(lost).toHaveLength(1);
    await release();
  });

  it("rides out a renewal that fails once while the slot still holds", async () => {
    const { store: st } = await store();
    const slots = new ConcurrencySlots(st.kysely);
    let failures = 1;
    const renew = slots.renew.bind(slots);
    slots.renew = (...args) =>
      failures-- > 0 ? Promise.reject(new Error("Connection terminated unexpectedly")) : renew(...args);
    const lost: Error[] = [];
    const release = await engineGate(
      slots,
      { shell: 1 },
      "w1",
      (e) => lost.push(e),
      600,
    )("shell", new AbortController().signal);
    await sleep(1000);
    expect(failures).toBeLessThan(0);
    expect(lost).toEqual([]);
    await release();
  });

  it("stops the engine of a worker that lost its slot and hands the job back", {
    timeout: 30_000,
  }, async () => {
    const s = await store();
    const queue = new StoreQueue(s.store.kysely, "sqlite");
    const pidFile = join(s.repo, "sleep.pid");
    const run = await shellRun(s.store, s.repo, [
      { id: "capped", command: `sleep 30 & echo $! > ${pidFile}; wait` },
    ]);
    await queue.enqueue("execute_protocol", { protocol_run_id: run.id });
    const slots = new ConcurrencySlots(s.store.kysely);
    const log = capturedLogger();
    const worker = new JobWorker({
      queue,
      handlers: jobHandlers(depsFor(s.store), {
        gate: (onLost) => engineGate(slots, { shell: 1 }, "w1", onLost, 600),
      }),
      workerId: "w1",
      pollMs: 50,
      logger: log.logger,
    });
    closers.push(() => worker.stop({ abort: true }));
    worker.start();
    await until(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim(), 10_000, "the capped step");
    const pid = Number(readFileSync(pidFile, "utf8"));
    await takeOver(s.store);
    expect(await waitGone(pid, 5000)).toBe(true);
    const handedBack = await until(() => log.find("job handed back", "info")[0], 5000, "job handed back");
    expect(handedBack.reason).toMatch(/lost the shell concurrency slot/);
  });
});
