/**
 * Every user action through each surface that exposes it — the HTTP API (its jobs run by a real
 * worker), the built `tgz` CLI (which runs the same jobs in its own process) and the worker's job
 * handlers — on one store: the same state gives the same result, and the same refusal with the same
 * message. Requires `npm run build`.
 */
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rootWith } from "../codemachine/packages.js";
import { gitRepo } from "../scenario/harness.js";
import { type Api, shellSpec, startApi } from "../server/api-harness.js";

const BIN = join(import.meta.dirname, "../../dist/cli/main.js");
const dataDir = mkdtempSync(join(tmpdir(), "tgz-surfaces-"));
let api: Api;
const call: Api["call"] = (...args) => api.call(...args);

beforeAll(async () => {
  process.env.TASKSGODZILLA_DATA_DIR = dataDir;
  api = await startApi();
});
afterAll(async () => {
  await api.close();
});

/** The CLI on the API's database. */
function tgz(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("node", [BIN, "--db", api.dbPath!, ...args], {
      env: { ...process.env, TASKSGODZILLA_DATA_DIR: dataDir, TASKSGODZILLA_REDIS_URL: "" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const runOf = async (id: number) => (await call("GET", `/protocols/${id}`)).body;
const stepsOf = async (id: number) => (await call("GET", `/protocols/${id}/steps`)).body;

/** What an action can change: the run's status, its steps, and its events by type. */
async function state(id: number) {
  const events = (await call("GET", `/protocols/${id}/events?after=0`)).body as { event_type: string }[];
  return {
    status: (await runOf(id)).status,
    steps: (await stepsOf(id)).map((s: { step_name: string; status: string; retries: number }) => [
      s.step_name,
      s.status,
      s.retries,
    ]),
    events: events.map((e) => e.event_type),
  };
}

/** A run of shell steps in a project of its own (its own repository). */
async function newRun(commands: string[]) {
  return (await api.newRun(commands)).run as { id: number; protocol_name: string };
}

/** A run that went as far as it could: completed, or blocked on a failing step. */
async function ranRun(commands: string[]) {
  const run = await newRun(commands);
  await call("POST", `/protocols/${run.id}/actions/start`);
  await api.drain();
  return run;
}

type Surface = "api" | "cli";

/** The CLI command and arguments of an API action. */
const CLI: Record<string, string> = {
  start: "start",
  pause: "pause",
  resume: "resume",
  cancel: "cancel",
  retry_latest: "retry",
  run_next_step: "next",
  open_pr: "pr",
  run: "step",
  run_qa: "qa",
  approve: "approve",
};

/** One action through one surface; the API's jobs are then run by a worker, the CLI's ran in it. */
async function act(
  surface: Surface,
  action: string,
  runId: number,
  step?: { id: number; step_name: string },
) {
  if (surface === "api") {
    const path = step ? `/steps/${step.id}/actions/${action}` : `/protocols/${runId}/actions/${action}`;
    const reply = await call("POST", path);
    await api.drain();
    return reply.status === 200
      ? { ok: true, message: reply.body.message as string }
      : { ok: false, status: reply.status, code: reply.body.error, message: reply.body.detail as string };
  }
  const r = await tgz(CLI[action]!, String(runId), ...(step ? [step.step_name] : []), "--json");
  if (r.code === 2) {
    const message = r.stderr.replace(/^tgz: /, "").trimEnd();
    return { ok: false, status: 409, code: undefined, message };
  }
  return { ok: true, message: JSON.parse(r.stdout).message as string };
}

describe("the same refusal, with the same message, through the API and the CLI", () => {
  const refusals: {
    name: string;
    action: string;
    setup: () => Promise<{ runId: number; step?: { id: number; step_name: string } }>;
    code: string;
    message: RegExp;
  }[] = [
    {
      name: "start on a completed run",
      action: "start",
      setup: async () => ({ runId: (await ranRun(["true"])).id }),
      code: "conflict",
      message: /^protocol run \d+ is completed; start needs a pending, planned or paused run$/,
    },
    {
      name: "resume on a planned run",
      action: "resume",
      setup: async () => ({ runId: (await newRun(["true"])).id }),
      code: "conflict",
      message: /^protocol run \d+ is planned, not paused$/,
    },
    {
      name: "pause on a completed run",
      action: "pause",
      setup: async () => ({ runId: (await ranRun(["true"])).id }),
      code: "conflict",
      message: /^protocol run \d+ is completed; pause needs a planned or running run$/,
    },
    {
      name: "cancel on a completed run",
      action: "cancel",
      setup: async () => ({ runId: (await ranRun(["true"])).id }),
      code: "conflict",
      message: /^protocol run \d+ is completed; there is nothing to cancel$/,
    },
    {
      name: "retry with no failed step",
      action: "retry_latest",
      setup: async () => ({ runId: (await ranRun(["true"])).id }),
      code: "no_failed_step",
      message: /^protocol run \d+ has no failed or blocked step to retry$/,
    },
    {
      name: "next with no runnable step",
      action: "run_next_step",
      setup: async () => ({ runId: (await ranRun(["true"])).id }),
      code: "no_runnable_step",
      message: /^protocol run \d+ has no pending, blocked or failed step to run$/,
    },
    {
      name: "open a PR of a run without a branch of its own",
      action: "open_pr",
      setup: async () => ({ runId: (await newRun(["true"])).id }),
      code: "no_branch",
      message: /^run \d+ works in a checkout of yours, not on a branch of its own/,
    },
    {
      name: "run a step that completed",
      action: "run",
      setup: async () => {
        const run = await ranRun(["exit 0", "exit 3"]);
        return { runId: run.id, step: (await stepsOf(run.id))[0] };
      },
      code: "conflict",
      message: /^step \d+ is completed; only a pending, blocked or failed step can run$/,
    },
    {
      name: "QA of a step that has not run",
      action: "run_qa",
      setup: async () => {
        const run = await newRun(["true"]);
        return { runId: run.id, step: (await stepsOf(run.id))[0] };
      },
      code: "conflict",
      message: /^step \d+ has not run yet; there is nothing for QA to check$/,
    },
    {
      name: "approve a cancelled step",
      action: "approve",
      setup: async () => {
        const run = await newRun(["true"]);
        await call("POST", `/protocols/${run.id}/actions/cancel`);
        return { runId: run.id, step: (await stepsOf(run.id))[0] };
      },
      code: "conflict",
      message: /^step \d+ is cancelled; it cannot be approved$/,
    },
    {
      name: "a step run while the run runs by itself",
      action: "run",
      setup: async () => {
        const run = await newRun(["true", "true"]);
        await call("POST", `/protocols/${run.id}/actions/start`);
        const queued = (await call("GET", "/queues/jobs?status=queued")).body as { id: string }[];
        for (const j of queued) await api.queue.cancel(j.id);
        return { runId: run.id, step: (await stepsOf(run.id))[1] };
      },
      code: "conflict",
      message: /^protocol run \d+ is running and advances by itself; pause it first to run step s1$/,
    },
    {
      name: "start where this machine has no checkout",
      action: "start",
      setup: async () => {
        const remote = (
          await call("POST", "/projects", { name: "remote", git_url: "https://example.com/acme/x.git" })
        ).body;
        const run = (
          await call("POST", `/projects/${remote.id}/protocols`, {
            protocol_name: "r",
            spec: shellSpec("true"),
          })
        ).body;
        return { runId: run.id };
      },
      code: "repo_missing",
      message:
        /^project \d+ \(https:\/\/example\.com\/acme\/x\.git\) has no local checkout; register it with local_path$/,
    },
  ];

  for (const c of refusals) {
    it(c.name, async () => {
      const { runId, step } = await c.setup();
      const before = await state(runId);
      // the rules list it as not allowed, on the run or the step
      const allowed = step
        ? (await stepsOf(runId)).find((s: { id: number }) => s.id === step.id).allowed_actions
        : (await runOf(runId)).allowed_actions;
      expect(allowed).not.toContain(c.action);
      const viaApi = await act("api", c.action, runId, step);
      const viaCli = await act("cli", c.action, runId, step);
      expect(viaApi).toMatchObject({
        ok: false,
        status: 409,
        code: c.code,
        message: expect.stringMatching(c.message),
      });
      expect(viaCli.message).toBe(viaApi.message);
      expect(viaCli.ok).toBe(false);
      expect(await state(runId)).toEqual(before);
    });
  }
});

describe("the same result through the API (a worker runs its job) and the CLI (it runs the job itself)", () => {
  const cases: {
    name: string;
    action: string;
    commands: string[];
    /** Brings the run to the state the action starts from. */
    prepare?: (runId: number) => Promise<void>;
    /** The step the action is about (step actions). */
    step?: number;
    message: RegExp;
    after: { status: string; steps: [string, string, number][] };
  }[] = [
    {
      name: "start a planned run: it runs to the end",
      action: "start",
      commands: ["echo one", "echo two"],
      message: /^run queued$/,
      after: {
        status: "completed",
        steps: [
          ["s0", "completed", 0],
          ["s1", "completed", 0],
        ],
      },
    },
    {
      name: "pause a planned run",
      action: "pause",
      commands: ["true"],
      message: /^paused$/,
      after: { status: "paused", steps: [["s0", "pending", 0]] },
    },
    {
      name: "resume a paused run",
      action: "resume",
      commands: ["true"],
      prepare: async (id) => void (await call("POST", `/protocols/${id}/actions/pause`)),
      message: /^resume queued$/,
      after: { status: "completed", steps: [["s0", "completed", 0]] },
    },
    {
      name: "cancel a run with its pending steps",
      action: "cancel",
      commands: ["true", "true"],
      message: /^cancelled$/,
      after: {
        status: "cancelled",
        steps: [
          ["s0", "cancelled", 0],
          ["s1", "cancelled", 0],
        ],
      },
    },
    {
      name: "retry the failed step, which passes the second time, and go on",
      action: "retry_latest",
      commands: ["test -f tried || { touch tried; exit 3; }", "echo after"],
      prepare: async (id) => {
        await call("POST", `/protocols/${id}/actions/start`);
        await api.drain();
      },
      message: /^retry of s0 queued$/,
      after: {
        status: "completed",
        steps: [
          ["s0", "completed", 1],
          ["s1", "completed", 0],
        ],
      },
    },
    {
      name: "run the next step alone, then hold the run",
      action: "run_next_step",
      commands: ["echo one", "echo two"],
      message: /^s0 queued$/,
      after: {
        status: "paused",
        steps: [
          ["s0", "completed", 0],
          ["s1", "pending", 0],
        ],
      },
    },
    {
      name: "run a given step alone",
      action: "run",
      commands: ["echo one", "echo two"],
      step: 1,
      message: /^s1 queued$/,
      after: {
        status: "paused",
        steps: [
          ["s0", "pending", 0],
          ["s1", "completed", 0],
        ],
      },
    },
    {
      name: "run QA again on a failed step's outputs (the step is not executed again)",
      action: "run_qa",
      commands: ["echo one", "exit 4"],
      prepare: async (id) => {
        await call("POST", `/protocols/${id}/actions/start`);
        await api.drain();
      },
      step: 1,
      message: /^QA of s1 queued$/,
      after: {
        status: "blocked",
        steps: [
          ["s0", "completed", 0],
          ["s1", "failed", 0],
        ],
      },
    },
    {
      name: "approve a failed step; the run completes with it",
      action: "approve",
      commands: ["exit 3"],
      prepare: async (id) => {
        await call("POST", `/protocols/${id}/actions/start`);
        await api.drain();
      },
      step: 0,
      message: /^s0 approved$/,
      after: { status: "completed", steps: [["s0", "completed", 0]] },
    },
  ];

  for (const c of cases) {
    it(c.name, async () => {
      const results: Record<Surface, unknown> = { api: undefined, cli: undefined };
      for (const surface of ["api", "cli"] as const) {
        const run = await newRun(c.commands);
        await c.prepare?.(run.id);
        const step = c.step === undefined ? undefined : (await stepsOf(run.id))[c.step];
        const before = (await state(run.id)).events.length;
        const done = await act(surface, c.action, run.id, step);
        expect(done, surface).toMatchObject({ ok: true, message: expect.stringMatching(c.message) });
        const after = await state(run.id);
        expect({ status: after.status, steps: after.steps }, surface).toEqual(c.after);
        // the same moves and events, whichever surface asked (the source aside)
        results[surface] = { message: done.message, events: after.events.slice(before) };
      }
      expect(results.cli).toEqual(results.api);
    });
  }
});

describe("use cases the worker's jobs carry out", () => {
  const plan = JSON.stringify({
    title: "Greeter",
    summary: "Write it.",
    context: "none",
    steps: [{ slug: "write", title: "Write greet.sh", kind: "work", prompt: "Create greet.sh." }],
  });

  it("plan: a plan job and `tgz plan --run-id` plan a run described through the API the same way", async () => {
    const planned: Record<string, unknown> = {};
    for (const surface of ["worker", "cli"] as const) {
      const repo = gitRepo();
      const project = (await call("POST", "/projects", { name: surface, git_url: repo, local_path: repo }))
        .body;
      const run = (
        await call("POST", `/projects/${project.id}/protocols`, {
          protocol_name: "0001-greeter",
          description: "Add a greeter",
        })
      ).body;
      expect(run.allowed_actions).toContain("start");
      if (surface === "worker") {
        await api.queue.enqueue("plan", {
          protocol_run_id: run.id,
          engine: "replay",
          inputs: { final: plan },
        });
        await api.drain();
      } else {
        const r = await tgz(
          "plan",
          "--run-id",
          String(run.id),
          "--engine",
          "replay",
          "--input",
          `final=${plan}`,
        );
        expect(r.code, r.stderr).toBe(0);
      }
      planned[surface] = {
        status: (await runOf(run.id)).status,
        steps: (await stepsOf(run.id)).map((s: { step_name: string; status: string }) => [
          s.step_name,
          s.status,
        ]),
        usage: (await call("GET", `/protocols/${run.id}/usage`)).body.by_phase.plan.calls,
      };
    }
    expect(planned.worker).toEqual({ status: "planned", steps: [["01-write", "pending"]], usage: 1 });
    expect(planned.cli).toEqual(planned.worker);
  });

  it("import: the API's queued import (an import job), the API's import now and `tgz import` create the same run", async () => {
    const imported: Record<string, unknown> = {};
    for (const surface of ["worker", "api", "cli"] as const) {
      const workspace = rootWith({ "README.md": "# repo\n" });
      const project = (
        await call("POST", "/projects", { name: surface, git_url: workspace, local_path: workspace })
      ).body;
      let runId: number;
      if (surface === "cli") {
        const r = await tgz("import", "codemachine", workspace, "--repo", workspace, "--json");
        expect(r.code, r.stderr).toBe(0);
        runId = JSON.parse(r.stdout).run_id;
      } else {
        const reply = await call("POST", `/projects/${project.id}/codemachine/import`, {
          protocol_name: "w",
          workspace_path: workspace,
          enqueue: surface === "worker",
        });
        expect(reply.status, JSON.stringify(reply.body)).toBe(200);
        runId = reply.body.protocol_run.id;
        await api.drain();
      }
      imported[surface] = {
        status: (await runOf(runId)).status,
        steps: (await stepsOf(runId)).map((s: { step_name: string }) => s.step_name),
      };
    }
    expect(imported.worker).toEqual({ status: "planned", steps: ["a"] });
    expect(imported.api).toEqual(imported.worker);
    expect(imported.cli).toEqual(imported.worker);
  });
});
