/** The HTTP API over real HTTP on a real SQLite store and the embedded queue, with real workers. */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import type { EventType } from "../../src/store/event-types.js";
import { RunReconciler } from "../../src/worker/run-reconciler.js";
import { gitRepo } from "../scenario/harness.js";
import { rawDb } from "../store/raw-db.js";
import { waitGone } from "../support/processes.js";
import { type Api, shellSpec, startApi, TOKEN, until } from "./api-harness.js";

let api: Api;
const call: Api["call"] = (...args) => api.call(...args);

beforeAll(async () => {
  api = await startApi();
});
afterAll(async () => {
  await api.close();
});

/** What an action could have changed: the run, its steps and its events. */
async function snapshot(runId: number) {
  return {
    run: (await call("GET", `/protocols/${runId}`)).body.status,
    steps: (await call("GET", `/protocols/${runId}/steps`)).body.map(
      (s: { status: string; retries: number }) => [s.status, s.retries],
    ),
    events: (await call("GET", `/protocols/${runId}/events?after=0`)).body.length,
    jobs: (await call("GET", "/queues/jobs?limit=500")).body.length,
  };
}

const stepsOf = async (runId: number) => (await call("GET", `/protocols/${runId}/steps`)).body;
const statuses = async (runId: number) => (await stepsOf(runId)).map((s: { status: string }) => s.status);
const eventCount = async (runId: number, type: EventType) =>
  (await call("GET", `/protocols/${runId}/events?after=0&event_type=${type}`)).body.length;
const queued = async (kind: string) =>
  (await call("GET", "/queues/jobs?status=queued")).body.filter((j: { kind: string }) => j.kind === kind);

/** The events an SSE stream sends from the start until it has been quiet for a moment. */
async function sseEvents(url: string, headers: Record<string, string> = {}) {
  const ctl = new AbortController();
  const res = await fetch(url, {
    headers: { authorization: `Bearer ${TOKEN}`, ...headers },
    signal: ctl.signal,
  });
  const reader = res.body!.getReader();
  let text = "";
  for (;;) {
    const quiet = new Promise<undefined>((r) => setTimeout(() => r(undefined), 600));
    const chunk = await Promise.race([reader.read(), quiet]);
    if (!chunk || chunk.done) break;
    text += new TextDecoder().decode(chunk.value);
  }
  ctl.abort();
  return [...text.matchAll(/^data: (.+)$/gm)].map((m) => JSON.parse(m[1]!));
}

