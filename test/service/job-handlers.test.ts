/**
 * Jobs delivered twice (a worker died after doing the work, before completing the job) do it once:
 * an import fills one run; and the reconciler queues again the runs whose job the queue lost.
 */
import { cpSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { StoreQueue } from "../../src/queue/store-queue.js";
import { createRunFromSpec } from "../../src/services/create-run.js";
import { jobHandlers } from "../../src/worker/job-handlers.js";
import { RunReconciler } from "../../src/worker/run-reconciler.js";
import { LOCAL_PACKAGE } from "../codemachine/packages.js";
import { scenario } from "../scenario/harness.js";
import { depsFor, shellRun } from "./worker-setup.js";

const closers: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of closers) await c();
});

async function setup() {
  const s = await scenario();
  closers.push(() => s.close());
  return { ...s, queue: new StoreQueue(s.store) };
}

describe("import jobs", () => {
  it("create and fill one run however often the job is delivered", async () => {
    const s = await setup();
    cpSync(LOCAL_PACKAGE, s.repo, { recursive: true });
    await s.queue.enqueue("import", { path: s.repo, repo: s.repo, name: "imported" });
    const job = (await s.queue.claim("w", 5000))!;
    const handlers = jobHandlers(depsFor(s.store));
    const never = new AbortController().signal;
    await handlers.import(job, never, () => undefined);
    // delivered again: the same job (id and creation time), e.g. after its lease lapsed
    await handlers.import(job, never, () => undefined);
    const runs = await s.store.listProtocolRuns();
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({
      status: "planned",
      templateSource: { import_job: `${job.id}@${job.createdAt}` },
    });
    expect(await s.store.listStepRuns(runs[0]!.id)).toHaveLength(3);
    // a new import job is a new run
    await s.queue.enqueue("import", { path: s.repo, repo: s.repo, name: "again" });
    await handlers.import((await s.queue.claim("w", 5000))!, never, () => undefined);
    expect(await s.store.listProtocolRuns()).toHaveLength(2);
  });

  it("fill the run the API created for them once", async () => {
    const s = await setup();
    cpSync(LOCAL_PACKAGE, s.repo, { recursive: true });
    const { run } = await createRunFromSpec(s.store, { repoDir: s.repo, unplanned: true, name: "queued" });
    await s.queue.enqueue("import", { path: s.repo, repo: s.repo, protocol_run_id: run.id });
    const job = (await s.queue.claim("w", 5000))!;
    const handlers = jobHandlers(depsFor(s.store));
    const never = new AbortController().signal;
    await handlers.import(job, never, () => undefined);
    await handlers.import(job, never, () => undefined);
    expect(await s.store.listProtocolRuns()).toHaveLength(1);
    expect((await s.store.getProtocolRun(run.id)).status).toBe("planned");
    expect(await s.store.listStepRuns(run.id)).toHaveLength(3);
  });
});

describe("run reconciler", () => {
  it("queues again the running and planning runs no runner holds and no job is about", async () => {
    const s = await setup();
    const made = async (name: string) => shellRun(s.store, s.repo, [{ id: "a", command: "true" }], name);
    const start = (id: number) =>
      s.store.transitionProtocol(id, "running", { eventType: "protocol_started", message: "started" });
    const lost = await made("0001-lost");
    const queued = await made("0002-queued");
    const leased = await made("0003-leased");
    const idle = await made("0004-idle");
    for (const r of [lost, queued, leased]) await start(r.id);
    await s.queue.enqueue(
      "execute_protocol",
      { protocol_run_id: queued.id },
      { singletonKey: `run:${queued.id}` },
    );
    await s.store.acquireRunLease(leased.id, "live-runner", 60_000);
    const { run: planning } = await createRunFromSpec(s.store, {
      repoDir: s.repo,
      unplanned: true,
      name: "plan me",
    });
    await s.store.transitionProtocol(planning.id, "planning", {
      eventType: "planning_started",
      message: "p",
    });

    // just moved by the API, its job about to be queued: left alone
    expect(await new RunReconciler({ store: s.store, queue: s.queue, settleMs: 60_000 }).reconcile()).toEqual(
      [],
    );
    const reconciler = new RunReconciler({ store: s.store, queue: s.queue, settleMs: 0 });
    expect(await reconciler.reconcile()).toEqual([lost.id, planning.id]);
    expect(await reconciler.reconcile()).toEqual([]);
    const jobs = (await s.queue.list({ states: ["waiting"] })).map((j) => [j.kind, j.payload]);
    expect(jobs).toEqual(
      expect.arrayContaining([
        ["execute_protocol", { protocol_run_id: lost.id }],
        ["plan", { protocol_run_id: planning.id }],
      ]),
    );
    expect(jobs).toHaveLength(3);
    const requeued = await s.store.listEvents({ eventTypes: ["run_requeued"] });
    expect(requeued.map((e) => [e.protocolRunId, e.metadata.kind])).toEqual([
      [lost.id, "execute_protocol"],
      [planning.id, "plan"],
    ]);
    expect(idle.status).toBe("planned");
  });
});
