/** One repository suite, run against SQLite and against the real Postgres. */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NotFoundError } from "../../src/shared/errors.js";
import { openStore } from "../../src/store/open-store.js";
import {
  DuplicateNameError,
  IllegalTransitionError,
  StatusConflictError,
  StoreOpenError,
} from "../../src/store/store-errors.js";
import type { Store } from "../../src/store/types.js";
import { dropTestSchemas, freshStore, postgresReachable } from "./store-backends.js";

const pgUp = await postgresReachable();
if (!pgUp && process.env.CI === "true")
  throw new Error("Postgres at 127.0.0.1:5432 is required in CI but is not reachable");

const usage = (input: number, output: number, estimated = false) => ({
  input,
  cachedInput: 1,
  output,
  reasoning: 2,
  estimated,
});

for (const backend of ["sqlite", "postgres"] as const) {
  describe.skipIf(backend === "postgres" && !pgUp)(`store on ${backend}`, () => {
    let store: Store;
    beforeAll(async () => {
      store = await freshStore(backend);
    });
    afterAll(async () => {
      await store.close();
      if (backend === "postgres") await dropTestSchemas();
    });

    async function seed() {
      const project = await store.createProject({
        name: "demo",
        gitUrl: "/tmp/demo",
        localPath: `/tmp/demo-${Math.random()}`,
        defaultModels: { exec: "m" },
      });
      const run = await store.createProtocolRun({
        projectId: project.id,
        protocolName: "0001-demo",
        templateConfig: {
          protocol_spec: { steps: [{ id: "a" }] },
          spec_meta: { status: "valid", errors: [], validated_at: "t", spec_hash: "abc123abc123" },
        },
      });
      const steps = await store.createStepRuns(run.id, [
        { stepIndex: 1, stepName: "b", policy: [{ behavior: "loop" }] },
        { stepIndex: 0, stepName: "a", engineId: "shell" },
      ]);
      return { project, run, steps };
    }

    it("round-trips projects, runs and steps with JSON fields", async () => {
      const { project, run, steps } = await seed();
      expect(await store.getProject(project.id)).toMatchObject({
        name: "demo",
        defaultModels: { exec: "m" },
        baseBranch: "main",
      });
      expect(await store.findProjectByPath(project.localPath!)).toMatchObject({ id: project.id });
      expect(await store.findProjectByPath("/nowhere")).toBeUndefined();
      expect((await store.getProtocolRun(run.id)).templateConfig.spec_meta?.spec_hash).toBe("abc123abc123");
      expect(steps.map((s) => s.stepName)).toEqual(["a", "b"]);
      expect((await store.listStepRuns(run.id)).map((s) => [s.stepName, s.status, s.policy])).toEqual([
        ["a", "pending", []],
        ["b", "pending", [{ behavior: "loop" }]],
      ]);
      const updated = await store.updateStepRun(steps[0]!.id, {
        runtimeState: { loops: { x: 2 } },
        summary: "done",
      });
      expect(updated).toMatchObject({
        runtimeState: { loops: { x: 2 } },
        summary: "done",
        engineId: "shell",
      });
      expect((await store.listProtocolRuns(project.id)).map((r) => r.id)).toEqual([run.id]);
    });

    it("searches runs by words in name or description, with filters, newest first, a page at a time", async () => {
      const project = await store.createProject({ name: "search", gitUrl: "/tmp/search" });
      const make = (protocolName: string, description: string | null) =>
        store.createProtocolRun({ projectId: project.id, protocolName, description });
      const a = await make("0001-Greeter", "Add a GREETING script");
      const b = await make("0002-50%_off", null);
      const c = await make("0003-docs", "greet the reader");
      const search = (text: string, extra = {}) =>
        store
          .searchProtocolRuns({ text, projectIds: [project.id], limit: 10, ...extra })
          .then((p) => [p.runs.map((r) => r.id), p.total]);
      expect(await search("greet")).toEqual([[c.id, a.id], 2]);
      expect(await search("GREETING script")).toEqual([[a.id], 1]);
      expect(await search("%_")).toEqual([[b.id], 1]);
      expect(await search("", { limit: 1, beforeId: c.id })).toEqual([[b.id], 3]);
      expect(await search("", { statuses: ["running"] })).toEqual([[], 0]);
      expect(await search("", { excludeProjectIds: [project.id] })).toEqual([[], 0]);
    });

    it("lists step states and the run's status without their JSON, the triggered flag read in SQL", async () => {
      const { run, steps } = await seed();
      await store.updateStepRun(steps[1]!.id, {
        runtimeState: { triggered: true, other: { triggered: false } },
      });
      await store.updateStepRun(steps[0]!.id, { runtimeState: { note: '"triggered":true' } });
      expect(await store.listStepStates(run.id)).toEqual([
        { id: steps[0]!.id, stepName: "a", stepIndex: 0, status: "pending", triggered: false },
        { id: steps[1]!.id, stepName: "b", stepIndex: 1, status: "pending", triggered: true },
      ]);
      expect(await store.getProtocolStatus(run.id)).toBe("pending");
      await expect(store.getProtocolStatus(999_999)).rejects.toThrow(NotFoundError);
    });

    it("names what was not found", async () => {
      await expect(store.getProtocolRun(999_999)).rejects.toThrow(NotFoundError);
      await expect(store.getStepRun(999_999)).rejects.toThrow(/step run 999999 not found/);
    });

    it("writes a status change and its event together, with the from/to and the spec hash", async () => {
      const { run, steps } = await seed();
      await store.transitionProtocol(run.id, "running", { eventType: "protocol_started", message: "go" });
      const step = await store.transitionStep(
        steps[0]!.id,
        "running",
        { eventType: "step_started", message: "s", metadata: { engine_id: "shell" } },
        { patch: { retries: 1 } },
      );
      expect(step).toMatchObject({ status: "running", retries: 1 });
      const events = await store.listEvents({ protocolRunId: run.id });
      expect(events.map((e) => [e.eventType, e.metadata.from, e.metadata.to, e.specHash])).toEqual([
        ["protocol_started", "pending", "running", "abc123abc123"],
        ["step_started", "pending", "running", "abc123abc123"],
      ]);
      expect(events[1]).toMatchObject({ stepRunId: step.id, metadata: { engine_id: "shell" } });
    });

    it("rejects illegal moves and stale expectations with typed errors, writing nothing", async () => {
      const { run, steps } = await seed();
      await expect(
        store.transitionProtocol(run.id, "completed", { eventType: "step_status_changed", message: "x" }),
      ).rejects.toThrow(IllegalTransitionError);
      await expect(
        store.transitionStep(steps[0]!.id, "needs_qa", { eventType: "step_status_changed", message: "x" }),
      ).rejects.toThrow(/cannot move from pending to needs_qa/);
      await expect(
        store.transitionStep(
          steps[0]!.id,
          "running",
          { eventType: "step_status_changed", message: "x" },
          { expectedFrom: "needs_qa" },
        ),
      ).rejects.toThrow(StatusConflictError);
      expect(await store.listEvents({ protocolRunId: run.id })).toEqual([]);
      expect((await store.getStepRun(steps[0]!.id)).status).toBe("pending");
    });

    it("rolls a whole transaction back when anything in it fails", async () => {
      const { run, steps } = await seed();
      await expect(
        store.transaction(async (tx) => {
          await tx.transitionStep(steps[0]!.id, "running", { eventType: "step_started", message: "s" });
          await tx.appendEvent({ protocolRunId: run.id, eventType: "directive", message: "n" });
          await tx.transitionStep(steps[1]!.id, "needs_qa", {
            eventType: "step_status_changed",
            message: "illegal",
          });
        }),
      ).rejects.toThrow(IllegalTransitionError);
      expect((await store.getStepRun(steps[0]!.id)).status).toBe("pending");
      expect(await store.listEvents({ protocolRunId: run.id })).toEqual([]);
    });

    it("lets exactly one of two concurrent movers win", async () => {
      const { steps } = await seed();
      const id = steps[0]!.id;
      const results = await Promise.allSettled([
        store.transitionStep(
          id,
          "running",
          { eventType: "step_started", message: "1" },
          { expectedFrom: "pending" },
        ),
        store.transitionStep(
          id,
          "running",
          { eventType: "step_started", message: "2" },
          { expectedFrom: "pending" },
        ),
      ]);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      const lost = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      expect(lost.reason).toBeInstanceOf(StatusConflictError);
    });

    it("orders events by sequence and pages with a cursor and filters", async () => {
      const { run, project, steps } = await seed();
      for (let i = 0; i < 25; i++)
        await store.appendEvent({
          protocolRunId: run.id,
          stepRunId: i % 2 ? steps[1]!.id : null,
          eventType: i % 5 === 0 ? "step_completed" : "step_started",
          message: `e${i}`,
          specHash: i === 0 ? null : undefined,
        });
      const all = await store.listEvents({ protocolRunId: run.id });
      expect(all.map((e) => e.message)).toEqual(Array.from({ length: 25 }, (_, i) => `e${i}`));
      expect(all[0]!.specHash).toBeNull();
      expect(all.every((e, i) => i === 0 || e.id > all[i - 1]!.id)).toBe(true);
      const page = await store.listEvents({ protocolRunId: run.id, afterId: all[9]!.id, limit: 5 });
      expect(page.map((e) => e.message)).toEqual(["e10", "e11", "e12", "e13", "e14"]);
      expect(
        (await store.listEvents({ protocolRunId: run.id, eventTypes: ["step_completed"] })).map(
          (e) => e.message,
        ),
      ).toEqual(["e0", "e5", "e10", "e15", "e20"]);
      expect(await store.listEvents({ stepRunId: steps[1]!.id })).toHaveLength(12);
      expect((await store.listEvents({ projectId: project.id })).length).toBe(25);
    });

    it("refuses a second run of the same name in one project, with a typed error", async () => {
      const { project, run } = await seed();
      await expect(
        store.createProtocolRun({ projectId: project.id, protocolName: run.protocolName }),
      ).rejects.toThrow(DuplicateNameError);
      // the store is still usable after the failed insert
      const other = await store.createProtocolRun({ projectId: project.id, protocolName: "0002-demo" });
      expect(other.protocolName).toBe("0002-demo");
    });

    it("records a webhook delivery once, by provider and id, also inside a transaction that goes on", async () => {
      const { run } = await seed();
      const delivery = { provider: "github", deliveryId: `d-${run.id}`, protocolRunId: run.id };
      expect(await store.findWebhookDelivery("github", delivery.deliveryId)).toBeUndefined();
      expect(await store.recordWebhookDelivery(delivery)).toBe(true);
      // a repeat writes nothing and does not break the transaction it is in
      const after = await store.transaction(async (tx) => {
        const again = await tx.recordWebhookDelivery(delivery);
        await tx.appendEvent({ protocolRunId: run.id, eventType: "ci_webhook", message: "still writable" });
        return again;
      });
      expect(after).toBe(false);
      expect((await store.listEvents({ protocolRunId: run.id, eventTypes: ["ci_webhook"] })).length).toBe(1);
      expect(await store.findWebhookDelivery("github", delivery.deliveryId)).toEqual(delivery);
      // the same id from another provider is another delivery
      expect(await store.recordWebhookDelivery({ ...delivery, provider: "gitlab" })).toBe(true);
    });

    it("leases a run to one owner at a time, until it is released or expires", async () => {
      const { run } = await seed();
      expect((await store.acquireRunLease(run.id, "a", 60_000)).leaseOwner).toBe("a");
      expect((await store.acquireRunLease(run.id, "b", 60_000)).leaseOwner).toBe("a");
      expect(await store.renewRunLease(run.id, "b", 60_000)).toBe(false);
      expect(await store.renewRunLease(run.id, "a", 1)).toBe(true);
      await new Promise((r) => setTimeout(r, 20));
      expect((await store.listUnleasedRuns(["pending"])).map((r) => r.id)).toContain(run.id);
      expect((await store.acquireRunLease(run.id, "b", 60_000)).leaseOwner).toBe("b");
      expect(await store.renewRunLease(run.id, "a", 60_000)).toBe(false);
      expect((await store.listUnleasedRuns(["pending"])).map((r) => r.id)).not.toContain(run.id);
      await store.releaseRunLease(run.id, "a");
      expect((await store.getProtocolRun(run.id)).leaseOwner).toBe("b");
      await store.releaseRunLease(run.id, "b");
      expect(await store.getProtocolRun(run.id)).toMatchObject({ leaseOwner: null, leaseExpiresAt: null });
    });

    // SQLite has one writer per database and one connection per store, so the order holds by construction
    if (backend === "postgres")
      it("makes events visible in id order: a later id never shows before an earlier one commits", async () => {
        const { run } = await seed();
        let release!: () => void;
        const held = new Promise<void>((r) => {
          release = r;
        });
        let firstId = 0;
        const slow = store.transaction(async (tx) => {
          firstId = (
            await tx.appendEvent({ protocolRunId: run.id, eventType: "step_started", message: "slow" })
          ).id;
          await held;
        });
        while (firstId === 0) await new Promise((r) => setTimeout(r, 5));
        const fast = store.appendEvent({
          protocolRunId: run.id,
          eventType: "step_completed",
          message: "fast",
        });
        await new Promise((r) => setTimeout(r, 150));
        // a reader polling now must not see "fast" yet: its cursor would then skip "slow"
        const seen = await store.listEvents({ protocolRunId: run.id });
        expect(seen.map((e) => e.message)).toEqual([]);
        release();
        await slow;
        const second = await fast;
        expect(second.id).toBeGreaterThan(firstId);
        expect((await store.listEvents({ protocolRunId: run.id })).map((e) => e.message)).toEqual([
          "slow",
          "fast",
        ]);
      });

    it("sums token usage per step, run, project and phase, counting estimated calls, also for every step at once", async () => {
      const a = await seed();
      const b = await store.createProtocolRun({ projectId: a.project.id, protocolName: "0002-other" });
      await store.recordUsage({
        protocolRunId: a.run.id,
        stepRunId: a.steps[0]!.id,
        phase: "exec",
        engineId: "replay",
        model: "m",
        usage: usage(100, 10),
      });
      await store.recordUsage({
        protocolRunId: a.run.id,
        stepRunId: a.steps[0]!.id,
        phase: "qa",
        engineId: "replay",
        model: null,
        usage: usage(50, 5, true),
      });
      await store.recordUsage({
        protocolRunId: a.run.id,
        stepRunId: a.steps[1]!.id,
        phase: "exec",
        engineId: "shell",
        model: null,
        usage: usage(7, 3),
      });
      await store.recordUsage({
        protocolRunId: b.id,
        phase: "plan",
        engineId: "codex",
        model: "x",
        usage: usage(1000, 1),
      });
      expect(await store.sumUsage({ stepRunId: a.steps[0]!.id })).toEqual({
        input: 150,
        cachedInput: 2,
        output: 15,
        reasoning: 4,
        total: 165,
        estimatedCalls: 1,
        calls: 2,
      });
      expect((await store.sumUsage({ protocolRunId: a.run.id })).total).toBe(175);
      expect((await store.sumUsage({ projectId: a.project.id })).total).toBe(1176);
      expect(await store.sumUsage({ stepRunId: 999_999 })).toMatchObject({ total: 0, calls: 0 });
      expect((await store.sumUsage({ protocolRunId: a.run.id, phase: "qa" })).total).toBe(55);
      expect((await store.sumUsage({ protocolRunId: b.id, phase: "exec" })).calls).toBe(0);
      // per step in one query: the same totals, and a run's planning call belongs to no step
      const byStep = await store.sumUsageByStep(a.run.id);
      expect([...byStep.keys()].sort()).toEqual([a.steps[0]!.id, a.steps[1]!.id].sort());
      expect(byStep.get(a.steps[0]!.id)).toEqual(await store.sumUsage({ stepRunId: a.steps[0]!.id }));
      expect(byStep.get(a.steps[1]!.id)).toMatchObject({ total: 10, calls: 1, estimatedCalls: 0 });
      expect((await store.sumUsageByStep(b.id)).size).toBe(0);
    });
  });
}

