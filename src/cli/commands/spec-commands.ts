/** `tgz spec validate|schema|hash`. */

import { readSpecFile } from "../../services/create-run.js";
import { auditSpecs } from "../../services/spec-audit.js";
import { specHash } from "../../spec/canonical-hash.js";
import { protocolSpecJsonSchema } from "../../spec/json-schema.js";
import { validateSpec } from "../../spec/validate-spec.js";
import type { AppContext } from "../app-context.js";
import { table } from "../format.js";
import { parseProjectId, parseRunId } from "../run-id.js";

export function specValidateCommand(file: string, opts: { json?: boolean }): number {
  const raw = readSpecFile(file);
  const result = validateSpec(raw);
  const hash = specHash(raw);
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({ file, valid: result.ok, spec_hash: hash, errors: result.errors }, null, 2)}\n`,
    );
  } else if (result.ok) {
    process.stdout.write(`${file}: valid (${result.spec.steps.length} steps, spec hash ${hash})\n`);
  } else {
    process.stderr.write(`${file}: ${result.errors.length} error(s)\n`);
    for (const e of result.errors) process.stderr.write(`  ${e.pointer || "/"}: ${e.message}\n`);
  }
  return result.ok ? 0 : 1;
}

export function specSchemaCommand(): number {
  process.stdout.write(`${JSON.stringify(protocolSpecJsonSchema(), null, 2)}\n`);
  return 0;
}

export function specHashCommand(file: string): number {
  process.stdout.write(`${specHash(readSpecFile(file))}\n`);
  return 0;
}

/** `tgz spec audit`: validate every stored spec; with --backfill rebuild missing ones. Exit 1 if any is not ok. */
export async function specAuditCommand(
  app: AppContext,
  opts: { project?: string; run?: string; backfill?: boolean; json?: boolean },
): Promise<number> {
  const rows = await auditSpecs(app.store, (dir) => app.configFor(dir, process.env), {
    projectId: opts.project !== undefined ? parseProjectId(opts.project) : undefined,
    runId: opts.run !== undefined ? parseRunId(opts.run) : undefined,
    backfill: Boolean(opts.backfill),
  });
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify(
        rows.map((r) => ({
          run_id: r.runId,
          protocol_name: r.protocolName,
          status: r.status,
          spec_hash: r.specHash,
          errors: r.errors,
          source: r.source ?? null,
        })),
        null,
        2,
      )}\n`,
    );
  } else {
    const lines = rows.map((r) => [
      String(r.runId),
      r.protocolName,
      r.status,
      r.specHash ?? "-",
      r.errors.map((e) => `${e.pointer || "/"}: ${e.message}`).join("; ") || (r.source ?? ""),
    ]);
    process.stdout.write(`${table([["RUN", "PROTOCOL", "AUDIT", "SPEC HASH", "DETAIL"], ...lines])}\n`);
    const count = (s: string) => rows.filter((r) => r.status === s).length;
    process.stdout.write(
      `${rows.length} run(s): ${count("ok")} ok, ${count("invalid")} invalid, ${count("backfilled")} backfilled, ${count("missing")} missing, ${count("unrecoverable")} unrecoverable\n`,
    );
  }
  return rows.every((r) => r.status === "ok" || r.status === "backfilled") ? 0 : 1;
}
