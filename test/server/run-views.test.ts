/**
 * The read routes over real HTTP, every reply checked against its documented schema: the run list
 * (search, filters, pages, guarded projects left out), the run detail's situation and PR link, the
 * timeline, a step's transcript and diff (a run planned by the replay engine into its own
 * worktree), and the errors that name what is wrong.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import { ProtocolRunner } from "../../src/runner/protocol-runner.js";
import { planRun } from "../../src/services/plan-run.js";
import { EVENT } from "../../src/store/event-types.js";
import { gitRepo } from "../scenario/harness.js";
import { type Api, startApi } from "./api-harness.js";

let api: Api;
const call: Api["call"] = (...args) => api.call(...args);
let data: string;

beforeAll(async () => {
  data = mkdtempSync(join(tmpdir(), "tgz-api-views-"));
  vi.stubEnv("TASKSGODZILLA_DATA_DIR", data);
  api = await startApi();
});
afterAll(async () => {
  vi.unstubAllEnvs();
  await api.close();
});

describe("GET /protocols", () => {
  let demo: { project: any; run: any };
  let other: any;
  beforeAll(async () => {
    demo = await api.newRun(["echo one"]);
    await call("POST", `/projects/${demo.project.id}/protocols`, {
      protocol_name: "docs",
      description: "Write the README",
    });
    other = (
      await call("POST", "/projects", {
        name: "guarded",
        git_url: "git@example.com:acme/g.git",
        secrets: { api_token: "proj-token" },
      })
    ).body;
    await call(
      "POST",
      `/projects/${other.id}/protocols`,
      { protocol_name: "secret-work", description: "hidden" },
      { "x-project-token": "proj-token" },
    );
  });

  it("lists runs newest first with their project's name, leaving out guarded projects without their token", async () => {
    const all = await call("GET", "/protocols");
    expect(all.status).toBe(200);
    expect(all.body.runs.map((r: any) => [r.protocol_name, r.project_name])).toEqual([
      ["0002-docs", "demo"],
      ["0001-demo", "demo"],
    ]);
    expect(all.body).toMatchObject({ total: 2, next_cursor: null });
    expect(all.body.runs[1].allowed_actions).toEqual(["start", "pause", "cancel", "run_next_step"]);
    const withToken = await call("GET", "/protocols", undefined, { "x-project-token": "proj-token" });
    expect(withToken.body.runs.map((r: any) => r.protocol_name)).toContain("0001-secret-work");
    expect((await call("GET", `/protocols?project_id=${other.id}`)).status).toBe(403);
  });

  it("searches, filters by status and project, and pages with next_cursor", async () => {
    const names = async (q: string) =>
      (await call("GET", `/protocols?${q}`)).body.runs.map((r: any) => r.protocol_name);
    expect(await names("search=readme")).toEqual(["0002-docs"]);
    expect(await names("status=planned")).toEqual(["0001-demo"]);
    expect(await names("status=planned&status=pending")).toEqual(["0002-docs", "0001-demo"]);
    expect(await names(`project_id=${demo.project.id}&search=demo`)).toEqual(["0001-demo"]);
    const first = await call("GET", "/protocols?limit=1");
    expect(first.body).toMatchObject({ total: 2, next_cursor: first.body.runs[0].id });
    const second = await call("GET", `/protocols?limit=1&cursor=${first.body.next_cursor}`);
    expect(second.body.runs.map((r: any) => r.protocol_name)).toEqual(["0001-demo"]);
    expect(second.body.next_cursor).toBeNull();
  });

  it("names the bad parameter", async () => {
    expect(await call("GET", "/protocols?status=nope")).toMatchObject({
      status: 400,
      body: { error: "invalid_input", detail: expect.stringMatching(/^status: nope is not a run status/) },
    });
    expect((await call("GET", "/protocols?limit=0")).body.detail).toMatch(/^limit: /);
    expect((await call("GET", "/protocols?cursor=x")).body.detail).toMatch(/^cursor: /);
    expect((await call("GET", "/protocols?project_id=999")).status).toBe(404);
  });
});

describe("a run's situation, timeline, transcripts and diffs", () => {
  let runId = 0;
  let steps: any[] = [];
  beforeAll(async () => {
    const repo = gitRepo();
    const deps = {
      store: api.store,
      registry: createDefaultRegistry(),
      configFor: (dir: string) => loadConfig(dir, { TASKSGODZILLA_DATA_DIR: data }),
    };
    const plan = {
      title: "Greeter",
      summary: "Write it.",
      context: "none",
      steps: [
        { slug: "write", title: "Write", kind: "work", prompt: "Write greet.sh." },
        { slug: "check", title: "Check", kind: "work", prompt: "Check it." },
      ],
    };
    const planned = await planRun(deps, {
      task: "Add a greeter",
      repoDir: repo,
      engine: "replay",
      inputs: { final: JSON.stringify(plan) },
    });
    const spec = planned.templateConfig.protocol_spec as { steps: Record<string, unknown>[] };
    Object.assign(spec.steps[0]!, {
      engine_id: "shell",
      inputs: { command: "printf 'echo hello\\n' > greet.sh; echo wrote greet.sh" },
      qa: { policy: "skip" },
    });
    Object.assign(spec.steps[1]!, {
      engine_id: "shell",
      inputs: { command: "echo checking" },
      qa: { policy: "light", checks: ["echo 'greet.sh says nothing'; exit 5"] },
    });
    await api.store.updateProtocolRun(planned.id, {
      templateConfig: { ...planned.templateConfig, protocol_spec: spec },
    });
    await new ProtocolRunner(deps).run(planned.id);
    runId = planned.id;
    steps = (await call("GET", `/protocols/${runId}/steps`)).body;
  });

  it("GET /protocols/{id} says why the run is blocked, the failing check and what to run next", async () => {
    const { status, body } = await call("GET", `/protocols/${runId}`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ status: "blocked", project_name: expect.any(String), pr_url: null });
    expect(body.situation).toMatchObject({
      status: "blocked",
      // planned steps loop on a failed QA: the check failed on every attempt
      reason: "loop_limit_reached",
      step: { id: steps[1].id, name: steps[1].step_name, status: "failed" },
      check: {
        name: "check:echo 'greet.sh says nothing'; exit 5",
        exit_code: null,
        output: "greet.sh says nothing\n",
      },
      pr: null,
    });
    expect(body.situation.next[0]).toEqual({
      action: "retry_latest",
      step: null,
      command: `tgz run ${runId}`,
      label: expect.any(String),
    });
    // every action named is one the run or its step allows now
    for (const n of body.situation.next)
      if (n.action)
        expect(
          n.step ? steps.find((s) => s.id === n.step.id).allowed_actions : body.allowed_actions,
        ).toContain(n.action);
  });

  it("GET /protocols/{id} carries the PR the run opened", async () => {
    await api.store.appendEvent({
      protocolRunId: runId,
      eventType: EVENT.prOpened,
      message: "PR opened",
      metadata: { url: "https://github.com/acme/demo/pull/3", number: 3 },
    });
    const { body } = await call("GET", `/protocols/${runId}`);
    expect(body.pr_url).toBe("https://github.com/acme/demo/pull/3");
    expect(body.situation.pr).toEqual({ url: "https://github.com/acme/demo/pull/3", number: 3 });
  });

  it("GET /protocols/{id}/timeline gives each step's attempts, verdicts and durations", async () => {
    const { status, body } = await call("GET", `/protocols/${runId}/timeline`);
    expect(status).toBe(200);
    expect(body.planning).toMatchObject({ outcome: "completed", engine_id: "replay" });
    expect(body.steps.map((s: any) => [s.step_name, s.attempts.map((a: any) => a.qa?.verdict)])).toEqual([
      [steps[0].step_name, ["skipped"]],
      [steps[1].step_name, ["fail", "fail", "fail"]],
    ]);
    expect(body.steps[1]).toMatchObject({ loops: 2, retries: 0 });
    expect(body.steps[1].attempts[0].qa.failed_checks[0]).toMatchObject({
      detail: "greet.sh says nothing\n",
    });
    expect(body.steps[0].duration_ms).toBeGreaterThanOrEqual(0);
  });

  it("GET /steps/{id}/transcript and /protocols/{id}/transcript render the engine's calls", async () => {
    const { status, body } = await call("GET", `/steps/${steps[0].id}/transcript`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ protocol_run_id: runId, step_run_id: steps[0].id, note: null });
    expect(body.calls[0]).toMatchObject({
      phase: "exec",
      attempt: 1,
      call: 1,
      rerun: false,
      truncated_bytes: 0,
    });
    expect(body.calls[0].entries).toContainEqual({ kind: "final", text: "wrote greet.sh" });
    expect(body.calls[0].entries.at(-1)).toMatchObject({ kind: "result", ok: true, exit_code: 0 });
    const planning = (await call("GET", `/protocols/${runId}/transcript`)).body;
    expect(planning.calls.map((c: any) => c.phase)).toEqual(["plan"]);
    expect((await call("GET", "/steps/99999/transcript")).status).toBe(404);
  });

  it("GET /steps/{id}/diff and /protocols/{id}/diff give the unified diff from the checkpoints", async () => {
    const { status, body } = await call("GET", `/steps/${steps[0].id}/diff`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ protocol_run_id: runId, step_run_id: steps[0].id, files: ["greet.sh"] });
    expect(body.patch).toMatch(/^diff --git a\/greet.sh b\/greet.sh\n[\s\S]*\+echo hello\n$/);
    expect(body.to).toEqual(expect.any(String));
    const whole = (await call("GET", `/protocols/${runId}/diff`)).body;
    expect(whole).toMatchObject({ step_run_id: null, to: null, files: ["greet.sh"] });
  });

  it("answers 409 no_checkpoints for a run in a checkout of the user's", async () => {
    const { run } = await api.newRun(["echo one"]);
    const [first] = (await call("GET", `/protocols/${run.id}/steps`)).body;
    expect(await call("GET", `/steps/${first.id}/diff`)).toMatchObject({
      status: 409,
      body: { error: "no_checkpoints", detail: expect.stringContaining("not a protocol worktree") },
    });
  });
});
