#!/usr/bin/env node
/** The `tasksgodzilla` / `tgz` command line. */
import { readFileSync } from "node:fs";
import { Command } from "commander";
import type { RunAction, StepAction } from "../services/action-rules.js";
import { SpecRefusedError } from "../services/create-run.js";
import { errorMessage, TasksGodzillaError } from "../shared/errors.js";
import { type GlobalOptions, withApp } from "./app-context.js";
import { type ActionCommandOptions, actionCommand } from "./commands/action-commands.js";
import { enginesCommand } from "./commands/engines-command.js";
import {
  diffCommand,
  prCommand,
  worktreeListCommand,
  worktreePruneCommand,
} from "./commands/git-commands.js";
import { type ImportCommandOptions, importCodemachineCommand } from "./commands/import-command.js";
import { eventsCommand, statusCommand, stepsCommand } from "./commands/inspect-commands.js";
import { type PlanCommandOptions, planCommand } from "./commands/plan-command.js";
import { runCommand } from "./commands/run-command.js";
import { serverCommand, workerCommand } from "./commands/service-commands.js";
import {
  specAuditCommand,
  specHashCommand,
  specSchemaCommand,
  specValidateCommand,
} from "./commands/spec-commands.js";

const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

const program = new Command()
  .name("tgz")
  .description("TasksGodzilla: run coding agents through a real plan, with QA, budgets and evidence.")
  .version(version, "-V, --version", "print the version")
  .option(
    "--db <path-or-url>",
    "SQLite file or postgres:// URL (default: TASKSGODZILLA_DB_URL, TASKSGODZILLA_DB_PATH, or the per-user data dir)",
  )
  .showHelpAfterError();

// a reader that went away (`tgz events 1 | head`) ends the output, not the process with a stack trace
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw err;
});

let exitCode = 0;
const globals = (): GlobalOptions => program.opts<GlobalOptions>();
const withStore =
  <A extends unknown[]>(
    fn: (app: Parameters<Parameters<typeof withApp>[1]>[0], ...args: A) => Promise<number>,
  ) =>
  async (...args: A) => {
    exitCode = await withApp(globals(), (app) => fn(app, ...args));
  };

program
  .command("run <spec-or-run-id>")
  .description("create a run from a spec file and execute it, or continue run RUN_ID")
  .option("--repo <dir>", "repository to run in (default: current directory)")
  .option("--name <short-name>", "short protocol name (default: spec metadata.name or file name)")
  .option("--json", "print one final JSON object instead of live progress")
  .action(
    withStore((app, target: string, opts: { repo?: string; json?: boolean; name?: string }) =>
      runCommand(app, target, opts),
    ),
  );

program
  .command("plan [task]")
  .description(
    "plan a protocol for a task into its own branch and worktree NNNN-<short-name>, or plan run --run-id again",
  )
  .option(
    "--run-id <id>",
    "plan this existing run again (blocked, or left planning by a planner that died), with the engine, model and inputs it was first planned with unless given",
  )
  .option("--repo <dir>", "repository (default: current directory)")
  .option("--name <short-name>", "short name for the branch (default: from the task)")
  .option(
    "--base <branch>",
    "base branch (default: the project's base branch, the one checked out when the repository was registered)",
  )
  .option("--engine <id>", "planning engine (default: the project's engine)")
  .option("--model <model>", "planning model (default: models.plan)")
  .option("--input <key=value...>", "inputs for the planning engine (e.g. recording=plan.jsonl for replay)")
  .option("--run", "execute the protocol right after planning")
  .option("--json", "JSON output")
  .action(
    withStore((app, task: string | undefined, opts: PlanCommandOptions) => planCommand(app, task, opts)),
  );

/**
 * The API's actions, with the same rules and refusals. The work they imply runs here and now (live
 * view; Ctrl-C pauses), unless --queue hands it to `tgz server` / `tgz worker`.
 */
