/** `tgz spec audit` as a service: every stored spec validated again; missing ones rebuilt when they can be. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import type { ClaimedJob } from "../../src/queue/job-queue.js";
import { planRun } from "../../src/services/plan-run.js";
import { auditSpecs } from "../../src/services/spec-audit.js";
import { openStore } from "../../src/store/open-store.js";
import type { StoreOps } from "../../src/store/types.js";
import { jobHandlers } from "../../src/worker/job-handlers.js";
import { gitRepo, inspect } from "../scenario/harness.js";

const PLAN = {
  title: "One step",
  summary: "Write it.",
  context: "",
  steps: [{ slug: "write", title: "Write it", kind: "work", prompt: "Write x." }],
};

async function plannedRun() {
  const data = mkdtempSync(join(tmpdir(), "tgz-audit-"));
  const env = { TASKSGODZILLA_DATA_DIR: data };
  const store = await openStore({ sqlitePath: join(data, "db.sqlite") });
  const configFor = (dir: string) => loadConfig(dir, env);
  const run = await planRun(
    { store, registry: createDefaultRegistry(), configFor },
    { task: "Write x", repoDir: gitRepo(), engine: "replay", inputs: { final: JSON.stringify(PLAN) } },
  );
  return { store, configFor, run };
}

describe("spec audit", () => {
  it("reports a stored spec that no longer validates as invalid, every error with its pointer", async () => {
    const { store, configFor, run } = await plannedRun();
    const spec = run.templateConfig.protocol_spec as { steps: Record<string, unknown>[] };
    spec.steps[0]!.qa = { policy: "sometimes" };
    spec.steps[0]!.timeout_seconds = "soon";
    await store.updateProtocolRun(run.id, { templateConfig: { ...run.templateConfig, protocol_spec: spec } });
    const [row] = await auditSpecs(store, configFor, { runId: run.id, backfill: true });
    expect(row).toMatchObject({ status: "invalid", specHash: expect.stringMatching(/^[0-9a-f]{12}$/) });
    expect(row!.errors).toEqual(
      expect.arrayContaining([
        {
          pointer: "/steps/0/qa/policy",
          message: expect.stringMatching(/must be one of "skip", "light", "full"/),
        },
        {
          pointer: "/steps/0/timeout_seconds",
          message: expect.stringMatching(/^expected number, got string/),
        },
      ]),
    );
    const audit = (await inspect(store, run.id)).of("spec_audit").at(-1)!;
    expect(audit.metadata).toMatchObject({ status: "invalid", errors: row!.errors });
    expect((await store.getProtocolRun(run.id)).templateConfig.spec_meta).toMatchObject({
      status: "invalid",
      errors: row!.errors,
    });
    await store.close();
  });

  it("cannot rebuild a missing spec when the protocol folder is gone: unrecoverable, and says so", async () => {
    const { store, configFor, run } = await plannedRun();
    await store.updateProtocolRun(run.id, { templateConfig: {} });
    rmSync(run.protocolRoot!, { recursive: true });
    const [row] = await auditSpecs(store, configFor, { runId: run.id, backfill: true });
    expect(row).toMatchObject({ status: "unrecoverable", specHash: null, errors: [] });
    expect((await inspect(store, run.id)).of("spec_audit").at(-1)!.metadata).toMatchObject({
      status: "unrecoverable",
    });
    expect((await store.getProtocolRun(run.id)).templateConfig.protocol_spec).toBeUndefined();
    await store.close();
  });

  it("backfills through the worker's spec_audit job: the spec and its step rows come back", async () => {
    const { store, configFor, run } = await plannedRun();
    const spec = run.templateConfig.protocol_spec;
    await store.updateProtocolRun(run.id, { templateConfig: {} });
    const handlers = jobHandlers({ store, registry: createDefaultRegistry(), configFor });
    const job = { id: "a1", kind: "spec_audit", payload: { protocol_run_id: run.id, backfill: true } };
    await handlers.spec_audit(job as unknown as ClaimedJob, new AbortController().signal, () => undefined);
    const after = await store.getProtocolRun(run.id);
    // rebuilt from the frozen protocol-spec.json in the protocol folder
    expect(after.templateConfig.protocol_spec).toEqual(spec);
    expect(after.templateConfig.spec_meta).toMatchObject({ status: "valid" });
    expect((await inspect(store, run.id)).of("spec_backfilled")[0]!.metadata).toMatchObject({
      source: "protocol-spec.json",
      valid: true,
    });
    expect((await store.listStepRuns(run.id)).map((s) => s.stepName)).toEqual(["01-write"]);
    await store.close();
  });

  it("does not backfill a run that is being planned: its planner writes the spec", async () => {
    const { store, configFor, run } = await plannedRun();
    const planning = await store.createProtocolRun({
      projectId: run.projectId,
      protocolName: "0002-planning",
      status: "planning",
      protocolRoot: run.protocolRoot,
    });
    const [row] = await auditSpecs(store, configFor, { runId: planning.id, backfill: true });
    expect(row).toMatchObject({ status: "missing", source: "not backfilled: the run is being planned" });
    expect((await store.getProtocolRun(planning.id)).templateConfig.protocol_spec).toBeUndefined();
    expect(await store.listStepRuns(planning.id)).toEqual([]);
    await store.close();
  });

  it("records a verdict and its event together, or neither", async () => {
    const { store, configFor, run } = await plannedRun();
    const before = (await store.getProtocolRun(run.id)).templateConfig.spec_meta;
    // the event cannot be written: the verdict must not be stored without it
    const failing = (ops: StoreOps): StoreOps =>
      new Proxy(ops, {
        get: (target, key, receiver) =>
          key === "appendEvent"
            ? () => Promise.reject(new Error("event store unavailable"))
            : Reflect.get(target, key, receiver),
      });
    const broken = new Proxy(store, {
      get: (target, key, receiver) =>
        key === "transaction"
          ? (fn: (tx: StoreOps) => Promise<unknown>) => target.transaction((tx) => fn(failing(tx)))
          : key === "appendEvent"
            ? failing(target).appendEvent
            : Reflect.get(target, key, receiver),
    });
    await expect(auditSpecs(broken, configFor, { runId: run.id, backfill: false })).rejects.toThrow(
      "event store unavailable",
    );
    expect((await store.getProtocolRun(run.id)).templateConfig.spec_meta).toEqual(before);
    await store.close();
  });

  it("refuses an unknown project instead of auditing nothing", async () => {
    const { store, configFor } = await plannedRun();
    await expect(auditSpecs(store, configFor, { projectId: 99, backfill: false })).rejects.toThrow(
      "project 99 not found",
    );
    await store.close();
  });
});
