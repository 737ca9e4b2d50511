/**
 * The embedded default, one `tgz server` on SQLite with its worker inside: stopped (SIGTERM) while a
 * step runs, it hands the job back, so the restarted server continues the run at once instead of
 * waiting for the job's 30 s lease; the interrupted step runs again, the run is never paused.
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { gitRepo } from "../scenario/harness.js";
import { type Proc, tgzProcess } from "./process-harness.js";
import { until } from "./worker-setup.js";

const procs: Proc[] = [];
afterAll(async () => {
  for (const p of procs) await p.stop("SIGKILL");
});

describe("an embedded server restarted while a step runs", () => {
  it("continues the run within seconds, running the interrupted step again", {
    timeout: 60_000,
  }, async () => {
    const env = { TASKSGODZILLA_DB_PATH: join(mkdtempSync(join(tmpdir(), "tgz-embedded-")), "tgz.db") };
    let base = "";
    const startServer = async () => {
      const p = tgzProcess(["server", "--port", "0"], env);
      procs.push(p);
      base = (await p.waitFor(/API on (http:\/\/\S+)/))[1]!;
      return p;
    };
    const api = async (method: string, path: string, body?: unknown) =>
      (await (
        await fetch(`${base}${path}`, {
          method,
          ...(body ? { headers: { "content-type": "application/json" }, body: JSON.stringify(body) } : {}),
        })
      ).json()) as any;
    const server = await startServer();
    const repo = gitRepo();
    const log = join(repo, "steps.log");
    const lines = () => (existsSync(log) ? readFileSync(log, "utf8").trim().split("\n") : []);
    const project = await api("POST", "/projects", { name: "embedded", git_url: repo, local_path: repo });
    const shell = (id: string, command: string) => ({
      id,
      engine_id: "shell",
      qa: { policy: "skip" },
      inputs: { command },
    });
    const run = await api("POST", `/projects/${project.id}/protocols`, {
      protocol_name: "restart",
      spec: {
        steps: [
          shell("a", `echo start-a >> ${log}; sleep 3; echo end-a >> ${log}`),
          shell("b", `echo b >> ${log}`),
        ],
      },
    });
    await api("POST", `/protocols/${run.id}/actions/start`);
    await until(() => lines().includes("start-a"), 20_000, "step a started");
    await server.stop("SIGTERM");
    const restarted = Date.now();
    await startServer();
    await until(
      async () => (await api("GET", `/protocols/${run.id}`)).status === "completed",
      20_000,
      "run completed",
    );
    // well inside the 30 s lease a job left active would hold
    expect(Date.now() - restarted).toBeLessThan(15_000);
    expect(lines()).toEqual(["start-a", "start-a", "end-a", "b"]);
    const types = (
      (await api("GET", `/protocols/${run.id}/events?after=0&limit=1000`)) as { event_type: string }[]
    ).map((e) => e.event_type);
    expect(types.filter((t) => t === "step_interrupted")).toHaveLength(1);
    expect(types).not.toContain("paused");
    expect(types.filter((t) => t === "protocol_completed")).toHaveLength(1);
  });
});