const RUN_COMMANDS: [string, RunAction, string][] = [
  [
    "start",
    "start",
    "start a planned run and run it here (a pending one is planned from its description; a paused one resumes)",
  ],
  ["pause", "pause", "hold a planned or running run (its runner stops the engine call under way)"],
  ["resume", "resume", "run a paused run again, here"],
  ["cancel", "cancel", "cancel a run with its pending steps"],
  [
    "retry",
    "retry_latest",
    "retry the latest failed or blocked step (retries + 1) and continue the run here",
  ],
  ["next", "run_next_step", "run the first pending, blocked or failed step alone here, then hold the run"],
];
const STEP_COMMANDS: [string, StepAction, string][] = [
  ["step", "run", "run one pending, blocked or failed step alone here, then hold the run"],
  ["qa", "run_qa", "run a step's QA again here, on what the step produced (it is not executed again)"],
  ["approve", "approve", "complete a step by hand; a run whose steps are then all done completes"],
];
const actionOptions = (command: Command) =>
  command
    .option("--queue", "queue the work for `tgz server` / `tgz worker` instead of doing it here")
    .option("--json", "one JSON object: the run's status, the message and the actions allowed now");
for (const [name, action, what] of RUN_COMMANDS)
  actionOptions(program.command(`${name} <run-id>`).description(what)).action(
    withStore((app, runId: string, opts: ActionCommandOptions) =>
      actionCommand(app, { run: action }, runId, undefined, opts),
    ),
  );
for (const [name, action, what] of STEP_COMMANDS)
  actionOptions(program.command(`${name} <run-id> <step-id>`).description(what)).action(
    withStore((app, runId: string, step: string, opts: ActionCommandOptions) =>
      actionCommand(app, { step: action }, runId, step, opts),
    ),
  );

program
  .command("diff <run-id> [step-id]")
  .description(
    "what a step's latest attempt changed since the step's start, or the whole run up to the working tree",
  )
  .action(withStore((app, runId: string, stepId: string | undefined) => diffCommand(app, runId, stepId)));

program
  .command("pr <run-id>")
  .description("push the run's branch and open a PR (GitHub) or MR (GitLab)")
  .option("--remote <name>", "git remote to push to", "origin")
  .option("--queue", "queue it for `tgz server` / `tgz worker` instead of doing it here")
  .option("--json", "JSON output")
  .action(
    withStore((app, runId: string, opts: { remote?: string; json?: boolean; queue?: boolean }) =>
      prCommand(app, runId, opts),
    ),
  );

const worktree = program.command("worktree").description("protocol worktrees of a repository");
worktree
  .command("list")
  .description("each protocol worktree with its run, size, age and state, and the disk they use")
  .option("--repo <dir>", "repository (default: current directory)")
  .option("--json", "JSON output")
  .action(withStore((app, opts: { repo?: string; json?: boolean }) => worktreeListCommand(app, opts)));
worktree
  .command("prune [branches...]")
  .description(
    "remove protocol worktrees and their branches (all, or the named ones); refuses uncommitted or unmerged work and paused runs unless --force, never a planning or running run",
  )
  .option("--repo <dir>", "repository (default: current directory)")
  .option("--force", "also remove worktrees with uncommitted work, unmerged commits or a paused run")
  .action(
    withStore((app, branches: string[], opts: { repo?: string; force?: boolean }) =>
      worktreePruneCommand(app, branches, opts),
    ),
  );

const importer = program.command("import").description("import workflows from other tools");
importer
  .command("codemachine <path>")
  .description("import a CodeMachine workflow package (0.7 or 0.8) as a protocol run")
  .option("--workflow <name>", "which *.workflow.js, when the package has several")
  .option("--repo <dir>", "repository the run works in (default: current directory)")
  .option(
    "--qa <policy>",
    "QA for every imported step: skip, light or full (default: the project's qa.policy)",
  )
  .option("--track <id>", "the workflow track to run (CodeMachine 0.8 onboarding)")
  .option(
    "--condition <id...>",
    "conditions chosen (CodeMachine 0.8 onboarding); steps that need others are left out",
  )
  .option("--engine <from=to...>", "run a CodeMachine engine as one of ours, e.g. cursor=claude-code")
  .option("--name <short-name>", "short protocol name (default: the workflow name)")
  .option("--print-spec", "print the normalised ProtocolSpec and create nothing")
  .option("--json", "JSON output")
  .action(async (path: string, opts: ImportCommandOptions) => {
    exitCode = opts.printSpec
      ? await importCodemachineCommand(undefined, path, opts)
      : await withApp(globals(), (app) => importCodemachineCommand(app, path, opts));
  });

