/** In-process workers on a real store and queue: runs of shell steps, captured pino logs, polling. */
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { loadConfig } from "../../src/config/load-config.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import type { RunnerDeps } from "../../src/runner/run-context.js";
import { createRunFromSpec } from "../../src/services/create-run.js";
import type { ProtocolRun, Store } from "../../src/store/types.js";

export const depsFor = (store: Store): RunnerDeps => ({
  store,
  registry: createDefaultRegistry(),
  configFor: (dir) => loadConfig(dir, {}),
});

/** A pino logger whose JSON lines are kept, for asserting levels and messages. */
export function capturedLogger() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const logger = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const find = (msg: string, level?: "info" | "warn" | "error") =>
    lines.filter((l) => l.msg === msg && (!level || l.level === pino.levels.values[level]));
  return { logger, lines, find };
}

export interface ShellStep {
  id: string;
  command: string;
}

/** A planned run of shell steps (QA skipped) in `repo`. */
export async function shellRun(
  store: Store,
  repo: string,
  steps: ShellStep[],
  name?: string,
): Promise<ProtocolRun> {
  const { run } = await createRunFromSpec(store, {
    repoDir: repo,
    ...(name ? { name } : {}),
    spec: {
      steps: steps.map((s) => ({
        id: s.id,
        engine_id: "shell",
        qa: { policy: "skip" },
        inputs: { command: s.command },
      })),
    },
  });
  return run;
}

/** Polls `check` until it is truthy; `what` (or what it returns, for details read at the time) names it on a timeout. */
export async function until<T>(
  check: () => Promise<T> | T,
  ms: number,
  what: string | (() => Promise<string>),
): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end)
      throw new Error(`timed out after ${ms} ms: ${typeof what === "string" ? what : await what()}`);
    await sleep(50);
  }
}