describe("auth and errors", () => {
  it("requires the bearer token except on health, metrics, docs and webhooks", async () => {
    expect((await call("GET", "/health", undefined, { authorization: "" })).body).toEqual({ status: "ok" });
    expect((await call("GET", "/projects", undefined, { authorization: "" })).status).toBe(401);
    expect((await call("GET", "/projects", undefined, { authorization: "Bearer wrong" })).body).toMatchObject(
      {
        error: "unauthorized",
      },
    );
    expect((await call("GET", "/projects")).status).toBe(200);
    for (const open of ["/openapi.json", "/docs", "/metrics"])
      expect((await call("GET", open, undefined, { authorization: "" })).status, open).toBe(200);
    const r = await call("GET", "/projects", undefined, { "x-request-id": "req-42" });
    expect(r.headers.get("x-request-id")).toBe("req-42");
  });

  it("names what is missing or wrong: 404s, 400s for fields and parameters, 413 for big bodies", async () => {
    expect(await call("GET", "/protocols/99999")).toMatchObject({
      status: 404,
      body: { error: "not_found", detail: "protocol run 99999 not found" },
    });
    expect(await call("GET", "/protocols/abc")).toMatchObject({
      status: 400,
      body: { error: "invalid_request", detail: expect.stringMatching(/^id: /) },
    });
    expect(await call("GET", "/nope")).toMatchObject({ status: 404 });
    expect((await call("POST", "/projects", { git_url: "x" })).body).toMatchObject({
      error: "invalid_request",
      detail: expect.stringMatching(/^name: /),
    });
    expect((await call("POST", "/projects", "{broken")).status).toBe(400);
    for (const type of ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
      expect(await call("POST", "/projects", "name=x", { "content-type": type }), type).toMatchObject({
        status: 415,
        body: {
          error: "unsupported_media_type",
          detail: `content-type ${type}: this route takes application/json`,
        },
      });
    const big = await call("POST", "/projects", { name: "x".repeat(2 * 1024 * 1024), git_url: "x" });
    expect(big.status).toBe(413);
    expect(
      (await call("POST", "/projects", { name: "p", git_url: "x", local_path: "/no/such/dir" })).body,
    ).toMatchObject({
      error: "invalid_input",
      detail: "local_path: /no/such/dir does not exist",
    });
  });
});

describe("projects and protocol runs", () => {
  it("stores project secrets without ever returning them, and lists only their names", async () => {
    const { project } = await api.newRun();
    expect(project.secrets_set).toEqual(["deploy_key"]);
    for (const path of ["/projects", `/projects/${project.id}`])
      expect(JSON.stringify((await call("GET", path)).body), path).not.toContain("do-not-leak");
    expect((await call("GET", `/projects/${project.id}`)).body.secrets_set).toEqual(["deploy_key"]);
  });

  it("writes a project and its secrets in one transaction: none is left unguarded when the secrets fail", async () => {
    const own = await startApi();
    try {
      // the secrets cannot be written: the project must not be created either
      await sql`DROP TABLE project_secrets`.execute(rawDb(own.store));
      const repo = gitRepo();
      const res = await own.call("POST", "/projects", {
        name: "guarded",
        git_url: repo,
        local_path: repo,
        secrets: { api_token: "t" },
      });
      expect(res.status).toBe(500);
      expect((await own.call("GET", "/projects")).body).toEqual([]);
    } finally {
      await own.close();
    }
  });

  it("asks for X-Project-Token on a project's routes when it has an api_token secret", async () => {
    const repo = gitRepo();
    const guarded = (
      await call("POST", "/projects", {
        name: "guarded",
        git_url: repo,
        local_path: repo,
        secrets: { api_token: "project-secret" },
      })
    ).body;
    const run = (
      await call(
        "POST",
        `/projects/${guarded.id}/protocols`,
        { protocol_name: "g", spec: shellSpec("true") },
        {
          "x-project-token": "project-secret",
        },
      )
    ).body;
    for (const path of [
      `/projects/${guarded.id}`,
      `/projects/${guarded.id}/protocols`,
      `/protocols/${run.id}`,
      `/protocols/${run.id}/steps`,
      `/protocols/${run.id}/events`,
      `/events?project_id=${guarded.id}`,
    ]) {
      expect((await call("GET", path)).status, path).toBe(403);
      expect((await call("GET", path, undefined, { "x-project-token": "wrong" })).status, path).toBe(403);
      expect((await call("GET", path, undefined, { "x-project-token": "project-secret" })).status, path).toBe(
        200,
      );
    }
    expect((await call("POST", `/protocols/${run.id}/actions/cancel`)).status).toBe(403);
    expect(
      (await call("GET", `/protocols/${run.id}`, undefined, { "x-project-token": "project-secret" })).body
        .status,
    ).toBe("planned");
    // the project list shows a guarded project's id and name only, unless its token comes along
    const listed = async (headers: Record<string, string>) =>
      (await call("GET", "/projects", undefined, headers)).body.find(
        (p: { id: number }) => p.id === guarded.id,
      );
    for (const headers of [{}, { "x-project-token": "wrong" }] as Record<string, string>[])
      expect(await listed(headers)).toEqual({ id: guarded.id, name: "guarded", guarded: true });
    expect(await listed({ "x-project-token": "project-secret" })).toMatchObject({
      local_path: repo,
      git_url: repo,
      secrets_set: ["api_token"],
    });
    // across projects, its events only with its token: listed and streamed
    const guardedEvents = async (headers: Record<string, string>) => {
      const listed = (await call("GET", "/events?limit=1000", undefined, headers)).body;
      const streamed = await sseEvents(`${api.base}/events/stream`, headers);
      return [...listed, ...streamed].filter((e: { project_id: number }) => e.project_id === guarded.id)
        .length;
    };
    expect(await guardedEvents({})).toBe(0);
    expect(await guardedEvents({ "x-project-token": "wrong" })).toBe(0);
    expect(await guardedEvents({ "x-project-token": "project-secret" })).toBe(4);
    // a token that could never be sent is refused rather than silently not enforced
    expect(
      (await call("POST", "/projects", { name: "bad", git_url: repo, secrets: { api_token: 42 } })).body,
    ).toMatchObject({ error: "invalid_request", detail: expect.stringMatching(/^secrets\.api_token: /) });
    // other projects are not affected
    const { run: open } = await api.newRun();
    expect((await call("GET", `/protocols/${open.id}`)).status).toBe(200);
  });

  it("creates runs in the project of the URL, keeps NNNN- names and honours the original's fields", async () => {
    const repo = gitRepo();
    const first = (await call("POST", "/projects", { name: "a", git_url: repo, local_path: repo })).body;
    const second = (await call("POST", "/projects", { name: "b", git_url: repo, local_path: repo })).body;
    // a linked worktree of the project's checkout, and a protocol folder inside it
    const worktree = join(mkdtempSync(join(tmpdir(), "tgz-wt-")), "feat");
    execFileSync("git", ["-C", repo, "worktree", "add", "-q", "-b", "0007-feat", worktree]);
    const root = join(worktree, "protocol");
    const run = (
      await call("POST", `/projects/${second.id}/protocols`, {
        protocol_name: "0007-feat",
        base_branch: "develop",
        worktree_path: worktree,
        protocol_root: root,
        spec: shellSpec("echo hi"),
      })
    ).body;
    expect(run).toMatchObject({
      project_id: second.id,
      protocol_name: "0007-feat",
      base_branch: "develop",
      worktree_path: worktree,
      protocol_root: root,
      status: "planned",
      spec_validation_status: "valid",
      spec_hash: expect.stringMatching(/^[0-9a-f]{12}$/),
    });
    expect(existsSync(join(root, "protocol-spec.json"))).toBe(true);
    expect((await call("GET", `/projects/${first.id}/protocols`)).body).toEqual([]);
    const numbered = (
      await call("POST", `/projects/${first.id}/protocols`, {
        protocol_name: "demo",
        spec: shellSpec("true"),
      })
    ).body;
    expect(numbered.protocol_name).toMatch(/^\d{4}-demo$/);
    expect(
      await call("POST", `/projects/${second.id}/protocols`, {
        protocol_name: "0007-feat",
        spec: shellSpec("true"),
      }),
    ).toMatchObject({ status: 409 });
    expect(
      (await call("POST", `/projects/${first.id}/protocols`, { protocol_name: "x", status: "planned" })).body,
    ).toMatchObject({ error: "invalid_input", detail: expect.stringMatching(/^status: /) });
    // a spec that would block the run at its start creates nothing: a 400 with every pointer
    const before = (await call("GET", `/projects/${first.id}/protocols`)).body.length;
    const invalid = await call("POST", `/projects/${first.id}/protocols`, {
      protocol_name: "bad",
      spec: { steps: [] },
    });
    expect(invalid).toMatchObject({
      status: 400,
      body: { error: "spec_invalid", errors: [{ pointer: "/steps", message: "needs at least 1 item(s)" }] },
    });
    expect((await call("GET", `/projects/${first.id}/protocols`)).body).toHaveLength(before);
    expect(
      (await call("GET", `/protocols/${run.id}/steps`)).body.map((s: { step_name: string }) => s.step_name),
    ).toEqual(["s0"]);
    expect((await call("GET", `/protocols/${run.id}/spec`)).body).toMatchObject({
      spec_hash: run.spec_hash,
      validation_status: "valid",
      validation_errors: [],
    });
  });

  it("keeps a run's name, worktree and protocol folder inside the project's places (400 naming the field)", async () => {
    const repo = gitRepo();
    const project = (await call("POST", "/projects", { name: "p", git_url: repo, local_path: repo })).body;
    const outside = mkdtempSync(join(tmpdir(), "tgz-outside-"));
    const create = (body: Record<string, unknown>) =>
      call("POST", `/projects/${project.id}/protocols`, { spec: shellSpec("true"), ...body });
    for (const name of [`0001-../../../..${outside}/escaped`, "0001-a/b", "0001-x..y", "0001-x.lock"]) {
      expect((await create({ protocol_name: name })).body, name).toMatchObject({
        error: "invalid_input",
        detail: expect.stringMatching(/^protocol_name: /),
      });
    }
    const imported = await call("POST", `/projects/${project.id}/codemachine/import`, {
      protocol_name: `0002-../../../..${outside}/imported`,
      workspace_path: repo,
      enqueue: true,
    });
    expect(imported.body).toMatchObject({ detail: expect.stringMatching(/^protocol_name: /) });
    expect(readdirSync(outside)).toEqual([]);
    expect(await create({ protocol_name: "r1", worktree_path: outside })).toMatchObject({
      status: 400,
      body: { detail: expect.stringMatching(/^worktree_path: .* is outside project/) },
    });
    expect(await create({ protocol_name: "r2", protocol_root: join(repo, "..", "sneaky") })).toMatchObject({
      status: 400,
      body: { detail: expect.stringMatching(/^protocol_root: .* is outside project/) },
    });
    expect(await create({ protocol_name: "r3", protocol_root: join(outside, "p") })).toMatchObject({
      status: 400,
    });
    expect(readdirSync(outside)).toEqual([]);
    expect((await call("GET", `/projects/${project.id}/protocols`)).body).toEqual([]);
    const inside = await create({ protocol_name: "0003-ok", protocol_root: join(repo, "protocols", "ok") });
    expect(inside.body).toMatchObject({
      protocol_name: "0003-ok",
      protocol_root: join(repo, "protocols", "ok"),
    });
    // planning's worktrees live in the data dir's worktrees folder
    const data = mkdtempSync(join(tmpdir(), "tgz-data-"));
    const planned = join(data, "worktrees", "some-project", "0004-wt");
    mkdirSync(planned, { recursive: true });
    const server = await api.server({ configFor: (d) => loadConfig(d, { TASKSGODZILLA_DATA_DIR: data }) });
    const res = await fetch(`${server.url}/projects/${project.id}/protocols`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ protocol_name: "0004-wt", worktree_path: planned, spec: shellSpec("true") }),
    });
    expect(await res.json()).toMatchObject({ worktree_path: planned });
    await server.close();
  });

  it("refuses a protocol_name numbering cannot hold or too long for a folder and branch (400 naming it)", async () => {
    const repo = gitRepo();
    const project = (await call("POST", "/projects", { name: "n", git_url: repo, local_path: repo })).body;
    const create = (protocol_name: string) =>
      call("POST", `/projects/${project.id}/protocols`, { protocol_name, spec: shellSpec("true") });
    expect(await create("9999999999999999999-x")).toMatchObject({
      status: 400,
      body: {
        error: "invalid_input",
        detail: expect.stringMatching(/^protocol_name: 9999999999999999999 is larger/),
      },
    });
    for (const name of [`0001-${"x".repeat(300)}`, "y".repeat(101)])
      expect(await create(name), name).toMatchObject({
        status: 400,
        body: { detail: expect.stringMatching(/^protocol_name: /) },
      });
    expect((await call("GET", `/projects/${project.id}/protocols`)).body).toEqual([]);
    // numbering goes on as before: the largest number kept exactly, then the next
    expect((await create(`${Number.MAX_SAFE_INTEGER - 1}-last`)).status).toBe(200);
    expect((await create("demo")).body.protocol_name).toBe(`${Number.MAX_SAFE_INTEGER}-demo`);
    expect(await create("more")).toMatchObject({
      status: 400,
      body: { detail: expect.stringMatching(/used up/) },
    });
    expect((await create(`0001-${"z".repeat(95)}`)).status).toBe(200);
  });

  it("accepts a project known only by its git URL, and answers 409 when an action needs its checkout", async () => {
    const remote = (
      await call("POST", "/projects", { name: "remote", git_url: "https://github.com/acme/remote.git" })
    ).body;
    expect(remote).toMatchObject({ local_path: null });
    const run = await call("POST", `/projects/${remote.id}/protocols`, {
      protocol_name: "r",
      spec: shellSpec("true"),
    });
    expect(run.body).toMatchObject({ status: "planned", protocol_root: null, worktree_path: null });
    const before = await snapshot(run.body.id);
    expect((await call("POST", `/protocols/${run.body.id}/actions/start`)).body).toMatchObject({
      error: "repo_missing",
      detail: expect.stringContaining(
        `project ${remote.id} (https://github.com/acme/remote.git) has no local checkout`,
      ),
    });
    expect(await snapshot(run.body.id)).toEqual(before);
  });
});