program
  .command("server")
  .description("serve the HTTP API (and, on the embedded queue, a worker in the same process)")
  .option(
    "--host <host>",
    "address to listen on (anything but loopback needs TASKSGODZILLA_API_TOKEN)",
    "127.0.0.1",
  )
  .option("--port <port>", "port (8010, the original's)", "8010")
  .option("--worker", "run a worker in this process also with Redis")
  .option("--no-worker", "do not run a worker in this process")
  .action(
    withStore((app, opts: { host: string; port: string; worker?: boolean }) => serverCommand(app, opts)),
  );

program
  .command("worker")
  .description("run jobs from the queue (embedded, or BullMQ with TASKSGODZILLA_REDIS_URL)")
  .option("--concurrency <n>", "jobs at once", "1")
  .option("--lease-seconds <s>", "job lease; a worker that stops heartbeating loses its job after this", "30")
  .action(withStore((app, opts: { concurrency: string; leaseSeconds: string }) => workerCommand(app, opts)));

program
  .command("status [run-id]")
  .description("show one run with its steps, or list all runs")
  .option("--json", "JSON output")
  .action(
    withStore((app, runId: string | undefined, opts: { json?: boolean }) => statusCommand(app, runId, opts)),
  );

program
  .command("steps <run-id>")
  .description("list the steps of a run")
  .option("--json", "JSON output")
  .action(withStore((app, runId: string, opts: { json?: boolean }) => stepsCommand(app, runId, opts)));

program
  .command("events <run-id>")
  .description("print the event ledger of a run, in order")
  .option("--json", "one JSON object per line")
  .option("--follow", "keep printing new events until the run stops")
  .option("--type <types...>", "only these event types")
  .action(
    withStore((app, runId: string, opts: { json?: boolean; follow?: boolean; type?: string[] }) =>
      eventsCommand(app, runId, opts),
    ),
  );

program
  .command("engines")
  .alias("doctor")
  .description(
    "list registered engines with their preflight (binary, version, credentials); exit 1 on a problem",
  )
  .option("--repo <dir>", "repository whose tasksgodzilla.config.* engine settings apply", process.cwd())
  .option("--json", "JSON output")
  // no store: the doctor must answer even when the database is what is broken
  .action(async (opts: { json?: boolean; repo?: string }) => {
    exitCode = await enginesCommand(opts);
  });

const spec = program.command("spec").description("ProtocolSpec tools");
spec
  .command("audit")
  .description(
    "validate every stored spec (or one project's / run's); --backfill rebuilds missing ones from the protocol folder",
  )
  .option("--project <id>", "only this project")
  .option("--run <id>", "only this run")
  .option("--backfill", "rebuild missing specs from their protocol folders")
  .option("--json", "JSON output")
  .action(
    withStore((app, opts: { project?: string; run?: string; backfill?: boolean; json?: boolean }) =>
      specAuditCommand(app, opts),
    ),
  );
spec
  .command("validate <file>")
  .description(
    "the checks a run's creation and start make (schema, references, engines, prompts; with --repo every path inside the run's roots); every error with its JSON pointer",
  )
  .option("--repo <dir>", "the repository the spec would run in: its config, and paths checked in it")
  .option("--json", "JSON output")
  .action((file: string, opts: { json?: boolean; repo?: string }) => {
    exitCode = specValidateCommand(file, opts);
  });
spec
  .command("schema")
  .description("print the ProtocolSpec JSON Schema")
  .action(() => {
    exitCode = specSchemaCommand();
  });
spec
  .command("hash <file>")
  .description("print the canonical spec hash")
  .action((file: string) => {
    exitCode = specHashCommand(file);
  });

try {
  await program.parseAsync(process.argv);
  process.exitCode = exitCode;
} catch (err) {
  if (err instanceof SpecRefusedError)
    process.stderr.write(
      `tgz: the spec would block the run (${err.errors.length} error(s)); nothing was created\n${err.errors.map((e) => `  ${e.pointer || "/"}: ${e.message}\n`).join("")}`,
    );
  else process.stderr.write(`tgz: ${TasksGodzillaError.is(err) ? err.message : errorMessage(err)}\n`);
  if (!TasksGodzillaError.is(err) && process.env.TASKSGODZILLA_DEBUG)
    process.stderr.write(`${(err as Error).stack}\n`);
  process.exitCode = 2;
}
