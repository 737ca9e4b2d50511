/**
 * A Postgres server of the test's own (initdb into a temporary folder, a free port, trust auth), to
 * stop and start again: the outage tests never touch the shared one. Run as the `postgres` user
 * when the tests run as root (Postgres refuses to run as root).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";

const BIN = "/usr/lib/postgresql/15/bin";

export const ownPostgresAvailable = existsSync(join(BIN, "initdb"));

/** A command line run as the postgres user when this process is root. */
function asPostgres(cmd: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args];
}

function run(cmd: string, args: string[]): void {
  const [c, a] = asPostgres(cmd, args);
  const r = spawnSync(c, a, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr || r.stdout}`);
}

export interface OwnPostgres {
  port: number;
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  start(): Promise<void>;
  /** Stops at once (fast shutdown: sessions are cut, new connections refused). */
  stop(): Promise<void>;
  /** Stops and removes its data folder. */
  destroy(): Promise<void>;
}

export async function ownPostgres(port: number): Promise<OwnPostgres> {
  const dir = mkdtempSync(join(tmpdir(), "tgz-own-pg-"));
  const data = join(dir, "data");
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    chownSync(dir, uid, gid);
  }
  run(join(BIN, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const ready = async () => {
    const end = Date.now() + 20_000;
    for (;;) {
      const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
      try {
        await c.connect();
        await c.end();
        return;
      } catch (err) {
        await c.end().catch(() => undefined);
        if (Date.now() > end) throw err;
        await sleep(100);
      }
    }
  };
  const self: OwnPostgres = {
    port,
    url,
    async start() {
      run(join(BIN, "pg_ctl"), [
        "-D",
        data,
        "-l",
        join(dir, "log"),
        "-o",
        `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off`,
        "start",
      ]);
      await ready();
    },
    async stop() {
      run(join(BIN, "pg_ctl"), ["-D", data, "-m", "fast", "-w", "stop"]);
    },
    async destroy() {
      if (existsSync(join(data, "postmaster.pid"))) await self.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return self;
}