describe("usage", () => {
  it("reports the tokens a run used in all, by phase and by step, QA included", async () => {
    // recordings are read from inside the run's worktree, as prompts are
    const repo = gitRepo();
    const dir = join(repo, "recordings");
    mkdirSync(dir);
    const recording = (name: string, usage: Record<string, number>, final: string) => {
      const file = join(dir, `${name}.jsonl`);
      writeFileSync(
        file,
        [
          { type: "usage", usage },
          { type: "final", text: final },
        ]
          .map((e) => JSON.stringify(e))
          .join("\n"),
      );
      return file;
    };
    const step = (id: string, usage: Record<string, number>, qa: Record<string, unknown>) => ({
      id,
      engine_id: "replay",
      // the scratch repository's README is the prompt: replay does not read it
      prompt_ref: "README.md",
      inputs: { recording: recording(id, usage, "done") },
      qa,
    });
    const verdict = JSON.stringify({ verdict: "pass", summary: "fine" });
    const { run } = await api.newRun(
      [],
      {
        spec: {
          steps: [
            step("a", { input: 100, cachedInput: 40, output: 20 }, { policy: "skip" }),
            step(
              "b",
              { input: 7, output: 3, reasoning: 2 },
              {
                policy: "full",
                engine_id: "replay",
                inputs: { recording: recording("qa", { input: 30, output: 5 }, verdict) },
              },
            ),
          ],
        },
      },
      repo,
    );
    await call("POST", `/protocols/${run.id}/actions/start`);
    await api.drain();
    expect((await call("GET", `/protocols/${run.id}`)).body.status).toBe("completed");
    const usage = (n: Partial<Record<string, number>>) => ({
      input: 0,
      cached_input: 0,
      output: 0,
      reasoning: 0,
      total: 0,
      calls: 0,
      estimated_calls: 0,
      ...n,
    });
    const reply = await call("GET", `/protocols/${run.id}/usage`);
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({
      protocol_run_id: run.id,
      total: usage({ input: 137, cached_input: 40, output: 28, reasoning: 2, total: 165, calls: 3 }),
      by_phase: {
        plan: usage({}),
        exec: usage({ input: 107, cached_input: 40, output: 23, reasoning: 2, total: 130, calls: 2 }),
        qa: usage({ input: 30, output: 5, total: 35, calls: 1 }),
      },
      steps: [
        {
          step_run_id: expect.any(Number),
          step_name: "a",
          status: "completed",
          usage: usage({ input: 100, cached_input: 40, output: 20, total: 120, calls: 1 }),
        },
        {
          step_run_id: expect.any(Number),
          step_name: "b",
          status: "completed",
          usage: usage({ input: 37, output: 8, reasoning: 2, total: 45, calls: 2 }),
        },
      ],
    });
    expect((await call("GET", "/protocols/999999/usage")).status).toBe(404);
  });
});

