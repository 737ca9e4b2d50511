/** `tgz run SPEC --repo DIR` creates and runs a protocol; `tgz run RUN_ID` continues an existing one. */
import { ProtocolRunner } from "../../runner/protocol-runner.js";
import { createRunFromSpec, SpecRefusedError } from "../../services/create-run.js";
import { usageJson } from "../../store/usage-json.js";
import type { AppContext } from "../app-context.js";
import { runLine, stepsJson, stepsTable } from "../format.js";
import { localDeps, workHere } from "../local-work.js";

export interface RunCommandOptions {
  repo?: string;
  json?: boolean;
  name?: string;
}

/**
 * Returns the process exit code: 0 only when the protocol completed. A spec that would block the
 * run at its start is refused before anything is created, with every pointer (exit 1).
 */
export async function runCommand(app: AppContext, target: string, opts: RunCommandOptions): Promise<number> {
  const out = (line: string) => {
    if (!opts.json) process.stdout.write(`${line}\n`);
  };
  let runId: number;
  if (/^\d+$/.test(target)) {
    runId = Number(target);
  } else {
    try {
      const created = await createRunFromSpec(
        app.store,
        { repoDir: opts.repo ?? process.cwd(), specPath: target, ...(opts.name ? { name: opts.name } : {}) },
        { registry: app.registry, configFor: app.configFor },
      );
      runId = created.run.id;
      out(`Created ${runLine(created.run)} in ${created.run.protocolRoot}`);
    } catch (err) {
      if (!(err instanceof SpecRefusedError)) throw err;
      process.stderr.write(`${target}: ${err.errors.length} error(s); no run was created\n`);
      for (const e of err.errors) process.stderr.write(`  ${e.pointer || "/"}: ${e.message}\n`);
      return 1;
    }
  }
  return executeRun(app, runId, opts);
}

/** Runs RUN_ID with live progress (or a final JSON object); exit 0 only when it completed. */
export async function executeRun(app: AppContext, runId: number, opts: { json?: boolean }): Promise<number> {
  const out = (line: string) => {
    if (!opts.json) process.stdout.write(`${line}\n`);
  };
  // asked for by a person: a paused, blocked or failed run is resumed; engine caps hold as for workers
  await workHere(app, runId, opts, (signal, abort) =>
    new ProtocolRunner(localDeps(app, { protocol_run_id: runId }, abort)).run(runId, {
      signal,
      resume: true,
    }),
  );
  const run = await app.store.getProtocolRun(runId);
  const steps = await app.store.listStepRuns(runId);
  const usage = await app.store.sumUsage({ protocolRunId: runId });
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({ run_id: run.id, protocol_name: run.protocolName, status: run.status, spec_hash: run.templateConfig.spec_meta?.spec_hash ?? null, protocol_root: run.protocolRoot, usage: usageJson(usage), steps: stepsJson(steps) }, null, 2)}\n`,
    );
  } else {
    out("");
    out(stepsTable(steps));
    out("");
    out(`${runLine(run)} — ${usage.total} tokens (${usage.calls} calls, ${usage.estimatedCalls} estimated)`);
  }
  return run.status === "completed" ? 0 : 1;
}
