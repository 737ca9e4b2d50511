/** CI webhooks over real HTTP: signatures, the providers' payloads, what each outcome does, metrics. */
import { execFile, execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gitRepo } from "../scenario/harness.js";
import { type Api, HOOK, shellSpec, startApi, until } from "./api-harness.js";

let api: Api;
const call: Api["call"] = (...args) => api.call(...args);

beforeAll(async () => {
  api = await startApi();
});
afterAll(async () => {
  await api.close();
});

const sign = (body: string, secret = HOOK) =>
  `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;

function github(
  event: string,
  payload: unknown,
  opts: { base?: string; query?: string; secret?: string; delivery?: string } = {},
) {
  const body = JSON.stringify(payload);
  return fetch(`${opts.base ?? api.base}/webhooks/github${opts.query ?? ""}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": event,
      "x-hub-signature-256": sign(body, opts.secret),
      ...(opts.delivery ? { "x-github-delivery": opts.delivery } : {}),
    },
    body,
  }).then(async (r) => ({ status: r.status, body: await r.json() }));
}

function gitlab(payload: unknown, token = HOOK, base = api.base, delivery?: string) {
  return fetch(`${base}/webhooks/gitlab`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-gitlab-token": token,
      ...(delivery ? { "x-gitlab-event-uuid": delivery } : {}),
    },
    body: JSON.stringify(payload),
  }).then(async (r) => ({ status: r.status, body: await r.json() }));
}

const runOf = async (id: number) => (await call("GET", `/protocols/${id}`)).body;
const stepsOf = async (id: number) => (await call("GET", `/protocols/${id}/steps`)).body;
const eventsOf = async (id: number, type: string) =>
  (await call("GET", `/protocols/${id}/events?event_type=${type}`)).body;

/** A run whose steps all ran (the last one completed last), as CI would see it after a push. */
async function ranRun(commands = ["echo one", "echo two"]) {
  const { run, project } = await api.newRun(commands);
  await call("POST", `/protocols/${run.id}/actions/start`);
  await api.drain();
  return { run: await runOf(run.id), project };
}

