/** Whole-protocol scenarios on a temp git repository and a temp SQLite store, through the service layer. */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { loadConfig } from "../../src/config/load-config.js";
import { ShellEngine } from "../../src/engines/builtin/shell-engine.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import {
  ENGINE_SPECIFICATION_VERSION,
  type Engine,
  type EngineEvent,
  type EngineRequest,
  type EngineResult,
} from "../../src/engines/engine-port.js";
import type { EngineRegistry } from "../../src/engines/engine-registry.js";
import { ProtocolRunner } from "../../src/runner/protocol-runner.js";
import { createRunFromSpec } from "../../src/services/create-run.js";
import { openStore } from "../../src/store/open-store.js";
import type { Event, Store } from "../../src/store/types.js";

export interface Scenario {
  store: Store;
  repo: string;
  /** Folder holding the spec file and its prompts (copied into the protocol folder). */
  specDir: string;
  env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

export function gitRepo(): string {
  const repo = mkdtempSync(join(tmpdir(), "tgz-repo-"));
  const git = (...args: string[]) => execFileSync("git", args, { cwd: repo, stdio: "ignore" });
  git("init", "-q", "-b", "main");
  writeFileSync(join(repo, "README.md"), "# scratch\n");
  git("add", ".");
  git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "init");
  return repo;
}

export async function scenario(env: NodeJS.ProcessEnv = {}): Promise<Scenario> {
  const base = mkdtempSync(join(tmpdir(), "tgz-scenario-"));
  const store = await openStore({ sqlitePath: join(base, "tgz.db") });
  const specDir = join(base, "spec");
  mkdirSync(specDir);
  return { store, repo: gitRepo(), specDir, env, close: () => store.close() };
}

export function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), content);
  }
}

/** Creates the run from `spec` (plus files beside it) and runs it to a stop. */
export async function runSpec(
  s: Scenario,
  spec: unknown,
  files: Record<string, string> = {},
  signal?: AbortSignal,
) {
  writeFiles(s.specDir, { ...files, "protocol.json": JSON.stringify(spec) });
  const { run: created } = await createRunFromSpec(s.store, {
    repoDir: s.repo,
    specPath: join(s.specDir, "protocol.json"),
  });
  const run = await runnerFor(s).run(created.id, signal ? { signal } : {});
  return { run, ...(await inspect(s.store, run.id)) };
}

/** The runner a scenario uses: built-in registry (or the given one), config from the repo and the scenario's env. */
export function runnerFor(s: Scenario, registry: EngineRegistry = createDefaultRegistry()): ProtocolRunner {
  return new ProtocolRunner({
    store: s.store,
    registry,
    configFor: (dir) => loadConfig(dir, s.env),
  });
}

/**
 * `prompt-shell`, an agent stand-in for imported workflows whose prompts are prose: it does what the
 * prompt's ```sh blocks say, run with the shell engine in the worktree. The prompt is the one the
 * runner rendered, so placeholders, sub-agent sections and QA prompts arrive as an agent gets them.
 */
export class PromptShellEngine implements Engine {
  readonly specificationVersion = ENGINE_SPECIFICATION_VERSION;
  readonly id = "prompt-shell";
  readonly kind = "builtin" as const;
  private readonly shell = new ShellEngine();
  readonly capabilities = { ...this.shell.capabilities, promptRequired: true };

  preflight() {
    return this.shell.preflight();
  }

  async *run(request: EngineRequest, signal: AbortSignal): AsyncGenerator<EngineEvent, EngineResult, void> {
    const blocks = [...request.prompt.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const command = blocks.length > 0 ? blocks.join("\n") : "echo 'the prompt has no sh block' >&2; exit 1";
    return yield* this.shell.run({ ...request, inputs: { ...request.inputs, command } }, signal);
  }
}

/** The built-in engines plus `prompt-shell`. */
export function registryWithPromptShell(): EngineRegistry {
  const registry = createDefaultRegistry();
  registry.register(new PromptShellEngine());
  return registry;
}

export async function inspect(store: Store, runId: number) {
  const steps = await store.listStepRuns(runId);
  const events = await store.listEvents({ protocolRunId: runId });
  const byName = new Map(steps.map((st) => [st.id, st.stepName]));
  const status = Object.fromEntries(steps.map((st) => [st.stepName, st.status]));
  /** Event types in ledger order, each with its step name. */
  const trail = events.map((e) => `${e.eventType}${e.stepRunId ? `:${byName.get(e.stepRunId)}` : ""}`);
  const of = (type: string): Event[] => events.filter((e) => e.eventType === type);
  return { steps, events, status, trail, of };
}

export function shellStep(id: string, command: string | string[], extra: Record<string, unknown> = {}) {
  return { id, engine_id: "shell", inputs: { command }, qa: { policy: "light" }, ...extra };
}
