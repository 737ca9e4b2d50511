/** `tgz import codemachine PATH`: print the normalised spec, or create a run from it. */
import { resolve } from "node:path";
import { importCodemachine } from "../../codemachine/import-codemachine.js";
import { CodeMachineImportError } from "../../codemachine/import-errors.js";
import { importRunNow } from "../../services/import-run.js";
import { InvalidInputError } from "../../shared/errors.js";
import { QA_POLICIES, type QaPolicy } from "../../spec/schema.js";
import type { AppContext } from "../app-context.js";
import { runLine } from "../format.js";

export interface ImportCommandOptions {
  workflow?: string;
  repo?: string;
  qa?: string;
  track?: string;
  condition?: string[];
  engine?: string[];
  name?: string;
  printSpec?: boolean;
  json?: boolean;
}

function qaPolicy(value: string | undefined): QaPolicy | undefined {
  if (value === undefined) return undefined;
  if (!(QA_POLICIES as readonly string[]).includes(value))
    throw new InvalidInputError(`--qa must be one of ${QA_POLICIES.join(", ")}, got "${value}"`);
  return value as QaPolicy;
}

/** `--engine cursor=claude-code`: CodeMachine engine name → engine id. */
function engineMap(pairs: string[] | undefined): Record<string, string> {
  const map: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const m = /^([^=\s]+)=([^=\s]+)$/.exec(pair);
    if (!m) throw new InvalidInputError(`--engine must be <codemachine engine>=<engine id>, got "${pair}"`);
    map[m[1]!] = m[2]!;
  }
  return map;
}

export async function importCodemachineCommand(
  app: AppContext | undefined,
  path: string,
  opts: ImportCommandOptions,
): Promise<number> {
  const repoDir = resolve(opts.repo ?? process.cwd());
  const options = {
    workflow: opts.workflow,
    qa: qaPolicy(opts.qa),
    track: opts.track,
    conditions: opts.condition,
    engines: engineMap(opts.engine),
    repoDir,
  };
  let imported: Awaited<ReturnType<typeof importRunNow>> | Awaited<ReturnType<typeof importCodemachine>>;
  try {
    imported =
      opts.printSpec || !app
        ? await importCodemachine(path, options)
        : await importRunNow(
            app.store,
            path,
            { knownEngines: app.registry.ids(), ...options },
            { repoDir, ...(opts.name ? { name: opts.name } : {}) },
            { registry: app.registry, configFor: app.configFor },
          );
  } catch (err) {
    if (!(err instanceof CodeMachineImportError)) throw err;
    process.stderr.write(`cannot import ${path}: ${err.message}\n`);
    return 1;
  }
  for (const w of imported.warnings) process.stderr.write(`warning: ${w}\n`);
  if (!("run" in imported)) {
    process.stdout.write(`${JSON.stringify(imported.spec, null, 2)}\n`);
    return 0;
  }
  const { run } = imported;
  if (opts.json)
    process.stdout.write(
      `${JSON.stringify({ run_id: run.id, protocol_name: run.protocolName, status: run.status, protocol_root: run.protocolRoot })}\n`,
    );
  else
    process.stdout.write(`Imported ${runLine(run)} in ${run.protocolRoot}\nRun it with: tgz run ${run.id}\n`);
  return run.status === "planned" ? 0 : 1;
}
