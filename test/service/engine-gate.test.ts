/**
 * Engine caps through the store: a slot that cannot be kept stops the call holding it, like a lost
 * lease — down to the engine's processes — while a renewal that fails once is ridden out.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { StoreQueue } from "../../src/queue/store-queue.js";
import type { Store } from "../../src/store/types.js";
import { EngineSlotLostError, engineGate, parseCaps } from "../../src/worker/engine-gate.js";
import { jobHandlers } from "../../src/worker/job-handlers.js";
import { JobWorker } from "../../src/worker/job-worker.js";
import { scenario } from "../scenario/harness.js";
import { rawDb } from "../store/raw-db.js";
import { fakeClock } from "../support/fake-clock.js";
import { waitGone } from "../support/processes.js";
import { capturedLogger, depsFor, shellRun, until } from "./worker-setup.js";

const closers: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

async function store() {
  const s = await scenario();
  closers.push(() => s.close());
  return s;
}

/** Another holder takes every slot over, as after a lapse. */
const takeOver = (s: Store) =>
  rawDb(s).updateTable("concurrency_slots").set({ token: "someone-else" }).execute();

describe("engine and provider caps", () => {
  it("are read as engine=N and provider:name=N, with an error naming a part that is neither", () => {
    expect(parseCaps("codex=2, provider:openai=3")).toEqual({ codex: 2, "provider:openai": 3 });
    for (const bad of ["provider:=2", "provider:openai=0", "codex", "a b=1"])
      expect(() => parseCaps(bad), bad).toThrow(`"${bad}" is not engine=N or provider:name=N (N >= 1)`);
  });

  it("hold engines of one provider to the provider's cap, wherever their own caps leave room", async () => {
    const { store: st } = await store();
    const slots = st.slots;
    const providerOf = async (id: string) => (id === "local" ? undefined : "acme");
    const caps = { shell: 2, "provider:acme": 1 };
    const gate = (holder: string) => engineGate(slots, caps, { holder, onLost: () => {}, providerOf });
    const signal = new AbortController().signal;
    const held = () =>
      rawDb(st).selectFrom("concurrency_slots").select(["slot_key", "holder"]).orderBy("slot_key").execute();
    const first = await gate("w1")("shell", signal);
    let second: (() => Promise<void>) | undefined;
    // shell has room (1 of 2), its provider has none
    const waiting = gate("w2")("shell", signal).then((r) => {
      second = r;
    });
    // no provider, no provider cap
    await (await gate("w3")("local", signal))();
    await sleep(600);
    expect(second).toBeUndefined();
    // the engine's own slot is not kept while the call waits for the provider's (each try takes and
    // gives it back at once, so a look can catch it in between: a few looks tell)
    let kept = true;
    for (let i = 0; i < 10 && kept; i++) {
      kept = (await held()).some((h) => h.holder === "w2");
      if (kept) await sleep(20);
    }
    expect(kept).toBe(false);
    await first();
    await waiting;
    expect(second).toBeDefined();
    expect(await held()).toEqual([
      { slot_key: "engine:shell", holder: "w2" },
      { slot_key: "provider:acme", holder: "w2" },
    ]);
    await second!();
  });

  it("take an engine's provider from its settings in the run's project config", {
    timeout: 30_000,
  }, async () => {
    const s = await store();
    writeFileSync(
      join(s.repo, "tasksgodzilla.config.json"),
      JSON.stringify({ engines: { shell: { provider: "acme" } } }),
    );
    const queue = new StoreQueue(s.store);
    const timeline = join(s.repo, "timeline");
    const step = (label: string) => ({
      id: label,
      command: `echo start ${label} $(date +%s%N) >> ${timeline}; sleep 0.5; echo end ${label} $(date +%s%N) >> ${timeline}`,
    });
    for (const name of ["0001-a", "0002-b"]) {
      const run = await shellRun(s.store, s.repo, [step(`${name}-1`), step(`${name}-2`)], name);
      await queue.enqueue("execute_protocol", { protocol_run_id: run.id });
    }
    const slots = s.store.slots;
    const workers = ["w1", "w2"].map(
      (holder) =>
        new JobWorker({
          queue,
          handlers: jobHandlers(depsFor(s.store), {
            gate: (onLost, providerOf) =>
              engineGate(slots, { "provider:acme": 1 }, { holder, onLost, providerOf }),
          }),
          workerId: holder,
          pollMs: 50,
        }),
    );
    for (const w of workers) w.start();
    await until(
      () => existsSync(timeline) && readFileSync(timeline, "utf8").trim().split("\n").length === 8,
      20_000,
      "four steps",
    );
    for (const w of workers) await w.stop();
    // never two shell calls at once: every start follows the previous step's end
    const lines = readFileSync(timeline, "utf8")
      .trim()
      .split("\n")
      .map((l) => l.split(" "));
    expect(lines.map(([what]) => what)).toEqual([
      "start",
      "end",
      "start",
      "end",
      "start",
      "end",
      "start",
      "end",
    ]);
  });
});

describe("engine gate", () => {
  it("reports a slot taken over while the call runs", async () => {
    const { store: st } = await store();
    const clock = fakeClock();
    const lost: Error[] = [];
    const gate = engineGate(
      st.slots,
      { shell: 1 },
      {
        holder: "w1",
        onLost: (e) => lost.push(e),
        slotLeaseMs: 600,
        clock,
      },
    );
    const release = await gate("shell", new AbortController().signal);
    // renewed at 200 and 400 ms
    await clock.advance(450);
    expect(lost).toEqual([]);
    await takeOver(st);
    await clock.advance(200);
    await until(() => lost.length, 2000, "slot loss reported");
    expect(lost[0]).toBeInstanceOf(EngineSlotLostError);
    await clock.advance(1000);
    expect(lost).toHaveLength(1);
    await release();
  });

  it("rides out a renewal that fails once while the slot still holds", async () => {
    const { store: st } = await store();
    const clock = fakeClock();
    const slots = st.slots;
    let failures = 1;
    const renew = slots.renew.bind(slots);
    slots.renew = (...args) =>
      failures-- > 0 ? Promise.reject(new Error("Connection terminated unexpectedly")) : renew(...args);
    const lost: Error[] = [];
    const release = await engineGate(
      slots,
      { shell: 1 },
      { holder: "w1", onLost: (e) => lost.push(e), slotLeaseMs: 600, clock },
    )("shell", new AbortController().signal);
    for (let t = 0; t < 1000; t += 50) await clock.advance(50);
    expect(failures).toBeLessThan(0);
    expect(lost).toEqual([]);
    await release();
  });

  it("stops the engine of a worker that lost its slot and hands the job back", {
    timeout: 30_000,
  }, async () => {
    const s = await store();
    const queue = new StoreQueue(s.store);
    const pidFile = join(s.repo, "sleep.pid");
    const run = await shellRun(s.store, s.repo, [
      { id: "capped", command: `sleep 30 & echo $! > ${pidFile}; wait` },
    ]);
    await queue.enqueue("execute_protocol", { protocol_run_id: run.id });
    const slots = s.store.slots;
    const log = capturedLogger();
    const worker = new JobWorker({
      queue,
      handlers: jobHandlers(depsFor(s.store), {
        gate: (onLost) => engineGate(slots, { shell: 1 }, { holder: "w1", onLost, slotLeaseMs: 600 }),
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