describe("actions", () => {
  it("queues a planned run once, executes it on a worker, and refuses illegal moves with 409", async () => {
    const { run } = await api.newRun();
    const first = await call("POST", `/protocols/${run.id}/actions/start`);
    expect(first.body).toMatchObject({
      message: "run queued",
      job: { deduplicated: false },
      // running at once, so a job the queue loses is found again by the reconciler
      protocol: { status: "running" },
    });
    const again = await call("POST", `/protocols/${run.id}/actions/start`);
    expect(again).toMatchObject({ status: 409, body: { detail: expect.stringMatching(/is running/) } });
    expect(await queued("execute_protocol")).toHaveLength(1);
    expect(await call("POST", `/protocols/${run.id}/actions/explode`)).toMatchObject({
      status: 400,
      body: { detail: expect.stringMatching(/^action: .*start/) },
    });
    await api.drain();
    expect((await call("GET", `/protocols/${run.id}`)).body.status).toBe("completed");
    expect((await call("POST", `/protocols/${run.id}/actions/start`)).status).toBe(409);
    expect(await call("POST", `/protocols/${run.id}/actions/run_next_step`)).toMatchObject({
      status: 409,
      body: { error: "no_runnable_step" },
    });
  });

  it("plans a run created without a spec when it is started (create, then start)", async () => {
    const repo = gitRepo();
    const project = (await call("POST", "/projects", { name: "plan", git_url: repo, local_path: repo })).body;
    const bare = (await call("POST", `/projects/${project.id}/protocols`, { protocol_name: "0001-nothing" }))
      .body;
    expect(bare).toMatchObject({ status: "pending", spec_validation_status: null });
    const before = await snapshot(bare.id);
    expect((await call("POST", `/protocols/${bare.id}/actions/start`)).body).toMatchObject({
      error: "conflict",
      detail: expect.stringContaining("no spec and no description"),
    });
    expect(await snapshot(bare.id)).toEqual(before);

    const task = (
      await call("POST", `/projects/${project.id}/protocols`, {
        protocol_name: "0002-add-readme",
        description: "Add a README section",
      })
    ).body;
    const started = await call("POST", `/protocols/${task.id}/actions/start`);
    expect(started.body).toMatchObject({ protocol: { status: "planning" }, message: "planning queued" });
    const [plan] = await queued("plan");
    expect(plan).toMatchObject({
      id: started.body.job.id,
      payload: { protocol_run_id: task.id, task: "Add a README section", repo },
    });
    const events = (await call("GET", `/protocols/${task.id}/events`)).body;
    expect(events[0]).toMatchObject({ event_type: "planning_enqueued" });
    await api.queue.cancel(plan.id);
  });

  it("pauses a planned run before it starts (resume starts it), but not a planning one", async () => {
    const { run } = await api.newRun(["echo one"]);
    expect((await call("POST", `/protocols/${run.id}/actions/pause`)).body.protocol.status).toBe("paused");
    await api.drain();
    expect(await statuses(run.id)).toEqual(["pending"]);
    expect((await call("POST", `/protocols/${run.id}/actions/resume`)).body.protocol.status).toBe("running");
    await api.drain();
    expect((await call("GET", `/protocols/${run.id}`)).body.status).toBe("completed");

    const repo = gitRepo();
    const project = (await call("POST", "/projects", { name: "p", git_url: repo, local_path: repo })).body;
    const planning = (
      await call("POST", `/projects/${project.id}/protocols`, { protocol_name: "x", description: "a task" })
    ).body;
    const started = await call("POST", `/protocols/${planning.id}/actions/start`);
    expect(started.body.protocol.status).toBe("planning");
    expect(await call("POST", `/protocols/${planning.id}/actions/pause`)).toMatchObject({
      status: 409,
      body: { detail: expect.stringContaining("is planning, which cannot be paused") },
    });
    await api.queue.cancel(started.body.job.id);
    await call("POST", `/protocols/${planning.id}/actions/cancel`);
  });

  it("cancels idempotently, cancelling the pending steps with the run", async () => {
    const { run } = await api.newRun();
    expect((await call("POST", `/protocols/${run.id}/actions/cancel`)).body.protocol.status).toBe(
      "cancelled",
    );
    expect(await statuses(run.id)).toEqual(["cancelled", "cancelled"]);
    expect((await call("POST", `/protocols/${run.id}/actions/cancel`)).body).toMatchObject({
      message: "already cancelled",
    });
  });

  it("stops the engine call under way when the run is paused, and resumes it", async () => {
    const pidFile = join(mkdtempSync(join(tmpdir(), "tgz-pause-")), "pid");
    const { run } = await api.newRun([`sleep 30 & echo $! > ${pidFile}; wait`, "echo after"]);
    await call("POST", `/protocols/${run.id}/actions/start`);
    const worker = api.worker("pauser");
    worker.start();
    await until(async () => existsSync(pidFile));
    const started = Date.now();
    expect((await call("POST", `/protocols/${run.id}/actions/pause`)).body.protocol.status).toBe("paused");
    await until(
      async () =>
        (await call("GET", `/protocols/${run.id}/events?event_type=step_interrupted`)).body.length > 0,
    );
    expect(Date.now() - started).toBeLessThan(8000);
    expect(await waitGone(Number(readFileSync(pidFile, "utf8")))).toBe(true);
    await worker.stop();
    expect(await statuses(run.id)).toEqual(["pending", "pending"]);
    expect((await call("GET", `/protocols/${run.id}`)).body.status).toBe("paused");
    const resumed = await call("POST", `/protocols/${run.id}/actions/resume`);
    expect(resumed.body).toMatchObject({ protocol: { status: "running" }, job: { deduplicated: false } });
    expect((await call("POST", `/protocols/${run.id}/actions/resume`)).status).toBe(409);
    await api.queue.cancel(resumed.body.job.id);
  });

  it("retries the latest failed step: pending with one more retry, the run running, the run queued", async () => {
    const { run } = await api.newRun(["exit 3", "echo after"]);
    await call("POST", `/protocols/${run.id}/actions/start`);
    await api.drain();
    expect(await statuses(run.id)).toEqual(["failed", "pending"]);
    expect((await call("GET", `/protocols/${run.id}`)).body.status).toBe("blocked");
    const retried = await call("POST", `/protocols/${run.id}/actions/retry_latest`);
    expect(retried.body).toMatchObject({
      protocol: { status: "running" },
      step: { step_name: "s0", status: "pending", retries: 1 },
      job: { deduplicated: false },
    });
    expect((await queued("execute_protocol")).map((j: { id: string }) => j.id)).toContain(
      retried.body.job.id,
    );
    await api.drain();
    expect(await statuses(run.id)).toEqual(["failed", "pending"]);
  });

  it("approves any step not running, and completes the run when its steps are all done", async () => {
    const { run } = await api.newRun(["exit 3", "echo after"]);
    await call("POST", `/protocols/${run.id}/actions/start`);
    await api.drain();
    const [failed, pending] = await stepsOf(run.id);
    expect([failed.status, pending.status]).toEqual(["failed", "pending"]);
    expect((await call("POST", `/steps/${failed.id}/actions/approve`)).body).toMatchObject({
      step: { status: "completed" },
      protocol: { status: "blocked" },
    });
    const last = await call("POST", `/steps/${pending.id}/actions/approve`);
    expect(last.body).toMatchObject({ step: { status: "completed" }, protocol: { status: "completed" } });
    const types = (await call("GET", `/protocols/${run.id}/events?limit=3`)).body.map(
      (e: { event_type: string }) => e.event_type,
    );
    expect(types).toEqual(["protocol_completed", "manual_approval", "manual_approval"]);
    expect((await call("POST", `/steps/${pending.id}/actions/approve`)).body.message).toBe(
      "already completed",
    );
  });

  it("runs one step alone on request (run, run_next_step) with an execute_step job", async () => {
    const { run } = await api.newRun(["echo one", "echo two"]);
    const [s0, s1] = await stepsOf(run.id);
    const next = await call("POST", `/protocols/${run.id}/actions/run_next_step`);
    expect(next.body).toMatchObject({
      step: { id: s0.id, status: "pending" },
      protocol: { status: "planned" },
    });
    expect(await queued("execute_step")).toEqual([
      expect.objectContaining({
        id: next.body.job.id,
        payload: { protocol_run_id: run.id, step_run_id: s0.id },
      }),
    ]);
    await api.drain();
    expect(await statuses(run.id)).toEqual(["completed", "pending"]);
    expect((await call("GET", `/protocols/${run.id}`)).body.status).toBe("paused");
    const one = await call("POST", `/steps/${s1.id}/actions/run`);
    expect(one.body).toMatchObject({ protocol: { status: "running" }, step: { id: s1.id } });
    expect((await queued("execute_step"))[0].payload).toEqual({
      protocol_run_id: run.id,
      step_run_id: s1.id,
    });
    await api.drain();
    expect(await statuses(run.id)).toEqual(["completed", "completed"]);
  });

  it("re-runs only QA on a step's existing outputs with a run_qa job", async () => {
    const { run } = await api.newRun(["echo one", "exit 4"]);
    await call("POST", `/protocols/${run.id}/actions/start`);
    await api.drain();
    const [, failed] = await stepsOf(run.id);
    expect(failed.status).toBe("failed");
    const started = async () =>
      (await call("GET", `/protocols/${run.id}/events?event_type=step_started`)).body.filter(
        (e: { step_run_id: number }) => e.step_run_id === failed.id,
      ).length;
    const executions = await started();
    const qa = await call("POST", `/steps/${failed.id}/actions/run_qa`);
    expect(qa.body).toMatchObject({ step: { status: "needs_qa" }, protocol: { status: "running" } });
    expect(await queued("run_qa")).toEqual([
      expect.objectContaining({ payload: { protocol_run_id: run.id, step_run_id: failed.id } }),
    ]);
    expect(await queued("execute_protocol")).toEqual([]);
    expect((await call("GET", `/protocols/${run.id}/events`)).body[0]).toMatchObject({
      event_type: "qa_enqueued",
    });
    await api.drain();
    expect(await started()).toBe(executions);
    expect((await call("GET", `/protocols/${run.id}/events?event_type=qa_verdict`)).body[0]).toMatchObject({
      step_run_id: failed.id,
    });
  });

  it("leaves a run paused after run_next_step or run_qa queued its job as it is when a worker takes the job", async () => {
    const { run } = await api.newRun(["echo one", "echo two"]);
    await call("POST", `/protocols/${run.id}/actions/run_next_step`);
    await api.drain();
    expect((await call("POST", `/protocols/${run.id}/actions/run_next_step`)).body.protocol.status).toBe(
      "running",
    );
    expect((await call("POST", `/protocols/${run.id}/actions/pause`)).body.protocol.status).toBe("paused");
    await api.drain();
    expect((await call("GET", `/protocols/${run.id}`)).body.status).toBe("paused");
    expect(await statuses(run.id)).toEqual(["completed", "pending"]);
    expect(await eventCount(run.id, "step_started")).toBe(1);

    const checked = (await api.newRun(["echo one", "exit 3"])).run;
    await call("POST", `/protocols/${checked.id}/actions/start`);
    await api.drain();
    const [, failed] = await stepsOf(checked.id);
    const verdicts = await eventCount(checked.id, "qa_verdict");
    expect((await call("POST", `/steps/${failed.id}/actions/run_qa`)).body.protocol.status).toBe("running");
    expect((await call("POST", `/protocols/${checked.id}/actions/pause`)).body.protocol.status).toBe(
      "paused",
    );
    await api.drain();
    expect((await call("GET", `/protocols/${checked.id}`)).body.status).toBe("paused");
    expect(await statuses(checked.id)).toEqual(["completed", "needs_qa"]);
    expect(await eventCount(checked.id, "qa_verdict")).toBe(verdicts);
  });

  it("runs nothing twice when a step's or a QA job is delivered again after it ran", async () => {
    const { run } = await api.newRun(["echo one", "echo two"]);
    const next = await call("POST", `/protocols/${run.id}/actions/run_next_step`);
    const stepJob = (await api.queue.get(next.body.job.id))!.payload;
    await api.drain();
    await api.queue.enqueue("execute_step", stepJob);
    await api.drain();
    expect(await eventCount(run.id, "step_started")).toBe(1);
    expect(await statuses(run.id)).toEqual(["completed", "pending"]);
    expect((await call("GET", `/protocols/${run.id}`)).body.status).toBe("paused");

    const checked = (await api.newRun(["echo one", "exit 3"])).run;
    await call("POST", `/protocols/${checked.id}/actions/start`);
    await api.drain();
    const [, failed] = await stepsOf(checked.id);
    const qa = await call("POST", `/steps/${failed.id}/actions/run_qa`);
    const qaJob = (await api.queue.get(qa.body.job.id))!.payload;
    await api.drain();
    const after = { verdicts: await eventCount(checked.id, "qa_verdict"), steps: await statuses(checked.id) };
    await api.queue.enqueue("run_qa", qaJob);
    await api.drain();
    expect({
      verdicts: await eventCount(checked.id, "qa_verdict"),
      steps: await statuses(checked.id),
    }).toEqual(after);
    expect(await eventCount(checked.id, "step_started")).toBe(2);
  });

  it("changes nothing when it refuses an action (one transaction, checked before anything moves)", async () => {
    const { run } = await api.newRun();
    await call("POST", `/protocols/${run.id}/actions/start`);
    await api.drain();
    const [s0] = await stepsOf(run.id);
    const before = await snapshot(run.id);
    for (const [path, status] of [
      [`/steps/${s0.id}/actions/run`, 409],
      [`/steps/${s0.id}/actions/run_qa`, 409],
      [`/protocols/${run.id}/actions/resume`, 409],
      [`/protocols/${run.id}/actions/pause`, 409],
      [`/protocols/${run.id}/actions/retry_latest`, 409],
      [`/protocols/${run.id}/actions/run_next_step`, 409],
    ] as const) {
      expect((await call("POST", path)).status, path).toBe(status);
      expect(await snapshot(run.id), path).toEqual(before);
    }
    const fresh = (await api.newRun()).run;
    const [pending] = await stepsOf(fresh.id);
    const freshBefore = await snapshot(fresh.id);
    expect((await call("POST", `/steps/${pending.id}/actions/run_qa`)).status).toBe(409);
    expect(await snapshot(fresh.id)).toEqual(freshBefore);
  });
});

