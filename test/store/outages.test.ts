/**
 * The store across a database outage, on a Postgres server of the test's own that is stopped and
 * started: a call fails with StoreUnavailableError naming the database; a view that rides outages
 * waits for it and writes once; a run's hold keeps its lease through an outage longer than the
 * lease (and gives it up only past the outage budget), and a planner writes through its hold once
 * the database is back; after an outage no lapsed lease, slot or job lease is taken over until the
 * grace has passed, so holders renew first; and a holder whose lease was taken meanwhile writes
 * nothing. Leases and retries run on fake time (the planner's outage on real time). A SQLite file
 * locked past its busy timeout is the same kind of failure.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import BetterSqlite3 from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import { StoreQueue } from "../../src/queue/store-queue.js";
import { holdRun, RunLeaseLostError } from "../../src/runner/run-lease.js";
import { planRun } from "../../src/services/plan-run.js";
import { openStore } from "../../src/store/open-store.js";
import { TAKEOVER_GRACE_MS } from "../../src/store/outage-watch.js";
import { type OutageReport, rideOutages } from "../../src/store/ride-outages.js";
import { RunBusyError, StoreUnavailableError } from "../../src/store/store-errors.js";
import type { Store } from "../../src/store/types.js";
import { gitRepo } from "../scenario/harness.js";
import { freePort } from "../service/process-harness.js";
import { type FakeClock, fakeClock } from "../support/fake-clock.js";
import { type OwnPostgres, ownPostgres, ownPostgresAvailable } from "../support/own-postgres.js";

if (process.env.CI === "true" && !ownPostgresAvailable) throw new Error("initdb is required in CI");

let pg: OwnPostgres;
const stores: Store[] = [];
beforeAll(async () => {
  if (!ownPostgresAvailable) return;
  pg = await ownPostgres(await freePort());
  await pg.start();
}, 60_000);
afterAll(async () => {
  for (const s of stores) await s.close().catch(() => undefined);
  await pg?.destroy();
});

let schemas = 0;
/** A store on a schema of its own; `again` opens a second handle on the same one (another process). */
async function open(clock?: FakeClock, again?: string) {
  const pgSchema = again ?? `outage_${process.pid}_${++schemas}`;
  const store = await openStore({ url: pg.url, pgSchema, ...(clock ? { clock } : {}) });
  stores.push(store);
  return { store, schema: pgSchema };
}

async function runIn(store: Store) {
  const project = await store.createProject({ name: "p", gitUrl: "/nowhere" });
  return store.createProtocolRun({ projectId: project.id, protocolName: `0001-r${Date.now()}` });
}

/** Fake time moved in steps, each followed by a moment of real time for the database calls it started. */
async function pass(clock: FakeClock, ms: number, step = 1000) {
  for (let left = ms; left > 0; left -= step) {
    await clock.advance(Math.min(step, left));
    await sleep(15);
  }
}