describe("webhook authentication", () => {
  it("verifies GitHub's signature and GitLab's token without the bearer token; nothing is recorded on a 401", async () => {
    const { run } = await api.newRun();
    const payload = JSON.stringify({
      workflow_run: { head_branch: run.protocol_name, conclusion: "failure" },
    });
    const bad = await call("POST", "/webhooks/github", payload, {
      authorization: "",
      "x-github-event": "workflow_run",
      "x-hub-signature-256": sign("other"),
    });
    expect(bad.status).toBe(401);
    const unsigned = await call("POST", "/webhooks/github", payload, {
      authorization: "",
      "x-github-event": "workflow_run",
    });
    expect(unsigned.status).toBe(401);
    expect(await eventsOf(run.id, "ci_webhook")).toEqual([]);
    const gl = { object_kind: "pipeline", object_attributes: { status: "running", ref: run.protocol_name } };
    expect((await gitlab(gl, "wrong")).status).toBe(401);
    expect((await gitlab(gl)).body).toMatchObject({
      protocol_run_id: run.id,
      outcome: "running",
      action: "recorded",
    });
    const metrics = (await call("GET", "/metrics")).body as string;
    expect(metrics).toMatch(/tasksgodzilla_webhooks_total\{provider="github",status="unauthorized"\} 2/);
    expect(metrics).toMatch(/^webhooks_total\{provider="gitlab",status="unauthorized"\} 1/m);
  });

  it("refuses unsigned webhooks when no secret is configured, unless explicitly allowed", async () => {
    const { run } = await api.newRun();
    const body = JSON.stringify({
      object_kind: "pipeline",
      object_attributes: { status: "running", ref: run.protocol_name },
    });
    const refusing = await api.server({});
    const refused = await fetch(`${refusing.url}/webhooks/gitlab`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({
      detail: expect.stringMatching(/TASKSGODZILLA_WEBHOOK_TOKEN is not set/),
    });
    await refusing.close();
    const allowing = await api.server({ allowUnsignedWebhooks: true });
    const allowed = await fetch(`${allowing.url}/webhooks/gitlab`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    expect(await allowed.json()).toMatchObject({ protocol_run_id: run.id, action: "recorded" });
    await allowing.close();
  });

  it("answers a GitHub ping with pong and records nothing", async () => {
    const before = (await call("GET", "/events?limit=1")).body[0]?.id ?? 0;
    expect(await github("ping", { zen: "Keep it logically awesome.", hook_id: 1 })).toEqual({
      status: 200,
      body: { message: "pong" },
    });
    expect((await call("GET", `/events?after=${before}`)).body).toEqual([]);
  });

  it("takes GitHub's form-encoded deliveries, the signature over the raw body", async () => {
    const { run } = await api.newRun();
    const raw = new URLSearchParams({
      payload: JSON.stringify({ state: "pending", branches: [{ name: run.protocol_name }] }),
    }).toString();
    const res = await fetch(`${api.base}/webhooks/github`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        "x-github-event": "status",
        "x-hub-signature-256": sign(raw),
      },
      body: raw,
    });
    expect(await res.json()).toMatchObject({ protocol_run_id: run.id, outcome: "running" });
  });

  it("records a delivery the provider sends again (same delivery id) once, across servers, also when copies race", async () => {
    const { run } = await api.newRun();
    await call("POST", `/protocols/${run.id}/actions/run_next_step`);
    await api.drain();
    const failure = { state: "failure", branches: [{ name: run.protocol_name }] };
    const first = await github("status", failure, { delivery: "gh-delivery-1" });
    expect(first.body).toMatchObject({ action: "step_failed" });
    const other = await api.server({ webhookToken: HOOK });
    try {
      for (const base of [api.base, other.url]) {
        const again = await github("status", failure, { base, delivery: "gh-delivery-1" });
        expect(again).toMatchObject({
          status: 200,
          body: {
            protocol_run_id: run.id,
            action: "duplicate",
            message: expect.stringContaining("gh-delivery-1"),
          },
        });
      }
    } finally {
      await other.close();
    }
    expect(await eventsOf(run.id, "ci_webhook")).toHaveLength(1);
    expect(await eventsOf(run.id, "step_failed")).toHaveLength(1);

    // GitLab's event UUID; copies delivered at once are applied once
    const { run: lab } = await ranRun(["echo one"]);
    const pipeline = {
      object_kind: "pipeline",
      object_attributes: { status: "failed", ref: lab.protocol_name },
    };
    const replies = await Promise.all(
      [1, 2, 3].map(() => gitlab(pipeline, HOOK, api.base, "6f1c6a5e-0000-4000-8000-000000000001")),
    );
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(replies.filter((r) => r.body.action === "duplicate")).toHaveLength(2);
    expect(await eventsOf(lab.id, "ci_webhook")).toHaveLength(1);
    // a delivery without an id is applied each time, as before
    expect((await gitlab(pipeline)).body.action).not.toBe("duplicate");
    expect(await eventsOf(lab.id, "ci_webhook")).toHaveLength(2);
  });

  it("answers 400 naming protocol_run_id when it is not an id", async () => {
    expect(await github("status", { state: "success" }, { query: "?protocol_run_id=abc" })).toMatchObject({
      status: 400,
      body: { detail: expect.stringMatching(/^protocol_run_id: /) },
    });
    expect(await github("status", { state: "success", protocol_run_id: "x" })).toMatchObject({
      status: 400,
      body: { detail: expect.stringMatching(/^protocol_run_id: /) },
    });
    expect((await github("status", { state: "success" }, { query: "?protocol_run_id=99999" })).status).toBe(
      404,
    );
  });
});