describe("the actions allowed now", () => {
  it("come with every run and step the API serves, by the rules the actions enforce", async () => {
    const { project, run } = await api.newRun(["echo one", "exit 3"]);
    // a planned run: it can start, be held or cancelled, or go one step at a time; no PR without a branch
    expect(run.allowed_actions).toEqual(["start", "pause", "cancel", "run_next_step"]);
    expect((await call("GET", `/protocols/${run.id}`)).body.allowed_actions).toEqual(run.allowed_actions);
    const listed = (await call("GET", `/projects/${project.id}/protocols`)).body;
    expect(listed.find((r: { id: number }) => r.id === run.id).allowed_actions).toEqual(run.allowed_actions);
    expect((await stepsOf(run.id)).map((s: { allowed_actions: string[] }) => s.allowed_actions)).toEqual([
      ["run", "approve"],
      ["run", "approve"],
    ]);
    // running, it advances by itself: no step is worked on by hand meanwhile
    const started = (await call("POST", `/protocols/${run.id}/actions/start`)).body;
    expect(started.protocol.allowed_actions).toEqual(["pause", "cancel"]);
    expect((await stepsOf(run.id)).map((s: { allowed_actions: string[] }) => s.allowed_actions)).toEqual([
      ["approve"],
      ["approve"],
    ]);
    await api.drain();
    // blocked on its failed step: retry it, run it, check it again, or approve it
    expect((await call("GET", `/protocols/${run.id}`)).body.allowed_actions).toEqual([
      "cancel",
      "run_next_step",
      "retry_latest",
    ]);
    const [done, failed] = await stepsOf(run.id);
    expect(done.allowed_actions).toEqual([]);
    expect(failed.allowed_actions).toEqual(["run", "run_qa", "approve"]);
    const approved = (await call("POST", `/steps/${failed.id}/actions/approve`)).body;
    expect(approved).toMatchObject({
      protocol: { status: "completed", allowed_actions: [] },
      step: { status: "completed", allowed_actions: [] },
    });
    // every action it does not list is refused
    for (const action of ["start", "pause", "resume", "cancel", "run_next_step", "retry_latest", "open_pr"])
      expect((await call("POST", `/protocols/${run.id}/actions/${action}`)).status, action).toBe(409);
  });
});

