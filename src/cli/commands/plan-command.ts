/**
 * `tgz plan "<task>"`: plan a protocol into its own branch and worktree; `--run` executes it too.
 * `tgz plan --run-id N` plans an existing run again (one left blocked, or `planning` by a planner
 * that died: its lease lapses after 15 s), with the engine, model and inputs it was first planned with.
 */
import { planRun } from "../../services/plan-run.js";
import { InvalidInputError } from "../../shared/errors.js";
import type { ProtocolRun } from "../../store/types.js";
import type { AppContext } from "../app-context.js";
import { runLine } from "../format.js";
import { localDeps, workHere } from "../local-work.js";
import { parseRunId } from "../run-id.js";
import { executeRun } from "./run-command.js";

export interface PlanCommandOptions {
  /** Plan this existing run again instead of a new one. */
  runId?: string;
  repo?: string;
  name?: string;
  base?: string;
  engine?: string;
  model?: string;
  run?: boolean;
  json?: boolean;
  /** `key=value` inputs for the planning engine. */
  input?: string[];
}

function parseInputs(pairs: string[] = []): Record<string, string> {
  return Object.fromEntries(
    pairs.map((pair) => {
      const at = pair.indexOf("=");
      if (at < 1) throw new InvalidInputError(`--input needs key=value, got ${JSON.stringify(pair)}`);
      return [pair.slice(0, at), pair.slice(at + 1)];
    }),
  );
}

/**
 * Ctrl-C (or SIGTERM, or the terminal closing) stops the planning engine; the run is then blocked
 * (`planning_failed`, reason `interrupted`) and `tgz plan --run-id N` plans it again.
 */
export async function planCommand(
  app: AppContext,
  task: string | undefined,
  opts: PlanCommandOptions,
): Promise<number> {
  const runId = opts.runId !== undefined ? parseRunId(opts.runId) : undefined;
  if (!task && runId === undefined)
    throw new InvalidInputError(
      'tgz plan needs a task description ("<task>"), or --run-id RUN to plan an existing run again',
    );
  const repoDir = opts.repo ?? process.cwd();
  let planned: ProtocolRun | undefined;
  // planning takes engine slots under the same caps as the workers
  await workHere(app, undefined, { json: true }, async (signal, abort) => {
    planned = await planRun(
      localDeps(app, runId !== undefined ? { protocol_run_id: runId } : { repo: repoDir }, abort),
      {
        task,
        runId,
        repoDir,
        name: opts.name,
        base: opts.base,
        engine: opts.engine,
        model: opts.model,
        // none given: a re-planned run keeps the inputs it was first planned with
        inputs: opts.input ? parseInputs(opts.input) : undefined,
        signal,
      },
    );
  });
  const run = planned!;
  if (run.status !== "planned") {
    const [failed] = await app.store.listEvents({ protocolRunId: run.id, eventTypes: ["planning_failed"] });
    process.stderr.write(`${runLine(run)}: ${failed?.message ?? "planning did not finish"}\n`);
    if (opts.json)
      process.stdout.write(
        `${JSON.stringify({ run_id: run.id, protocol_name: run.protocolName, status: run.status, error: failed?.message ?? null })}\n`,
      );
    return 1;
  }
  if (opts.run) return executeRun(app, run.id, opts);
  const steps = await app.store.listStepRuns(run.id);
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({ run_id: run.id, protocol_name: run.protocolName, status: run.status, worktree: run.worktreePath, protocol_root: run.protocolRoot, steps: steps.map((s) => s.stepName) }, null, 2)}\n`,
    );
  } else {
    process.stdout.write(
      `Planned ${runLine(run)} in ${run.worktreePath}\n${steps.map((s) => `  ${s.stepName}`).join("\n")}\nRun it with: tgz run ${run.id}\n`,
    );
  }
  return 0;
}
