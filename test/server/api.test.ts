/** The HTTP API over real HTTP on a real SQLite store and the embedded queue. */
import { execFile } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import { StoreQueue } from "../../src/queue/store-queue.js";
import { buildServer } from "../../src/server/build-server.js";
import { ROUTES } from "../../src/server/server-context.js";
import type { KyselyStore } from "../../src/store/kysely-store.js";
import { openStore } from "../../src/store/open-store.js";
import { jobHandlers } from "../../src/worker/job-handlers.js";
import { JobWorker } from "../../src/worker/job-worker.js";
import { gitRepo } from "../scenario/harness.js";
import { waitGone } from "../support/processes.js";

const TOKEN = "api-secret-token";
const HOOK = "hook-secret";
let store: KyselyStore;
let queue: StoreQueue;
let app: FastifyInstance;
let base: string;

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, body: json, headers: res.headers };
}

const shellSpec = (...commands: string[]) => ({
  steps: commands.map((c, i) => ({
    id: `s${i}`,
    engine_id: "shell",
    inputs: { command: c },
    // the last step is checked, so QA shows up in events and metrics
    qa: { policy: i === commands.length - 1 ? "light" : "skip" },
  })),
});

async function newRun(commands = ["echo one", "echo two"]) {
  const project = (
    await call("POST", "/projects", {
      name: "demo",
      git_url: "local",
      local_path: gitRepo(),
      secrets: { api_token: "do-not-leak" },
    })
  ).body;
  const run = (
    await call("POST", `/projects/${project.id}/protocols`, {
      protocol_name: "demo",
      spec: shellSpec(...commands),
    })
  ).body;
  return { project, run };
}

function newWorker(workerId: string): JobWorker {
  const deps = { store, registry: createDefaultRegistry(), configFor: (d: string) => loadConfig(d, {}) };
  return new JobWorker({ queue, handlers: jobHandlers(deps), workerId, pollMs: 50 });
}

async function drainQueue() {
  const worker = newWorker("test");
  worker.start();
  for (let i = 0; i < 200 && ((await queue.counts()).waiting > 0 || (await queue.counts()).active > 0); i++)
    await new Promise((r) => setTimeout(r, 50));
  await worker.stop();
}

beforeAll(async () => {
  store = await openStore({ sqlitePath: join(mkdtempSync(join(tmpdir(), "tgz-api-")), "db.sqlite") });
  queue = new StoreQueue(store.kysely, store.dialect);
  app = buildServer({
    store,
    queue,
    configFor: (d) => loadConfig(d, {}),
    apiToken: TOKEN,
    webhookToken: HOOK,
    ciActions: { onSuccess: "run", onFailure: "block" },
  });
  base = await app.listen({ host: "127.0.0.1", port: 0 });
});
afterAll(async () => {
  await app.close();
  await store.close();
});