describe("the original client's fields", () => {
  it("action replies carry job_id, queue jobs their queue, events spec_hash in metadata too", async () => {
    const { run } = await api.newRun(["echo one"]);
    const started = (await call("POST", `/protocols/${run.id}/actions/start`)).body;
    expect(started.job_id).toBe(started.job.id);
    expect((await call("POST", `/protocols/${run.id}/actions/pause`)).body).not.toHaveProperty("job_id");
    const jobs = (await call("GET", "/queues/jobs?status=queued")).body;
    expect(jobs.length).toBeGreaterThan(0);
    for (const job of jobs) expect(job).toMatchObject({ queue: "default", job_id: job.id });
    const events = (await call("GET", `/protocols/${run.id}/events?after=0`)).body;
    for (const e of events) expect(e.metadata.spec_hash, e.event_type).toBe(run.spec_hash);
    expect(run.spec_hash).toMatch(/^[0-9a-f]{12}$/);
    // an event's own spec_hash is kept: a run created without a spec says so
    const repo = gitRepo();
    const project = (await call("POST", "/projects", { name: "bare", git_url: repo, local_path: repo })).body;
    const bare = (
      await call("POST", `/projects/${project.id}/protocols`, { protocol_name: "x", description: "t" })
    ).body;
    const [created] = (await call("GET", `/protocols/${bare.id}/events?after=0`)).body;
    expect(created).toMatchObject({
      event_type: "protocol_created",
      spec_hash: null,
      metadata: { spec_hash: null },
    });
    for (const job of jobs) await api.queue.cancel(job.id);
  });
});