describe("the embedded store shared by several processes", () => {
  it("lets concurrent writer processes wait their turn instead of failing with database is locked", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "tgz-multi-")), "db.sqlite");
    await (await openStore({ sqlitePath: path })).close();
    const writer = fileURLToPath(new URL("./fixtures/sqlite-writer.ts", import.meta.url));
    const results = await Promise.all(
      ["w1", "w2", "w3", "w4"].map(
        (tag) =>
          new Promise<{ code: number | null; stderr: string }>((done) => {
            const child = spawn(process.execPath, ["--import", "tsx", writer, path, tag], {
              stdio: ["ignore", "ignore", "pipe"],
            });
            let stderr = "";
            child.stderr.on("data", (d) => {
              stderr += d;
            });
            child.on("close", (code) => done({ code, stderr }));
          }),
      ),
    );
    expect(results.map((r) => r.stderr)).toEqual(["", "", "", ""]);
    expect(results.map((r) => r.code)).toEqual([0, 0, 0, 0]);
    const store = await openStore({ sqlitePath: path });
    expect(await store.listEvents({ eventTypes: ["protocol_started"] })).toHaveLength(160);
    await store.close();
  });
});

describe("opening the embedded store", () => {
  it("keeps data across reopen and migrates idempotently", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "tgz-reopen-")), "nested", "db.sqlite");
    const first = await openStore({ sqlitePath: path });
    await first.createProject({ name: "keep", gitUrl: "/k" });
    await first.close();
    const second = await openStore({ sqlitePath: path });
    expect((await second.listProjects()).map((p) => p.name)).toEqual(["keep"]);
    await second.close();
  });

  it("fails with the location and the cause when it cannot open", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "tgz-bad-")), "file");
    writeFileSync(file, "not a directory");
    await expect(openStore({ sqlitePath: join(file, "db.sqlite") })).rejects.toThrow(StoreOpenError);
    await expect(openStore({ url: "postgres://nobody:secret@127.0.0.1:1/none" })).rejects.toThrow(
      /cannot open the store at postgres:\/\/nobody:\*\*\*@127\.0\.0\.1:1\/none/,
    );
  });
});
