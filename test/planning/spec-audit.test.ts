/** `tgz spec audit` as a service: every stored spec validated again; missing ones rebuilt when they can be. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import { planProtocol } from "../../src/planning/plan-protocol.js";
import { auditSpecs } from "../../src/services/spec-audit.js";
import { openStore } from "../../src/store/open-store.js";
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
  const run = await planProtocol(
    { store, registry: createDefaultRegistry(), configFor },
    { task: "Write x", repoDir: gitRepo(), engine: "replay", inputs: { final: JSON.stringify(PLAN) }, env },
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
});