describe("what CI results do", () => {
  it("parses workflow_run, check_suite, check_run, status, pull_request, pipeline and merge_request", async () => {
    const { run } = await api.newRun();
    const branch = run.protocol_name;
    const cases: [string, unknown, string][] = [
      [
        "workflow_run",
        { workflow_run: { head_branch: branch, status: "in_progress", head_sha: "abc" } },
        "running",
      ],
      ["check_suite", { check_suite: { head_branch: branch, status: "queued" } }, "running"],
      [
        "check_run",
        { check_run: { check_suite: { head_branch: branch }, status: "in_progress" } },
        "running",
      ],
      ["status", { state: "pending", branches: [{ name: branch }] }, "running"],
      [
        "pull_request",
        { pull_request: { head: { ref: branch }, state: "open", number: 7, merged: false } },
        "other",
      ],
    ];
    for (const [event, payload, outcome] of cases)
      expect((await github(event, payload)).body, event).toMatchObject({ protocol_run_id: run.id, outcome });
    expect(
      (await gitlab({ object_kind: "pipeline", object_attributes: { status: "pending", ref: branch } })).body,
    ).toMatchObject({
      outcome: "running",
    });
    expect(
      (
        await gitlab({
          object_kind: "merge_request",
          object_attributes: { state: "opened", source_branch: branch, iid: 3 },
        })
      ).body,
    ).toMatchObject({ outcome: "other", action: "recorded" });
    const recorded = (await eventsOf(run.id, "ci_webhook")).map(
      (e: { metadata: Record<string, unknown> }) => [e.metadata.kind, e.metadata.branch],
    );
    expect(recorded).toHaveLength(cases.length + 2);
    expect(recorded.every(([, b]: string[]) => b === branch)).toBe(true);
    expect((await eventsOf(run.id, "ci_webhook")).at(-1).metadata).toMatchObject({
      kind: "workflow_run",
      sha: "abc",
    });
    // running states are recorded only: the runner owns `running`
    expect((await runOf(run.id)).status).toBe("planned");
  });

  it("on CI failure fails the latest step and blocks the run", async () => {
    const { run } = await api.newRun();
    await call("POST", `/protocols/${run.id}/actions/run_next_step`);
    await api.drain();
    const [last] = await stepsOf(run.id);
    expect([last.status, (await runOf(run.id)).status]).toEqual(["completed", "paused"]);
    const resumed = (await call("POST", `/protocols/${run.id}/actions/resume`)).body;
    await api.queue.cancel(resumed.job.id);
    expect(
      await github("check_suite", { check_suite: { head_branch: run.protocol_name, conclusion: "failure" } }),
    ).toMatchObject({ body: { outcome: "failure", action: "blocked" } });
    expect((await runOf(run.id)).status).toBe("blocked");
    expect((await stepsOf(run.id)).find((s: { id: number }) => s.id === last.id).status).toBe("failed");
    expect(
      (await call("GET", `/protocols/${run.id}/events?limit=2`)).body.map(
        (e: { message: string }) => e.message,
      ),
    ).toEqual(["CI failed; protocol blocked", "CI failed"]);
  });

  it("leaves the run to its runner while a step runs: a CI failure then is recorded only", async () => {
    const marker = join(mkdtempSync(join(tmpdir(), "tgz-ci-")), "started");
    const { run } = await api.newRun([`touch ${marker}; sleep 2`, "echo two"]);
    await call("POST", `/protocols/${run.id}/actions/start`);
    const worker = api.worker("ci");
    worker.start();
    await until(async () => existsSync(marker));
    const body = { workflow_run: { head_branch: run.protocol_name, conclusion: "failure" } };
    expect((await github("workflow_run", body)).body).toMatchObject({
      outcome: "failure",
      action: "recorded",
    });
    expect((await runOf(run.id)).status).toBe("running");
    await until(async () => (await runOf(run.id)).status === "completed");
    await worker.stop();
    expect((await stepsOf(run.id)).map((s: { status: string }) => s.status)).toEqual([
      "completed",
      "completed",
    ]);
    expect(await eventsOf(run.id, "protocol_blocked")).toEqual([]);
  });

  it("judges only steps that have run: a result for a run with none run yet is recorded only", async () => {
    const { run } = await api.newRun(["echo one", "echo two"]);
    for (const conclusion of ["success", "failure"])
      expect(
        (await github("workflow_run", { workflow_run: { head_branch: run.protocol_name, conclusion } })).body,
      ).toMatchObject({ action: "recorded" });
    expect((await stepsOf(run.id)).map((s: { status: string }) => s.status)).toEqual(["pending", "pending"]);
    expect((await runOf(run.id)).status).toBe("planned");
    // one step ran and the next one is queued (changed last): CI speaks of the one that ran
    await call("POST", `/protocols/${run.id}/actions/run_next_step`);
    await api.drain();
    const next = await call("POST", `/protocols/${run.id}/actions/run_next_step`);
    await api.queue.cancel(next.body.job.id);
    await call("POST", `/protocols/${run.id}/actions/pause`);
    const failed = await github("workflow_run", {
      workflow_run: { head_branch: run.protocol_name, conclusion: "failure" },
    });
    expect(failed.body).toMatchObject({ action: "step_failed" });
    expect((await stepsOf(run.id)).map((s: { status: string }) => s.status)).toEqual(["failed", "pending"]);
  });

  it("on CI success without auto-QA completes the latest step ('CI passed') and then the run", async () => {
    const { run } = await ranRun(["echo one", "exit 2"]);
    expect((await runOf(run.id)).status).toBe("blocked");
    const res = await github("workflow_run", {
      workflow_run: { head_branch: run.protocol_name, conclusion: "success" },
    });
    expect(res.body).toMatchObject({ outcome: "success", action: "completed" });
    expect((await stepsOf(run.id)).map((s: { status: string }) => s.status)).toEqual([
      "completed",
      "completed",
    ]);
    expect((await runOf(run.id)).status).toBe("completed");
    expect(
      (await call("GET", `/protocols/${run.id}/events?limit=2`)).body.map(
        (e: { event_type: string; message: string }) => [e.event_type, e.message],
      ),
    ).toEqual([
      ["protocol_completed", "All 2 steps completed"],
      ["step_status_changed", "CI passed"],
    ]);
  });

  it("on CI success with TASKSGODZILLA_AUTO_QA_ON_CI queues QA of the latest step (run_qa, not the whole run)", async () => {
    const autoQa = await api.server({ webhookToken: HOOK, ci: { autoQa: true } });
    const { run } = await ranRun(["echo one", "exit 2"]);
    const [, failed] = await stepsOf(run.id);
    const res = await github(
      "status",
      { state: "success", branches: [{ name: run.protocol_name }] },
      { base: autoQa.url },
    );
    expect(res.body).toMatchObject({
      outcome: "success",
      action: "qa_enqueued",
      job: { deduplicated: false },
    });
    expect((await stepsOf(run.id)).find((s: { id: number }) => s.id === failed.id).status).toBe("needs_qa");
    const jobs = (await call("GET", "/queues/jobs?status=queued")).body;
    expect(jobs.map((j: { kind: string; payload: unknown }) => [j.kind, j.payload])).toEqual([
      ["run_qa", { protocol_run_id: run.id, step_run_id: failed.id }],
    ]);
    expect((await eventsOf(run.id, "qa_enqueued"))[0].metadata).toEqual({
      source: "ci_webhook",
      provider: "github",
      // the run's spec hash, also in metadata as the original's events carried it
      spec_hash: run.spec_hash,
    });
    await api.queue.cancel(res.body.job.id);
    await autoQa.close();
  });

  it("completes the run when its PR or MR is merged (pr_merged, mr_merged)", async () => {
    const { run: gh } = await ranRun(["exit 1"]);
    expect((await runOf(gh.id)).status).toBe("blocked");
    expect(
      (
        await github("pull_request", {
          pull_request: { head: { ref: gh.protocol_name }, merged: true, number: 12, state: "closed" },
        })
      ).body,
    ).toMatchObject({ outcome: "merged", action: "completed" });
    expect((await runOf(gh.id)).status).toBe("completed");
    expect((await eventsOf(gh.id, "pr_merged"))[0].metadata).toMatchObject({ pr_number: 12 });

    const { run: gl } = await api.newRun();
    expect(
      (
        await gitlab({
          object_kind: "merge_request",
          object_attributes: { state: "merged", source_branch: gl.protocol_name, iid: 4 },
        })
      ).body,
    ).toMatchObject({ outcome: "merged", action: "ignored" });
    expect((await runOf(gl.id)).status).toBe("planned");
    const { run: paused } = await api.newRun();
    await api.store.transitionProtocol(paused.id, "running", { eventType: "protocol_started", message: "x" });
    await api.store.transitionProtocol(paused.id, "paused", { eventType: "paused", message: "x" });
    expect(
      (
        await gitlab({
          object_kind: "merge_request",
          object_attributes: { state: "merged", source_branch: paused.protocol_name },
        })
      ).body,
    ).toMatchObject({ action: "completed" });
    expect(await eventsOf(paused.id, "mr_merged")).toHaveLength(1);
  });

  it("prefers the run of the project whose repository the payload names", async () => {
    const mine = gitRepo();
    execFileSync("git", ["-C", mine, "remote", "add", "origin", "git@github.com:acme/mine.git"]);
    const theirs = gitRepo();
    const mk = async (name: string, repo: string, gitUrl: string) => {
      const p = (await call("POST", "/projects", { name, git_url: gitUrl, local_path: repo })).body;
      return (
        await call("POST", `/projects/${p.id}/protocols`, {
          protocol_name: "0042-shared",
          spec: shellSpec("true"),
        })
      ).body;
    };
    const ours = await mk("mine", mine, mine);
    const newer = await mk("theirs", theirs, "https://github.com/acme/theirs.git");
    const payload = (full: string) => ({
      state: "pending",
      branches: [{ name: "0042-shared" }],
      repository: { full_name: full, clone_url: `https://github.com/${full}.git` },
    });
    expect((await github("status", payload("acme/mine"))).body.protocol_run_id).toBe(ours.id);
    expect((await github("status", payload("acme/theirs"))).body.protocol_run_id).toBe(newer.id);
    expect((await github("status", payload("acme/unknown"))).body.protocol_run_id).toBe(newer.id);
    expect(
      (await github("status", { state: "pending", branches: [{ name: "0042-shared" }] })).body
        .protocol_run_id,
    ).toBe(newer.id);
  });

  it("counts every outcome in the webhook metrics", async () => {
    const metrics = (await call("GET", "/metrics")).body as string;
    for (const status of ["received", "blocked", "completed", "recorded", "ignored", "ping"])
      expect(metrics, status).toMatch(
        new RegExp(`^webhooks_total\\{provider="(github|gitlab)",status="${status}"\\} [1-9]`, "m"),
      );
  });

  it("takes CI results from scripts/ci-report.sh, signed for GitHub and with the token for GitLab", async () => {
    const { run } = await api.newRun();
    // one step has run, and the run paused after it
    await call("POST", `/protocols/${run.id}/actions/run_next_step`);
    await api.drain();
    const script = join(import.meta.dirname, "../../scripts/ci-report.sh");
    const report = (state: string, env: Record<string, string>) =>
      promisify(execFile)("bash", [script, state], {
        env: {
          ...process.env,
          TASKSGODZILLA_API_BASE: api.base,
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
      JSON.parse((await report("running", { TASKSGODZILLA_CI_PROVIDER: "gitlab" })).stdout),
    ).toMatchObject({
      outcome: "running",
    });
    await expect(report("failure", { TASKSGODZILLA_WEBHOOK_TOKEN: "wrong" })).rejects.toThrow();
    expect(
      JSON.parse(
        (await report("failure", { TASKSGODZILLA_BRANCH: "", TASKSGODZILLA_PROTOCOL_RUN_ID: String(run.id) }))
          .stdout,
      ),
    ).toMatchObject({ protocol_run_id: run.id, action: "step_failed" });
    expect(await eventsOf(run.id, "ci_webhook")).toHaveLength(3);
  });
});