describe.skipIf(!ownPostgresAvailable)("a database outage", () => {
  it("fails a store call with StoreUnavailableError naming the database, and the store works again once it is back", async () => {
    const { store } = await open();
    const run = await runIn(store);
    await pg.stop();
    const err = await store.getProtocolRun(run.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as Error).message).toContain(`the database at postgres://postgres@127.0.0.1:${pg.port}`);
    await pg.start();
    expect((await store.getProtocolRun(run.id)).id).toBe(run.id);
  });

  it("is waited out by a view that rides outages: a transaction made while it lasts is written once it is back", {
    timeout: 30_000,
  }, async () => {
    const { store } = await open();
    const run = await runIn(store);
    const reports: OutageReport[] = [];
    const view = rideOutages(store, { onOutage: (r) => reports.push(r) });
    await pg.stop();
    const writing = view.transaction(async (tx) => {
      await tx.appendEvent({ protocolRunId: run.id, eventType: "directive", message: "written after" });
      return tx.updateProtocolRun(run.id, { description: "after the outage" });
    });
    await sleep(1500);
    await pg.start();
    expect((await writing).description).toBe("after the outage");
    expect(await store.listEvents({ protocolRunId: run.id })).toHaveLength(1);
    expect(reports.map((r) => r.state)).toEqual(["down", "up"]);
    expect(reports[0]!.error).toContain("is not reachable");
  });

  it("is waited out only for the budget: past it the call fails", { timeout: 30_000 }, async () => {
    const clock = fakeClock();
    const { store } = await open(clock);
    const view = rideOutages(store, { budgetMs: 10_000 });
    await pg.stop();
    let settled: unknown;
    const reading = view.listProjects().then(
      () => (settled = "read"),
      (e: unknown) => (settled = e),
    );
    await pass(clock, 8_000, 500);
    expect(settled).toBeUndefined();
    await pass(clock, 4_000, 500);
    await reading;
    expect(settled).toBeInstanceOf(StoreUnavailableError);
    await pg.start();
  });

  it("does not cost a runner its run: the hold rides out an outage longer than its lease, and gives up only past the budget", {
    timeout: 60_000,
  }, async () => {
    const clock = fakeClock();
    const { store } = await open(clock);
    const run = await runIn(store);
    const hold = await holdRun(store, run.id, undefined, { outageBudgetMs: 40_000 });
    await pg.stop();
    // 20 s: beyond the 15 s lease, which used to make the runner stop its engine after 12 s
    await pass(clock, 20_000);
    expect(hold.signal.aborted).toBe(false);
    await pg.start();
    await pass(clock, 2_000);
    expect((await store.getProtocolRun(run.id)).leaseOwner).toBe(hold.owner);
    // a write through the hold lands once the lease is confirmed
    await hold.store.appendEvent({ protocolRunId: run.id, eventType: "directive", message: "after" });
    expect(await store.listEvents({ protocolRunId: run.id })).toHaveLength(1);

    await pg.stop();
    await pass(clock, 45_000);
    expect(hold.signal.reason).toBeInstanceOf(RunLeaseLostError);
    await pg.start();
    await hold.release();
  });

  it("does not cost a planner its run: what `tgz plan` writes after its engine call waits for the database", {
    timeout: 60_000,
  }, async () => {
    const { store } = await open();
    const data = mkdtempSync(join(tmpdir(), "tgz-outage-plan-"));
    const deps = {
      store,
      registry: createDefaultRegistry(),
      configFor: (dir: string) => loadConfig(dir, { TASKSGODZILLA_DATA_DIR: data }),
    };
    const plan = {
      title: "Greeter",
      summary: "Write the greeter.",
      context: "A scratch repository.",
      steps: [{ slug: "greet", title: "Greet", kind: "work", prompt: "Say hello." }],
    };
    // a planner that answers after 4 s
    const planning = planRun(deps, {
      task: "Add a greeter",
      repoDir: gitRepo(),
      engine: "replay",
      inputs: { final: JSON.stringify(plan), delay_ms: 4000 },
    });
    for (let i = 0; i < 200; i++) {
      if ((await store.listEvents({ eventTypes: ["planning_started"] })).length > 0) break;
      await sleep(50);
    }
    // the database is away while the planner answers, and for a while after
    await pg.stop();
    await sleep(5_000);
    await pg.start();
    const run = await planning;
    expect(run.status).toBe("planned");
    expect(
      await store.listEvents({ protocolRunId: run.id, eventTypes: ["planning_completed"] }),
    ).toHaveLength(1);
    expect((await store.sumUsage({ protocolRunId: run.id, phase: "plan" })).calls).toBe(1);
    expect((await store.listStepRuns(run.id)).map((s) => s.stepName)).toEqual(["01-greet"]);
  });

  it("lets no lapsed lease be taken over until the grace has passed, so their holders renew them first", {
    timeout: 60_000,
  }, async () => {
    const clock = fakeClock();
    const a = await open(clock);
    // another process on the same database, which saw the outage too
    const b = await open(clock, a.schema);
    const run = await runIn(a.store);
    const hold = await holdRun(a.store, run.id);
    const slot = await a.store.slots.acquire("engine:codex", 1, "a", 10_000);
    const [qa, qb] = [new StoreQueue(a.store), new StoreQueue(b.store)];
    await qa.enqueue("execute_protocol", { protocol_run_id: run.id });
    const job = await qa.claim("a", 3_000);
    expect(slot && job).toBeTruthy();

    await pg.stop();
    await expect(b.store.listProjects()).rejects.toThrow(StoreUnavailableError);
    await pass(clock, 20_000);
    await pg.start();
    // every lease above lapsed by the clock; the other process takes none of them yet
    await expect(holdRun(b.store, run.id)).rejects.toThrow(RunBusyError);
    expect(await b.store.slots.acquire("engine:codex", 1, "b", 10_000)).toBeUndefined();
    expect(await qb.claim("b", 3_000)).toBeUndefined();
    // the runner renews its own within a tick
    await pass(clock, 1_000);
    expect(hold.signal.aborted).toBe(false);
    expect(Date.parse((await a.store.getProtocolRun(run.id)).leaseExpiresAt!)).toBeGreaterThan(clock.now());

    // past the grace a lease nobody renewed (the slot, the job) is taken over as usual
    await pass(clock, TAKEOVER_GRACE_MS);
    expect(await b.store.slots.acquire("engine:codex", 1, "b", 10_000)).toBeDefined();
    expect((await qb.claim("b", 3_000))?.id).toBe(job!.id);
    await expect(holdRun(b.store, run.id)).rejects.toThrow(RunBusyError);
    await hold.release();
  });

  it("stops a runner cut off alone whose run was taken over meanwhile, and lets it write nothing", {
    timeout: 60_000,
  }, async () => {
    const clock = fakeClock();
    const a = await open(clock);
    const run = await runIn(a.store);
    const hold = await holdRun(a.store, run.id);
    await pg.stop();
    await pass(clock, 20_000);
    await pg.start();
    // a process that never saw the outage (only the first was cut off) takes the lapsed run over
    const b = await open(clock, a.schema);
    const taker = await holdRun(b.store, run.id);
    const err = await hold.store
      .appendEvent({ protocolRunId: run.id, eventType: "directive", message: "from the cut-off runner" })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunLeaseLostError);
    expect(hold.signal.reason).toBeInstanceOf(RunLeaseLostError);
    expect(await a.store.listEvents({ protocolRunId: run.id })).toEqual([]);
    await taker.release();
    await hold.release();
  });
});

describe("a SQLite file locked by another writer", () => {
  it("fails a write with StoreUnavailableError once the busy timeout has passed", {
    timeout: 30_000,
  }, async () => {
    const path = join(mkdtempSync(join(tmpdir(), "tgz-busy-")), "db.sqlite");
    const store = await openStore({ sqlitePath: path });
    stores.push(store);
    // another process's writer that does not let go
    const other = new BetterSqlite3(path);
    other.exec("BEGIN IMMEDIATE");
    try {
      const err = await store.createProject({ name: "p", gitUrl: "/x" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as Error).message).toContain(`the database at ${path} is locked by another writer`);
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
    expect((await store.createProject({ name: "p", gitUrl: "/x" })).name).toBe("p");
  });
});
