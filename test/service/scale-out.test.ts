/**
 * Scale-out with real processes on Postgres + Redis: a server and two workers share three protocols
 * under an engine cap of 1; a worker killed with SIGKILL mid-step loses its job to another after the
 * lease; the server restarts while runs go on.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gitRepo } from "../scenario/harness.js";
import { PG_URL, postgresReachable } from "../store/store-backends.js";
import { type Proc, tgzProcess } from "./process-harness.js";

const pgUp = await postgresReachable();
const REDIS_URL = process.env.TASKSGODZILLA_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
if (process.env.CI === "true" && !pgUp) throw new Error("Postgres is required in CI");

describe.skipIf(!pgUp)("server and workers on Postgres + Redis", () => {
  const schema = `scale_${process.pid}_${Date.now()}`;
  const procs: Proc[] = [];
  let env: NodeJS.ProcessEnv;
  let base = "";
  const TOKEN = "scale-token";

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { "content-type": "application/json" } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return (await res.json()) as any;
  };
  const start = (args: string[], extra: NodeJS.ProcessEnv = {}) => {
    const p = tgzProcess(args, { ...env, ...extra });
    procs.push(p);
    return p;
  };
  const startServer = async () => {
    const server = start(["server", "--port", "0"]);
    base = (await server.waitFor(/API on (http:\/\/\S+)/))[1]!;
    return server;
  };
  const waitStatus = async (runId: number, status: string, ms = 60_000) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if ((await api("GET", `/protocols/${runId}`)).status === status) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    const tails = procs.map((p) => p.output.slice(-8).join("\n")).join("\n---\n");
    throw new Error(
      `run ${runId} never became ${status}: ${(await api("GET", `/protocols/${runId}`)).status}\n${tails}`,
    );
  };

  beforeAll(async () => {
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    await client.query(`CREATE SCHEMA ${schema}`);
    await client.end();
    env = {
      TASKSGODZILLA_DB_URL: `${PG_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`,
      TASKSGODZILLA_REDIS_URL: REDIS_URL,
      TASKSGODZILLA_QUEUE_PREFIX: `tgz-scale-${randomUUID()}`,
      TASKSGODZILLA_API_TOKEN: TOKEN,
      TASKSGODZILLA_ENGINE_CONCURRENCY: "shell=1",
    };
  });
  afterAll(async () => {
    for (const p of procs) await p.stop("SIGKILL");
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });

  it("runs three protocols on two workers with at most one shell call at a time, across a server restart", {
    timeout: 120_000,
  }, async () => {
    let server = await startServer();
    const workers = [start(["worker", "--lease-seconds", "5"]), start(["worker", "--lease-seconds", "5"])];
    await Promise.all(workers.map((w) => w.waitFor(/worker started/)));
    const repo = gitRepo();
    const log = join(repo, "calls.log");
    const project = await api("POST", "/projects", { name: "scale", git_url: repo, local_path: repo });
    const step = (id: string) => ({
      id,
      engine_id: "shell",
      qa: { policy: "skip" },
      inputs: {
        command: `echo "start $(date +%s%N)" >> ${log}; sleep 0.4; echo "end $(date +%s%N)" >> ${log}`,
      },
    });
    const runs = [];
    for (let i = 0; i < 3; i++)
      runs.push(
        await api("POST", `/projects/${project.id}/protocols`, {
          protocol_name: `p${i}`,
          spec: { steps: [step("a"), step("b")] },
        }),
      );
    for (const r of runs) await api("POST", `/protocols/${r.id}/actions/start`);
    // the server goes away and comes back while the workers keep going
    await server.stop();
    server = await startServer();
    for (const r of runs) await waitStatus(r.id, "completed");
    const lines = readFileSync(log, "utf8").trim().split("\n");
    expect(lines).toHaveLength(12);
    // with a cap of one, every start is followed by its own end before the next start
    expect(lines.map((l) => l.split(" ")[0])).toEqual(
      Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? "start" : "end")),
    );
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/tasksgodzilla_step_duration_seconds_count 6/);
    const jobsByWorker = workers.map((w) => w.output.filter((l) => l.includes('"job started"')).length);
    expect(jobsByWorker.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(3);
    for (const w of workers) await w.stop();
  });

  it("hands the step of a worker killed with SIGKILL to another worker after its lease", {
    timeout: 120_000,
  }, async () => {
    if (!base) await startServer();
    const victim = start(["worker", "--lease-seconds", "3"]);
    await victim.waitFor(/worker started/);
    const repo = gitRepo();
    const project = await api("POST", "/projects", { name: "crash", git_url: repo, local_path: repo });
    const run = await api("POST", `/projects/${project.id}/protocols`, {
      protocol_name: "crash",
      spec: {
        steps: [
          {
            id: "slow",
            engine_id: "shell",
            qa: { policy: "skip" },
            inputs: { command: "sleep 2; echo slow >> out.txt" },
          },
          {
            id: "after",
            engine_id: "shell",
            qa: { policy: "skip" },
            inputs: { command: "echo after >> out.txt" },
          },
        ],
      },
    });
    await api("POST", `/protocols/${run.id}/actions/start`);
    await victim.waitFor(/"job started"/);
    const end = Date.now() + 10_000;
    while (
      Date.now() < end &&
      !(await api("GET", `/protocols/${run.id}/events?event_type=step_started`)).events.length
    )
      await new Promise((r) => setTimeout(r, 100));
    await victim.stop("SIGKILL");
    const rescuer = start(["worker", "--lease-seconds", "3"]);
    await waitStatus(run.id, "completed", 60_000);
    const events = (await api("GET", `/protocols/${run.id}/events?after=0&limit=1000`)).events as {
      event_type: string;
      message: string;
    }[];
    const types = events.map((e) => e.event_type);
    expect(types.filter((t) => t === "step_recovered")).toHaveLength(1);
    expect(types.filter((t) => t === "protocol_completed")).toHaveLength(1);
    expect(types.filter((t) => t === "step_started")).toHaveLength(3);
    expect(rescuer.output.some((l) => l.includes('"job completed"'))).toBe(true);
  });
});
