/**
 * `tgz server` as a real process: it refuses a non-loopback host without a token, writes only JSON
 * log lines, and never writes a token or secret into them — whatever the requests carry.
 */
import { createHmac } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { gitRepo } from "../scenario/harness.js";
import { type Proc, tgzProcess } from "../service/process-harness.js";

const API_TOKEN = "bearer-7f3a9c-never-logged";
const WEBHOOK_TOKEN = "webhook-51b2e0-never-logged";
const PROJECT_TOKEN = "project-c88d41-never-logged";
const SECRET = "deploy-key-02f6aa-never-logged";

const procs: Proc[] = [];
afterAll(async () => {
  for (const p of procs) await p.stop("SIGKILL");
});

const env = (extra: NodeJS.ProcessEnv = {}) => ({
  TASKSGODZILLA_DATA_DIR: mkdtempSync(join(tmpdir(), "tgz-server-")),
  TASKSGODZILLA_REDIS_URL: "",
  TASKSGODZILLA_DB_URL: "",
  TASKSGODZILLA_API_TOKEN: "",
  ...extra,
});

/** Runs tgz to its exit: the code and everything it wrote. */
async function exited(args: string[]): Promise<{ code: number | null; output: string }> {
  const p = tgzProcess(args, env());
  procs.push(p);
  if (p.child.exitCode === null) await new Promise((resolve) => p.child.once("exit", resolve));
  // the streams' last data arrive with or just after the exit
  await new Promise((resolve) => setTimeout(resolve, 50));
  return { code: p.child.exitCode, output: p.output.join("\n") };
}

describe("tgz worker and tgz server flags", () => {
  it("refuse what is not a usable number, naming the flag, with a non-zero exit", {
    timeout: 60_000,
  }, async () => {
    for (const [args, message] of [
      [["worker", "--concurrency", "abc"], '--concurrency must be a whole number of at least 1, got "abc"'],
      [["worker", "--concurrency", "0"], '--concurrency must be a whole number of at least 1, got "0"'],
      [["worker", "--concurrency", "1.5"], "--concurrency must be a whole number"],
      [["worker", "--lease-seconds", "0"], '--lease-seconds must be a whole number of at least 1, got "0"'],
      [["worker", "--lease-seconds", "abc"], "--lease-seconds must be a whole number"],
      [["server", "--port", "abc"], '--port must be a whole number from 0 to 65535, got "abc"'],
      [["server", "--port", "70000"], "--port must be a whole number from 0 to 65535"],
    ] as const) {
      const { code, output } = await exited([...args]);
      expect(code, args.join(" ")).toBe(2);
      expect(output, args.join(" ")).toContain(message);
    }
  });
});

describe("tgz server", () => {
  it("refuses to listen beyond loopback without TASKSGODZILLA_API_TOKEN", async () => {
    const server = tgzProcess(["server", "--host", "0.0.0.0", "--port", "0"], env());
    procs.push(server);
    await server.waitFor(/refusing to listen on 0\.0\.0\.0 without TASKSGODZILLA_API_TOKEN/);
    await new Promise<void>((resolve) => {
      if (server.child.exitCode !== null) resolve();
      else server.child.once("exit", () => resolve());
    });
    expect(server.child.exitCode).not.toBe(0);
  });

  it("counts the jobs its own worker finishes in /metrics", { timeout: 60_000 }, async () => {
    const server = tgzProcess(["server", "--port", "0"], env());
    procs.push(server);
    const base = (await server.waitFor(/API on (http:\/\/\S+)/))[1]!;
    const post = async (path: string, body?: unknown) =>
      (
        await fetch(`${base}${path}`, {
          method: "POST",
          ...(body ? { headers: { "content-type": "application/json" }, body: JSON.stringify(body) } : {}),
        })
      ).json() as Promise<{ id: number }>;
    const repo = gitRepo();
    const project = await post("/projects", { name: "p", git_url: repo, local_path: repo });
    const run = await post(`/projects/${project.id}/protocols`, {
      protocol_name: "m",
      spec: { steps: [{ id: "a", engine_id: "shell", inputs: { command: "true" }, qa: { policy: "skip" } }] },
    });
    await post(`/protocols/${run.id}/actions/start`);
    const series = 'jobs_processed_total{job_type="execute_protocol",status="completed"} 1';
    const end = Date.now() + 30_000;
    let metrics = "";
    while (!metrics.includes(series) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      metrics = await (await fetch(`${base}/metrics`)).text();
    }
    expect(metrics).toContain(series);
    expect(metrics).toContain(
      'jobs_duration_seconds_count{job_type="execute_protocol",status="completed"} 1',
    );
    await server.stop("SIGTERM");
  });

  it("logs JSON lines only, and no token or secret, whatever the requests carry", {
    timeout: 60_000,
  }, async () => {
    const server = tgzProcess(
      ["server", "--port", "0"],
      env({ TASKSGODZILLA_API_TOKEN: API_TOKEN, TASKSGODZILLA_WEBHOOK_TOKEN: WEBHOOK_TOKEN }),
    );
    procs.push(server);
    const base = (await server.waitFor(/API on (http:\/\/\S+)/))[1]!;
    const call = (path: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
      fetch(`${base}${path}`, {
        ...init,
        headers: {
          authorization: `Bearer ${API_TOKEN}`,
          "content-type": "application/json",
          ...init.headers,
        },
      });
    const repo = gitRepo();
    const project = await (
      await call("/projects", {
        method: "POST",
        body: JSON.stringify({
          name: "p",
          git_url: repo,
          local_path: repo,
          secrets: { api_token: PROJECT_TOKEN, deploy_key: SECRET },
        }),
      })
    ).json();
    expect(JSON.stringify(project)).not.toContain(SECRET);
    expect(
      (await call(`/projects/${project.id}`, { headers: { "x-project-token": PROJECT_TOKEN } })).status,
    ).toBe(200);
    expect(
      (await call(`/projects/${project.id}`, { headers: { "x-project-token": `${PROJECT_TOKEN}x` } })).status,
    ).toBe(403);
    expect(
      (await call("/projects", { headers: { authorization: `Bearer ${API_TOKEN}-wrong` } })).status,
    ).toBe(401);
    const body = JSON.stringify({ state: "success", branches: [{ name: "nope" }] });
    const sig = `sha256=${createHmac("sha256", WEBHOOK_TOKEN).update(body).digest("hex")}`;
    expect(
      (
        await call("/webhooks/github", {
          method: "POST",
          body,
          headers: { "x-github-event": "status", "x-hub-signature-256": sig },
        })
      ).status,
    ).toBe(404);
    expect(
      (
        await call("/webhooks/gitlab", {
          method: "POST",
          body: "{}",
          headers: { "x-gitlab-token": WEBHOOK_TOKEN },
        })
      ).status,
    ).toBe(404);
    expect((await call("/projects", { method: "POST", body: "{broken" })).status).toBe(400);
    await server.stop("SIGTERM");

    expect(server.output.length).toBeGreaterThan(5);
    for (const line of server.output) expect(() => JSON.parse(line), line).not.toThrow();
    const log = server.output.join("\n");
    expect(log).toContain("TasksGodzilla API on");
    expect(log).toContain('"statusCode":403');
    for (const secret of [API_TOKEN, WEBHOOK_TOKEN, PROJECT_TOKEN, SECRET, sig])
      expect(log).not.toContain(secret);
  });
});
