/**
 * Real processes for scale-out tests: `tgz server` / `tgz worker` (spawn, wait for a line, kill by
 * PID), a redis-server of the test's own, and a Postgres schema of its own.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { findBinary } from "../../src/engines/process/run-process.js";
import { PG_URL } from "../store/store-backends.js";

const BIN = join(import.meta.dirname, "../../dist/cli/main.js");

export interface Proc {
  child: ChildProcess;
  output: string[];
  waitFor(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function tgzProcess(args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn("node", [BIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    output.push(...d.toString("utf8").split("\n").filter(Boolean));
    for (const l of listeners) l();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  return {
    child,
    output,
    waitFor(pattern, ms = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          for (const line of output) {
            const m = line.match(pattern);
            if (m) {
              listeners.delete(check);
              clearTimeout(timer);
              resolve(m);
              return;
            }
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`timed out waiting for ${pattern}; output:\n${output.slice(-20).join("\n")}`));
        }, ms);
        listeners.add(check);
        check();
      });
    },
    stop(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise((resolve) => {
        const force = setTimeout(() => child.kill("SIGKILL"), 8000);
        child.once("exit", () => {
          clearTimeout(force);
          resolve();
        });
        child.kill(signal);
      });
    },
  };
}

/** Pino lines of a process's output with the given message. */
export function logLines(p: Proc, msg: string): Record<string, unknown>[] {
  return p.output.flatMap((line) => {
    if (!line.startsWith("{")) return [];
    try {
      const json = JSON.parse(line) as Record<string, unknown>;
      return json.msg === msg ? [json] : [];
    } catch {
      return [];
    }
  });
}

/** A Postgres schema for one test file, and the URL that points processes at it. */
export async function pgSchema(name: string) {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  await client.query(`CREATE SCHEMA IF NOT EXISTS ${name}`);
  await client.end();
  return {
    url: `${PG_URL}?options=${encodeURIComponent(`-c search_path=${name}`)}`,
    async drop() {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
      await c.end();
    },
  };
}

export const redisServerBinary = findBinary("redis-server");

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });

/** A port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A redis-server of the test's own on `port`, without persistence (as Redis often runs), to kill and restart. */
export function redisServer(port: number) {
  let child: ChildProcess | undefined;
  return {
    url: `redis://127.0.0.1:${port}`,
    async start() {
      child = spawn(
        redisServerBinary!,
        ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        { stdio: "ignore" },
      );
      const end = Date.now() + 10_000;
      while (!(await listening(port))) {
        if (Date.now() > end) throw new Error(`redis-server on ${port} did not come up`);
        await sleep(50);
      }
    },
    async kill() {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        c.once("exit", () => resolve());
        c.kill("SIGKILL");
      });
    },
  };
}
