/** `tgz spec validate|schema|hash`. */

import { loadConfig } from "../../config/load-config.js";
import { createDefaultRegistry } from "../../engines/builtin-engines.js";
import { readSpecFile, specFileProblems } from "../../services/create-run.js";
import { auditSpecs } from "../../services/spec-audit.js";
import { specHash } from "../../spec/canonical-hash.js";
import { protocolSpecJsonSchema } from "../../spec/json-schema.js";
import type { AppContext } from "../app-context.js";
import { table } from "../format.js";
import { parseProjectId, parseRunId } from "../run-id.js";

/**
 * The checks a run's creation and start make: the schema and references, the engines (of the
 * project config of `--repo`, else of the current folder), prompts where engines need them, and with
 * `--repo` every path inside the roots the run would have. Exit 1 when `tgz run` would refuse it.
 */
export function specValidateCommand(file: string, opts: { json?: boolean; repo?: string }): number {
  const raw = readSpecFile(file);
  const errors = specFileProblems(
    file,
    { registry: createDefaultRegistry(), configFor: (dir) => loadConfig(dir, process.env) },
    opts.repo,
  );
  const hash = specHash(raw);
  const steps = (raw as { steps?: unknown[] } | null)?.steps;
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({ file, valid: errors.length === 0, spec_hash: hash, errors }, null, 2)}\n`,
    );
  } else if (errors.length === 0) {
    process.stdout.write(
      `${file}: valid (${Array.isArray(steps) ? steps.length : 0} steps, spec hash ${hash}${opts.repo ? `, paths checked in ${opts.repo}` : ""})\n`,
    );
  } else {
    process.stderr.write(`${file}: ${errors.length} error(s)\n`);
    for (const e of errors) process.stderr.write(`  ${e.pointer || "/"}: ${e.message}\n`);
  }
  return errors.length === 0 ? 0 : 1;
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