describe("events", () => {
  it("lists events as the original (a JSON array, newest first) and pages with a cursor", async () => {
    const { run } = await api.newRun();
    await call("POST", `/protocols/${run.id}/actions/start`);
    await api.drain();
    const newest = await call("GET", `/protocols/${run.id}/events?limit=3`);
    expect(Array.isArray(newest.body)).toBe(true);
    expect(newest.body.map((e: { event_type: string }) => e.event_type)[0]).toBe("protocol_completed");
    expect(newest.headers.get("x-next-cursor")).toBe(String(newest.body[0].id));
    const all = (await call("GET", `/protocols/${run.id}/events?after=0&limit=1000`)).body;
    expect(all.map((e: { id: number }) => e.id)).toEqual(
      [...all.map((e: { id: number }) => e.id)].sort((a, b) => a - b),
    );
    const page = await call("GET", `/protocols/${run.id}/events?after=${all[2].id}&limit=2`);
    expect(page.body.map((e: { id: number }) => e.id)).toEqual([all[3].id, all[4].id]);
    expect(page.headers.get("x-next-cursor")).toBe(String(all[4].id));
    const link = page.headers.get("link")!;
    expect(link).toMatch(/rel="next"$/);
    const next = await call("GET", link.slice(1, link.indexOf(">")));
    expect(next.body.map((e: { id: number }) => e.id)).toEqual([all[5].id, all[6].id]);
    expect(
      (await call("GET", `/protocols/${run.id}/events?after=${all.at(-1).id}`)).headers.get("x-next-cursor"),
    ).toBe(String(all.at(-1).id));
  });

  it("filters /events by project, type and kind=onboarding (setup_* events), 50 by default", async () => {
    const { run, project } = await api.newRun();
    for (let i = 0; i < 60; i++)
      await api.store.appendEvent({ protocolRunId: run.id, eventType: "directive", message: `n${i}` });
    // the original's onboarding wrote setup_* events; a store carried over from it holds them
    const onboardingEvent = "setup_started" as EventType;
    await api.store.appendEvent({ protocolRunId: run.id, eventType: onboardingEvent, message: "setup" });
    expect((await call("GET", "/events")).body).toHaveLength(50);
    const mine = (await call("GET", `/events?project_id=${project.id}&event_type=protocol_created`)).body;
    expect(mine.map((e: { project_id: number; event_type: string }) => [e.project_id, e.event_type])).toEqual(
      [[project.id, "protocol_created"]],
    );
    const onboarding = (await call("GET", `/events?kind=onboarding&project_id=${project.id}`)).body;
    expect(onboarding.map((e: { event_type: string }) => e.event_type)).toEqual(["setup_started"]);
    expect(await call("GET", "/events?kind=deploys")).toMatchObject({
      status: 400,
      body: { detail: expect.stringMatching(/^kind: /) },
    });
  });
});

describe("queues, imports and audits", () => {
  it("reports queue stats in the original's shape and maps its job statuses", async () => {
    const { run } = await api.newRun();
    const job = (await call("POST", `/protocols/${run.id}/actions/start`)).body.job;
    const stats = (await call("GET", "/queues")).body;
    expect(stats).toMatchObject({
      backend: "embedded-sqlite",
      default: {
        queued: expect.any(Number),
        started: 0,
        finished: expect.any(Number),
        failed: expect.any(Number),
      },
    });
    expect(stats.default.queued).toBeGreaterThanOrEqual(1);
    const waiting = (await call("GET", "/queues/jobs?status=queued")).body;
    expect(waiting.find((j: { id: string }) => j.id === job.id)).toMatchObject({
      job_id: job.id,
      job_type: "execute_protocol",
      status: "queued",
      state: "waiting",
    });
    expect(
      (await call("GET", "/queues/jobs?status=finished")).body.every(
        (j: { status: string }) => j.status === "finished",
      ),
    ).toBe(true);
    expect(await call("GET", "/queues/jobs?status=bogus")).toMatchObject({
      status: 400,
      body: { detail: expect.stringMatching(/^status: /) },
    });
    await api.drain();
  });

  it("imports a CodeMachine workspace with the original body, now or queued, replying with the run", async () => {
    const { exampleCopy } = await import("../codemachine/packages.js");
    const repo = gitRepo();
    const project = (await call("POST", "/projects", { name: "cm", git_url: repo, local_path: repo })).body;
    const workspace = exampleCopy();
    const now = await call("POST", `/projects/${project.id}/codemachine/import`, {
      protocol_name: "0001-cm-now",
      workspace_path: workspace,
      base_branch: "main",
      description: "imported",
    });
    expect(now.body).toMatchObject({
      protocol_run: {
        project_id: project.id,
        protocol_name: "0001-cm-now",
        status: "planned",
        worktree_path: workspace,
        description: "imported",
      },
      message: "imported",
    });
    expect(now.body.job).toBeUndefined();
    const later = await call("POST", `/projects/${project.id}/codemachine/import`, {
      protocol_name: "0002-cm-later",
      workspace_path: exampleCopy(),
      enqueue: true,
    });
    expect(later.body).toMatchObject({ protocol_run: { status: "planning" }, job: { deduplicated: false } });
    await api.drain();
    expect((await call("GET", `/protocols/${later.body.protocol_run.id}`)).body).toMatchObject({
      status: "planned",
      spec_validation_status: "valid",
    });
    const runsBefore = (await call("GET", `/projects/${project.id}/protocols`)).body.length;
    const broken = await call("POST", `/projects/${project.id}/codemachine/import`, {
      protocol_name: "0003-broken",
      workspace_path: gitRepo(),
    });
    expect(broken.status).toBe(400);
    expect((await call("GET", `/projects/${project.id}/protocols`)).body).toHaveLength(runsBefore);
  });

  it("marks a queued import on its run, so a lost import job is queued again as an import, not planned", async () => {
    const { exampleCopy } = await import("../codemachine/packages.js");
    // a store of its own: the reconciler looks at every run
    const own = await startApi();
    const call: Api["call"] = (...args) => own.call(...args);
    const repo = gitRepo();
    const project = (await call("POST", "/projects", { name: "cm", git_url: repo, local_path: repo })).body;
    const workspace = exampleCopy();
    const queuedImport = await call("POST", `/projects/${project.id}/codemachine/import`, {
      protocol_name: "0001-cm-lost",
      workspace_path: workspace,
      enqueue: true,
    });
    const run = queuedImport.body.protocol_run;
    expect(run).toMatchObject({
      status: "planning",
      template_source: { codemachine_import: { workspace_path: workspace, workflow: null, qa: null } },
    });
    expect(
      (await call("GET", `/protocols/${run.id}/events?after=0`)).body.map(
        (e: { event_type: string }) => e.event_type,
      ),
    ).toEqual(["protocol_created", "codemachine_import_enqueued"]);
    // the queue loses the job (a Redis without persistence restarting)
    await own.queue.cancel(queuedImport.body.job.id);
    const reconciler = new RunReconciler({ store: own.store, queue: own.queue, settleMs: 0 });
    expect(await reconciler.reconcile()).toEqual([run.id]);
    const queuedOf = async (kind: string) =>
      (await call("GET", "/queues/jobs?status=queued")).body.filter((j: { kind: string }) => j.kind === kind);
    expect((await queuedOf("import")).map((j: { payload: unknown }) => j.payload)).toEqual([
      expect.objectContaining({ protocol_run_id: run.id, path: workspace }),
    ]);
    expect(await queuedOf("plan")).toEqual([]);
    await own.drain();
    expect((await call("GET", `/protocols/${run.id}`)).body).toMatchObject({
      status: "planned",
      spec_validation_status: "valid",
    });
    expect((await call("GET", `/protocols/${run.id}/events?event_type=planning_started`)).body).toEqual([]);
    await own.close();
  });

  it("queues spec audits", async () => {
    const { run } = await api.newRun();
    expect((await call("POST", "/specs/audit", { protocol_id: run.id })).body).toMatchObject({
      job: { id: expect.any(String) },
      message: "spec audit queued",
    });
    await api.drain();
    expect((await call("GET", `/protocols/${run.id}/events?event_type=spec_audit`)).body).toHaveLength(1);
  });
});