describe("HTTP API", () => {
  it("requires the bearer token except on health, metrics, docs and webhooks", async () => {
    expect((await call("GET", "/health", undefined, { authorization: "" })).body).toEqual({ status: "ok" });
    expect((await call("GET", "/projects", undefined, { authorization: "" })).status).toBe(401);
    expect((await call("GET", "/projects", undefined, { authorization: "Bearer wrong" })).body).toMatchObject(
      { error: "unauthorized" },
    );
    expect((await call("GET", "/projects")).status).toBe(200);
    expect((await call("GET", "/openapi.json", undefined, { authorization: "" })).status).toBe(200);
    const r = await call("GET", "/projects", undefined, { "x-request-id": "req-42" });
    expect(r.headers.get("x-request-id")).toBe("req-42");
  });

  it("creates projects and runs, never returns secrets, and names what is missing or wrong", async () => {
    const { project, run } = await newRun();
    expect(project).toMatchObject({ name: "demo", base_branch: "main" });
    expect(JSON.stringify(await call("GET", "/projects"))).not.toContain("do-not-leak");
    expect(run).toMatchObject({
      status: "planned",
      protocol_name: expect.stringMatching(/^\d{4}-demo$/),
      spec_hash: expect.stringMatching(/^[0-9a-f]{12}$/),
      spec_validation_status: "valid",
    });
    expect(
      (await call("GET", `/protocols/${run.id}/steps`)).body.map((s: { step_name: string }) => s.step_name),
    ).toEqual(["s0", "s1"]);
    expect((await call("GET", `/protocols/${run.id}/spec`)).body).toMatchObject({
      spec_hash: run.spec_hash,
      validation_status: "valid",
      validation_errors: [],
    });
    expect(await call("GET", "/protocols/99999")).toMatchObject({
      status: 404,
      body: { error: "not_found", detail: "protocol run 99999 not found" },
    });
    expect(await call("GET", "/nope")).toMatchObject({ status: 404 });
    expect((await call("POST", "/projects", { git_url: "x" })).body).toMatchObject({
      error: "invalid_request",
      detail: expect.stringMatching(/^name: /),
    });
    expect((await call("POST", "/projects", "{broken")).status).toBe(400);
    const invalid = await call("POST", `/projects/${project.id}/protocols`, {
      protocol_name: "bad",
      spec: { steps: [] },
    });
    expect(invalid.body).toMatchObject({ status: "blocked", spec_validation_status: "invalid" });
  });

  it("queues a run once, executes it on a worker, and refuses illegal moves with 409", async () => {
    const { run } = await newRun();
    const first = await call("POST", `/protocols/${run.id}/actions/start`);
    const again = await call("POST", `/protocols/${run.id}/actions/start`);
    expect(again.body.job).toEqual({ id: first.body.job.id, deduplicated: true });
    expect((await call("POST", `/protocols/${run.id}/actions/pause`)).status).toBe(409);
    expect((await call("POST", `/protocols/${run.id}/actions/explode`)).status).toBe(400);
    await drainQueue();
    expect((await call("GET", `/protocols/${run.id}`)).body.status).toBe("completed");
    expect((await call("POST", `/protocols/${run.id}/actions/start`)).status).toBe(409);
    expect((await call("POST", `/protocols/${run.id}/actions/run_next_step`)).status).toBe(404);
    const other = (await newRun()).run;
    expect((await call("POST", `/protocols/${other.id}/actions/cancel`)).body.protocol.status).toBe(
      "cancelled",
    );
    expect((await call("POST", `/protocols/${other.id}/actions/cancel`)).status).toBe(200);
  });

  it("stops the engine call under way when the run is paused through the API", async () => {
    const pidFile = join(mkdtempSync(join(tmpdir(), "tgz-pause-")), "pid");
    const { run } = await newRun([`sleep 30 & echo $! > ${pidFile}; wait`, "echo after"]);
    await call("POST", `/protocols/${run.id}/actions/start`);
    const worker = newWorker("pauser");
    worker.start();
    const until = async (check: () => Promise<boolean>) => {
      for (let i = 0; i < 100 && !(await check()); i++) await new Promise((r) => setTimeout(r, 100));
    };
    await until(async () => existsSync(pidFile));
    const started = Date.now();
    expect((await call("POST", `/protocols/${run.id}/actions/pause`)).body.protocol.status).toBe("paused");
    await until(
      async () =>
        (await call("GET", `/protocols/${run.id}/events?event_type=step_interrupted`)).body.events.length > 0,
    );
    expect(Date.now() - started).toBeLessThan(8000);
    expect(await waitGone(Number(readFileSync(pidFile, "utf8")))).toBe(true);
    expect(
      (await call("GET", `/protocols/${run.id}/steps`)).body.map((s: { status: string }) => s.status),
    ).toEqual(["pending", "pending"]);
    await worker.stop();
    expect((await call("GET", `/protocols/${run.id}`)).body.status).toBe("paused");
  });

  it("retries a failed step and lets a step be approved", async () => {
    const { run } = await newRun(["exit 3", "echo after"]);
    await call("POST", `/protocols/${run.id}/actions/start`);
    await drainQueue();
    const steps = (await call("GET", `/protocols/${run.id}/steps`)).body;
    expect(steps.map((s: { status: string }) => s.status)).toEqual(["failed", "pending"]);
    expect((await call("POST", `/protocols/${run.id}/actions/retry_latest`)).body.job.deduplicated).toBe(
      false,
    );
    await drainQueue();
    const approved = await call("POST", `/steps/${steps[0].id}/actions/approve`);
    expect(approved.body.step.status).toBe("completed");
    expect((await call("POST", `/steps/${steps[1].id}/actions/run`)).status).toBe(200);
    await drainQueue();
    expect((await call("GET", `/protocols/${run.id}`)).body.status).toBe("completed");
  });

  it("pages events newest first, or after a cursor oldest first", async () => {
    const { run } = await newRun();
    await call("POST", `/protocols/${run.id}/actions/start`);
    await drainQueue();
    const newest = (await call("GET", `/protocols/${run.id}/events?limit=3`)).body;
    expect(newest.events.map((e: { event_type: string }) => e.event_type)[0]).toBe("protocol_completed");
    const all = (await call("GET", `/protocols/${run.id}/events?after=0&limit=1000`)).body.events;
    const page = (await call("GET", `/protocols/${run.id}/events?after=${all[2].id}&limit=2`)).body;
    expect(page.events.map((e: { id: number }) => e.id)).toEqual([all[3].id, all[4].id]);
    expect(page.next_after).toBe(all[4].id);
    expect(
      (await call("GET", `/events?event_type=protocol_completed&project_id=${run.project_id}`)).body.events
        .length,
    ).toBeGreaterThan(0);
  });

  it("streams events over SSE and resumes after Last-Event-ID with nothing lost or repeated", async () => {
    const { run } = await newRun();
    const read = async (headers: Record<string, string>, count: number) => {
      const controller = new AbortController();
      const res = await fetch(`${base}/protocols/${run.id}/events/stream`, {
        headers: { authorization: `Bearer ${TOKEN}`, ...headers },
        signal: controller.signal,
      });
      const reader = res.body!.getReader();
      const ids: number[] = [];
      let buffer = "";
      while (ids.length < count) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += new TextDecoder().decode(value);
        for (const m of buffer.matchAll(/^id: (\d+)$/gm))
          if (!ids.includes(Number(m[1]))) ids.push(Number(m[1]));
      }
      controller.abort();
      return ids.slice(0, count);
    };
    const before = (await call("GET", `/protocols/${run.id}/events?after=0&limit=1000`)).body.events.map(
      (e: { id: number }) => e.id,
    );
    const firstTwo = await read({}, 2);
    expect(firstTwo).toEqual(before.slice(0, 2));
    for (let i = 0; i < 3; i++)
      await store.appendEvent({ protocolRunId: run.id, eventType: "note", message: `n${i}` });
    const all = (await call("GET", `/protocols/${run.id}/events?after=0&limit=1000`)).body.events.map(
      (e: { id: number }) => e.id,
    );
    const rest = await read({ "last-event-id": String(firstTwo[1]) }, all.length - 2);
    expect(rest).toEqual(all.slice(2));
  });

  it("verifies webhook signatures without the bearer token, records CI results and blocks on failure", async () => {
    const { run } = await newRun();
    const payload = JSON.stringify({
      workflow_run: { head_branch: run.protocol_name, conclusion: "failure" },
    });
    const sign = (body: string) => `sha256=${createHmac("sha256", HOOK).update(body).digest("hex")}`;
    const bad = await call("POST", "/webhooks/github", payload, {
      authorization: "",
      "x-github-event": "workflow_run",
      "x-hub-signature-256": sign("other"),
    });
    expect(bad.status).toBe(401);
    expect((await call("GET", `/protocols/${run.id}/events?event_type=ci_webhook`)).body.events).toEqual([]);
    const good = await call("POST", "/webhooks/github", payload, {
      authorization: "",
      "x-github-event": "workflow_run",
      "x-hub-signature-256": sign(payload),
    });
    expect(good.body).toEqual({ protocol_run_id: run.id, outcome: "failure", action: "blocked" });
    expect((await call("GET", `/protocols/${run.id}`)).body.status).toBe("blocked");
    const gitlab = JSON.stringify({
      object_kind: "pipeline",
      object_attributes: { status: "success", ref: run.protocol_name },
    });
    expect(
      (await call("POST", "/webhooks/gitlab", gitlab, { authorization: "", "x-gitlab-token": "wrong" }))
        .status,
    ).toBe(401);
    expect(
      (await call("POST", "/webhooks/gitlab", gitlab, { authorization: "", "x-gitlab-token": HOOK })).body,
    ).toMatchObject({ outcome: "success", action: "run_queued" });
    expect(
      (
        await call("POST", "/webhooks/github?protocol_run_id=99999", payload, {
          authorization: "",
          "x-github-event": "workflow_run",
          "x-hub-signature-256": sign(payload),
        })
      ).status,
    ).toBe(404);
    const metrics = (await call("GET", "/metrics")).body as string;
    expect(metrics).toMatch(/tasksgodzilla_webhooks_total\{provider="github",status="unauthorized"\} 1/);
    expect(metrics).toMatch(/tasksgodzilla_protocol_runs\{status="blocked"\}/);
    expect(metrics).toMatch(/tasksgodzilla_queue_jobs\{state="waiting"\}/);
    expect(metrics).toMatch(/tasksgodzilla_tokens_total\{engine="shell"/);
    expect(metrics).toMatch(/tasksgodzilla_step_duration_seconds_count [1-9]/);
    expect(metrics).toMatch(/tasksgodzilla_qa_duration_seconds_count [1-9]/);
    await drainQueue();
  });

  it("takes CI results from scripts/ci-report.sh, signed for GitHub and with the token for GitLab", async () => {
    const { run } = await newRun();
    const script = join(import.meta.dirname, "../../scripts/ci-report.sh");
    const report = (state: string, env: Record<string, string>) =>
      promisify(execFile)("bash", [script, state], {
        env: {
          ...process.env,
          TASKSGODZILLA_API_BASE: base,
          TASKSGODZILLA_WEBHOOK_TOKEN: HOOK,
          TASKSGODZILLA_BRANCH: run.protocol_name,
          ...env,
        },
      });
    expect(JSON.parse((await report("running", {})).stdout)).toMatchObject({
      protocol_run_id: run.id,
      outcome: "running",
    });
    expect(
      JSON.parse((await report("success", { TASKSGODZILLA_CI_PROVIDER: "gitlab" })).stdout),
    ).toMatchObject({ outcome: "success" });
    await expect(report("failure", { TASKSGODZILLA_WEBHOOK_TOKEN: "wrong" })).rejects.toThrow();
    expect((await call("GET", `/protocols/${run.id}/events?event_type=ci_webhook`)).body.events).toHaveLength(
      2,
    );
    await drainQueue();
  });

  it("refuses unsigned webhooks when no secret is configured", async () => {
    const open = buildServer({ store, queue, configFor: (d) => loadConfig(d, {}) });
    const url = await open.listen({ host: "127.0.0.1", port: 0 });
    const res = await fetch(`${url}/webhooks/gitlab`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({
      detail: expect.stringMatching(/TASKSGODZILLA_WEBHOOK_TOKEN is not set/),
    });
    await open.close();
  });

  it("queues audits and imports, lists jobs, and documents every route in OpenAPI", async () => {
    const { project, run } = await newRun();
    expect((await call("POST", "/specs/audit", { protocol_id: run.id })).body.job.id).toEqual(
      expect.any(String),
    );
    expect(
      (await call("POST", `/projects/${project.id}/codemachine/import`, { path: "/nowhere" })).body.message,
    ).toBe("import queued");
    expect((await call("GET", "/queues")).body.counts.waiting).toBeGreaterThanOrEqual(2);
    expect(
      (await call("GET", "/queues/jobs?status=waiting")).body.map((j: { kind: string }) => j.kind),
    ).toEqual(expect.arrayContaining(["spec_audit", "import"]));
    await drainQueue();
    expect((await call("GET", `/protocols/${run.id}/events?event_type=spec_audit`)).body.events).toHaveLength(
      1,
    );
    const doc = (await call("GET", "/openapi.json")).body;
    for (const r of ROUTES)
      expect(doc.paths[r.url]?.[r.method.toLowerCase()], `${r.method} ${r.url}`).toBeDefined();
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/protocols/{id}/actions/{action}", "/webhooks/github", "/events/stream"]),
    );
  });
});
