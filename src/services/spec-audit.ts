/**
 * The migration path for stored specs: every run's frozen spec is validated again; a run that has
 * none can have it rebuilt from its protocol folder (the frozen `protocol-spec.json`, else its step
 * files, best effort). Each verdict is an event on the run.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { EffectiveConfig } from "../config/load-config.js";
import { specFromProtocolFolder, stepFiles } from "../planning/protocol-folder.js";
import { FROZEN_SPEC_FILE } from "../shared/protocol-files.js";
import { specHash } from "../spec/canonical-hash.js";
import { validateSpec } from "../spec/validate-spec.js";
import { EVENT } from "../store/event-types.js";
import type { ProtocolRun, SpecMeta, Store } from "../store/types.js";
import { stepRowsFromSpec } from "./create-run.js";

export type AuditStatus = "ok" | "invalid" | "missing" | "backfilled" | "unrecoverable";

export interface AuditRow {
  runId: number;
  protocolName: string;
  status: AuditStatus;
  specHash: string | null;
  errors: { pointer: string; message: string }[];
  source?: string | undefined;
}

function rebuild(run: ProtocolRun, config: EffectiveConfig): { spec: unknown; source: string } | undefined {
  if (!run.protocolRoot) return undefined;
  const frozen = join(run.protocolRoot, FROZEN_SPEC_FILE);
  if (existsSync(frozen)) {
    try {
      return { spec: JSON.parse(readFileSync(frozen, "utf8")), source: FROZEN_SPEC_FILE };
    } catch {
      // a damaged frozen copy: fall back to the step files
    }
  }
  if (stepFiles(run.protocolRoot).length === 0) return undefined;
  const spec = specFromProtocolFolder(
    run.protocolRoot,
    run.protocolName,
    { qaPolicy: config.qa.policy, timeoutSeconds: config.timeoutSeconds },
    { backfilled: true },
  );
  return { spec, source: "step files (best effort)" };
}

async function auditRun(
  store: Store,
  run: ProtocolRun,
  config: EffectiveConfig,
  backfill: boolean,
): Promise<AuditRow> {
  const row = { runId: run.id, protocolName: run.protocolName };
  const stored = run.templateConfig.protocol_spec;
  if (stored === undefined) {
    // a run being planned gets its spec from its planner: a backfill would race it
    const planning = run.status === "planning";
    const rebuilt = backfill && !planning ? rebuild(run, config) : undefined;
    if (!rebuilt) {
      const status: AuditStatus = backfill && !planning ? "unrecoverable" : "missing";
      const source = backfill && planning ? "not backfilled: the run is being planned" : undefined;
      await store.appendEvent({
        protocolRunId: run.id,
        eventType: EVENT.specAudit,
        message: `Spec audit: ${status}${source ? ` (${source})` : ""}`,
        metadata: { status, ...(source ? { detail: source } : {}) },
      });
      return { ...row, status, specHash: null, errors: [], source };
    }
    const v = validateSpec(rebuilt.spec);
    const hash = specHash(rebuilt.spec);
    const meta: SpecMeta = {
      status: v.ok ? "valid" : "invalid",
      errors: v.errors,
      validated_at: new Date().toISOString(),
      spec_hash: hash,
    };
    await store.transaction(async (tx) => {
      await tx.updateProtocolRun(run.id, {
        templateConfig: {
          ...run.templateConfig,
          protocol_spec: rebuilt.spec as Record<string, unknown>,
          spec_meta: meta,
        },
      });
      if (v.ok && (await tx.listStepRuns(run.id)).length === 0)
        await tx.createStepRuns(run.id, stepRowsFromSpec(v.spec));
      await tx.appendEvent({
        protocolRunId: run.id,
        eventType: EVENT.specBackfilled,
        message: `Spec rebuilt from ${rebuilt.source}`,
        metadata: { source: rebuilt.source, spec_hash: hash, valid: v.ok, errors: v.errors },
        specHash: hash,
      });
    });
    return {
      ...row,
      status: v.ok ? "backfilled" : "invalid",
      specHash: hash,
      errors: v.errors,
      source: rebuilt.source,
    };
  }
  const v = validateSpec(stored);
  const hash = specHash(stored);
  const meta: SpecMeta = {
    status: v.ok ? "valid" : "invalid",
    errors: v.errors,
    validated_at: new Date().toISOString(),
    spec_hash: hash,
  };
  await store.transaction(async (tx) => {
    await tx.updateProtocolRun(run.id, { templateConfig: { ...run.templateConfig, spec_meta: meta } });
    await tx.appendEvent({
      protocolRunId: run.id,
      eventType: EVENT.specAudit,
      message: `Spec audit: ${v.ok ? "ok" : `${v.errors.length} error(s)`}`,
      metadata: { status: v.ok ? "ok" : "invalid", errors: v.errors, spec_hash: hash },
    });
  });
  return { ...row, status: v.ok ? "ok" : "invalid", specHash: hash, errors: v.errors };
}

export async function auditSpecs(
  store: Store,
  configFor: (repoDir: string) => EffectiveConfig,
  opts: { projectId?: number | undefined; runId?: number | undefined; backfill: boolean },
): Promise<AuditRow[]> {
  // an unknown project is an error, not an empty audit
  if (opts.projectId !== undefined) await store.getProject(opts.projectId);
  const runs =
    opts.runId !== undefined
      ? [await store.getProtocolRun(opts.runId)]
      : await store.listProtocolRuns(opts.projectId);
  const rows: AuditRow[] = [];
  for (const run of runs) {
    const project = await store.getProject(run.projectId);
    rows.push(
      await auditRun(store, run, configFor(project.localPath ?? run.worktreePath ?? "."), opts.backfill),
    );
  }
  return rows;
}
