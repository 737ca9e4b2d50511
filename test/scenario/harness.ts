/** Whole-protocol scenarios on a temp git repository and a temp SQLite store, through the service layer. */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { loadConfig } from "../../src/config/load-config.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
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

/** The runner a scenario uses: built-in registry, config from the repo and the scenario's env. */
export function runnerFor(s: Scenario): ProtocolRunner {
  return new ProtocolRunner({
    store: s.store,
    registry: createDefaultRegistry(),
    configFor: (dir) => loadConfig(dir, s.env),
  });
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