describe("metrics", () => {
  it("expose the original's metric names, duration histograms with buckets, and the project's own", async () => {
    const { run } = await api.newRun();
    await call("POST", `/protocols/${run.id}/actions/start`);
    await api.drain();
    const text = (await call("GET", "/metrics")).body as string;
    const value = (series: string) => {
      const line = text.split("\n").find((l) => l.startsWith(`${series} `));
      expect(line, series).toBeDefined();
      return Number(line!.split(" ").pop());
    };
    for (const name of ["tasksgodzilla_step_duration_seconds", "tasksgodzilla_qa_duration_seconds"]) {
      expect(text).toContain(`# TYPE ${name} histogram`);
      const count = value(`${name}_count`);
      expect(count).toBeGreaterThan(0);
      expect(value(`${name}_bucket{le="1"}`)).toBeLessThanOrEqual(count);
      expect(value(`${name}_bucket{le="+Inf"}`)).toBe(count);
    }
    expect(value("requests_total")).toBeGreaterThan(0);
    expect(text).toContain("# TYPE requests_duration_seconds histogram");
    expect(
      value('requests_duration_seconds_count{path="/projects",method="POST",status="200"}'),
    ).toBeGreaterThan(0);
    expect(value('jobs_processed_total{job_type="execute_protocol",status="completed"}')).toBeGreaterThan(0);
    expect(value('codex_token_estimated_total{phase="exec",model=""}')).toBeGreaterThanOrEqual(0);
    expect(value('qa_verdict_total{verdict="pass"}')).toBeGreaterThan(0);
    expect(value('tasksgodzilla_protocol_runs{status="completed"}')).toBeGreaterThan(0);
    expect(text).toMatch(/^tasksgodzilla_tokens_total\{engine="shell",model="",phase="exec"\} \d+/m);
    expect(text).toMatch(/^tasksgodzilla_queue_jobs\{state="waiting"\} \d+/m);
  });

  it("count jobs monotonically as the worker finishes them, and read each ledger event once", async () => {
    const own = await startApi();
    try {
      const scrape = async () => (await own.call("GET", "/metrics")).body as string;
      const value = (text: string, series: string) =>
        Number(
          text
            .split("\n")
            .find((l) => l.startsWith(`${series} `))
            ?.split(" ")
            .pop() ?? Number.NaN,
        );
      const processed = 'jobs_processed_total{job_type="execute_protocol",status="completed"}';
      const timed = 'jobs_duration_seconds_count{job_type="execute_protocol",status="completed"}';
      const steps = "tasksgodzilla_step_duration_seconds";
      const runOnce = async () => {
        const { run } = await own.newRun(["echo one"]);
        await own.call("POST", `/protocols/${run.id}/actions/start`);
        await own.drain();
      };
      await runOnce();
      const first = await scrape();
      expect([value(first, processed), value(first, timed), value(first, `${steps}_count`)]).toEqual([
        1, 1, 1,
      ]);
      // the queue forgets its finished jobs, and an old event changes behind the ledger's back: the
      // counter stays, and the ledger's figures are not read again
      await sql`DELETE FROM jobs`.execute(rawDb(own.store));
      await sql`UPDATE events SET metadata = ${JSON.stringify({ duration_ms: 3_600_000 })}
        WHERE event_type = 'step_completed'`.execute(rawDb(own.store));
      const second = await scrape();
      expect(value(second, processed)).toBe(1);
      expect(value(second, `${steps}_sum`)).toBe(value(first, `${steps}_sum`));
      await runOnce();
      const third = await scrape();
      expect([value(third, processed), value(third, `${steps}_count`)]).toEqual([2, 2]);
      expect(value(third, `${steps}_sum`)).toBeLessThan(60);
    } finally {
      await own.close();
    }
  });
});
