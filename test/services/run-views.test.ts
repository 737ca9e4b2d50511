/**
 * The read use cases on real runs: a run planned by the replay engine into its own worktree, whose
 * steps (shell and replay) loop on a failing QA check, use tokens and block on a failing command;
 * then its situation, timeline, transcripts and diffs as the API, the console and the CLI show them.
 * And the run list's search, filters and pages over runs of two projects.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import { WorktreeGoneError } from "../../src/git/run-worktree.js";
import { ProtocolRunner } from "../../src/runner/protocol-runner.js";
import { createRunFromSpec } from "../../src/services/create-run.js";
import { planRun } from "../../src/services/plan-run.js";
import { listRuns } from "../../src/services/run-list.js";
import { runPrLink } from "../../src/services/run-pr-link.js";
import { runSituation } from "../../src/services/run-situation.js";
import { runTimeline } from "../../src/services/run-timeline.js";
import { approveStep } from "../../src/services/step-actions.js";
import { NoCheckpointsError, runDiff } from "../../src/services/step-diff.js";
import { readTranscript } from "../../src/services/step-transcript.js";
import { InvalidInputError } from "../../src/shared/errors.js";
import { EVENT } from "../../src/store/event-types.js";
import { openStore } from "../../src/store/open-store.js";
import type { ProtocolRun, StepRun, Store } from "../../src/store/types.js";
import { gitRepo } from "../scenario/harness.js";

const PLAN = {
  title: "Greeter",
  summary: "Write it, then ship it.",
  context: "A scratch repository.",
  steps: [
    { slug: "write", title: "Write greet.sh", kind: "work", prompt: "Create greet.sh." },
    { slug: "agent", title: "Let an agent look", kind: "work", prompt: "Look at it." },
    { slug: "ship", title: "Ship it", kind: "work", prompt: "Ship." },
  ],
};

/** Writes an attempt file each time; QA wants the second attempt, so the loop runs the step twice. */
const WRITE = [
  'n=$(( $(cat "$TASKSGODZILLA_PROTOCOL_DIR/attempts" 2>/dev/null || echo 0) + 1 ))',
  'echo $n > "$TASKSGODZILLA_PROTOCOL_DIR/attempts"',
  'echo "attempt $n" > "attempt-$n.txt"',
  'echo "wrote attempt $n"',
].join("\n");
const CHECK = "test -e attempt-2.txt || { echo 'line one'; echo 'attempt 2 is missing'; exit 3; }";

describe("read use cases on a planned run", () => {
  let store: Store;
  let data: string;
  let run: ProtocolRun;
  let steps: StepRun[];
  const step = (name: string) => steps.find((s) => s.stepName.endsWith(name))!;

  beforeAll(async () => {
    data = mkdtempSync(join(tmpdir(), "tgz-views-"));
    const env = { TASKSGODZILLA_DATA_DIR: data };
    vi.stubEnv("TASKSGODZILLA_DATA_DIR", data);
    store = await openStore({ sqlitePath: join(data, "db.sqlite") });
    const deps = {
      store,
      registry: createDefaultRegistry(),
      configFor: (dir: string) => loadConfig(dir, env),
    };
    const repo = gitRepo();
    const planned = await planRun(deps, {
      task: "Add a greeter",
      repoDir: repo,
      engine: "replay",
      inputs: { final: JSON.stringify(PLAN) },
    });
    // the steps do their work without an agent: shell commands and a replayed agent call
    const recording = join(planned.protocolRoot!, "agent.jsonl");
    writeFileSync(
      recording,
      [
        { type: "message", text: "Looking at greet.sh first." },
        { type: "tool", name: "read_file", detail: '{"path":"greet.sh"}' },
        { type: "tool_output", name: "read_file", text: "echo hello\n" },
        { type: "usage", usage: { input: 1500, output: 40 }, model: "gpt-test" },
        { type: "final", text: "Looks fine." },
      ]
        .map((e) => JSON.stringify(e))
        .join("\n"),
    );
    const spec = planned.templateConfig.protocol_spec as { steps: Record<string, unknown>[] };
    Object.assign(spec.steps[0]!, {
      engine_id: "shell",
      inputs: { command: WRITE },
      qa: { policy: "light", checks: [CHECK] },
      policies: [{ behavior: "loop", step_back: 0, max_iterations: 3 }],
    });
    Object.assign(spec.steps[1]!, { engine_id: "replay", inputs: { recording }, qa: { policy: "skip" } });
    Object.assign(spec.steps[2]!, {
      engine_id: "shell",
      inputs: { command: "echo shipping; echo 'no remote configured' >&2; exit 4" },
      qa: { policy: "skip" },
    });
    await store.updateProtocolRun(planned.id, {
      templateConfig: { ...planned.templateConfig, protocol_spec: spec },
    });
    run = await new ProtocolRunner(deps).run(planned.id);
    steps = await store.listStepRuns(run.id);
  });

  afterAll(async () => {
    vi.unstubAllEnvs();
    await store.close();
  });

  it("ran as the scenario says: looped once, then blocked on the failing command", () => {
    expect(run.status).toBe("blocked");
    expect(steps.map((s) => s.status)).toEqual(["completed", "completed", "failed"]);
  });

  it("says why the run is blocked and what to run next, as API actions and CLI commands", async () => {
    const s = await runSituation(store, run);
    expect(s).toMatchObject({
      status: "blocked",
      reason: "exec_failed",
      step: { id: step("ship").id, name: step("ship").stepName, status: "failed" },
      check: null,
      pr: null,
    });
    expect(s.headline).toBe(`Blocked: Step ${step("ship").stepName} failed (exec_failed)`);
    expect(s.error).toContain("command exited with code 4: no remote configured");
    expect(s.next).toEqual([
      { action: "retry_latest", step: null, command: `tgz run ${run.id}`, label: expect.any(String) },
      {
        action: "approve",
        step: { id: step("ship").id, name: step("ship").stepName },
        command: `tgz approve ${run.id} ${step("ship").stepName}`,
        label: expect.any(String),
      },
    ]);
  });

  it("shows the failing check's exit code and the end of its output when QA blocks the run", async () => {
    const repo = gitRepo();
    const { run: created } = await createRunFromSpec(
      store,
      {
        repoDir: repo,
        spec: {
          steps: [
            {
              id: "only",
              engine_id: "shell",
              inputs: { command: "echo hi" },
              qa: { policy: "light", checks: [`seq 1 3000; echo 'the end of it'; exit 7`] },
            },
          ],
        },
      },
      { registry: createDefaultRegistry(), configFor: (d) => loadConfig(d, {}) },
    );
    const blocked = await new ProtocolRunner({
      store,
      registry: createDefaultRegistry(),
      configFor: (d) => loadConfig(d, {}),
    }).run(created.id);
    const s = await runSituation(store, blocked);
    expect(s.reason).toBe("qa_failed");
    expect(s.check?.name).toBe(`check:seq 1 3000; echo 'the end of it'; exit 7`);
    expect(s.check?.output).toMatch(/2999\n3000\nthe end of it\n?$/);
    expect(s.check!.output.length).toBeLessThanOrEqual(2001);
    expect(s.error).toContain("QA fail");
  });

  it("lays out the timeline: attempts with durations, the loop, QA verdicts and tokens", async () => {
    const t = await runTimeline(store, run);
    expect(t.planning).toMatchObject({ outcome: "completed", engineId: "replay" });
    expect(t.planning!.durationMs).toBeGreaterThanOrEqual(0);
    const [write, agent, ship] = t.steps;
    expect(write).toMatchObject({ loops: 1, retries: 0, status: "completed" });
    expect(write!.attempts.map((a) => [a.attempt, a.outcome, a.qa?.verdict])).toEqual([
      [1, "failed", "fail"],
      [2, "completed", "pass"],
    ]);
    expect(write!.attempts[0]!.qa!.failedChecks).toEqual([
      { name: `check:${CHECK}`, detail: "line one\nattempt 2 is missing\n", exitCode: null },
    ]);
    for (const a of write!.attempts) {
      expect(a.durationMs).toBeGreaterThanOrEqual(a.engineMs!);
      expect(Date.parse(a.endedAt!)).toBeGreaterThanOrEqual(Date.parse(a.startedAt));
    }
    expect(write!.durationMs).toBe(write!.attempts[0]!.durationMs! + write!.attempts[1]!.durationMs!);
    expect(agent!.attempts).toHaveLength(1);
    expect(agent!.attempts[0]).toMatchObject({
      outcome: "completed",
      engineId: "replay",
      qa: { verdict: "skipped" },
    });
    expect(agent!.usage).toMatchObject({ total: 1540, input: 1500, output: 40, calls: 1, estimated: false });
    // no usage here carries a price: no cost is made up
    expect(agent!.usage.costUsd).toBeUndefined();
    expect(ship!.attempts[0]).toMatchObject({ outcome: "failed", error: expect.stringContaining("code 4") });
    expect(t.usage.total).toBe(1540 + (t.planning?.usage.total ?? 0));
    expect(t.endedAt).not.toBeNull();
    // the run's time starts when it was started, after its planning
    expect(Date.parse(t.startedAt!)).toBeGreaterThanOrEqual(Date.parse(t.planning!.endedAt!));
    expect(t.durationMs).toBe(Date.parse(t.endedAt!) - Date.parse(t.startedAt!));
  });

  it("adds up the cost the usage carries, and says when some of it is unknown", async () => {
    const scratch = await createRunFromSpec(
      store,
      { repoDir: gitRepo(), spec: { steps: [{ id: "a", engine_id: "shell", inputs: { command: "true" } }] } },
      { registry: createDefaultRegistry(), configFor: (d) => loadConfig(d, {}) },
    );
    const [a] = await store.listStepRuns(scratch.run.id);
    const ev = (
      eventType: typeof EVENT.stepStarted | typeof EVENT.stepCompleted | typeof EVENT.qaVerdict,
      metadata = {},
    ) =>
      store.appendEvent({
        protocolRunId: scratch.run.id,
        stepRunId: a!.id,
        eventType,
        message: eventType,
        metadata,
      });
    await ev(EVENT.stepStarted, { attempt: 1 });
    await ev(EVENT.stepCompleted, {
      usage: { input: 10, output: 5, total: 15, cost_usd: 0.25, cost_partial: false },
    });
    await ev(EVENT.qaVerdict, {
      verdict: "pass",
      usage: [
        {
          input: 3,
          output: 1,
          total: 4,
          cost_usd: null,
          cost_partial: true,
          unknown_cost_models: ["mystery"],
        },
      ],
    });
    const t = await runTimeline(store, scratch.run);
    expect(t.steps[0]!.usage).toMatchObject({
      total: 19,
      costUsd: 0.25,
      costPartial: true,
      unknownCostModels: ["mystery"],
    });
  });

  it("renders a step's transcripts in attempt and phase order, and the planner's", () => {
    const write = readTranscript(run, step("write"));
    expect(write.calls.map((c) => [c.phase, c.attempt, c.call])).toEqual([
      ["exec", 1, 1],
      ["exec", 2, 1],
    ]);
    expect(write.calls[1]!.entries).toContainEqual({ kind: "final", text: "wrote attempt 2" });
    const agent = readTranscript(run, step("agent"));
    expect(agent.calls[0]!.entries.slice(0, 5)).toEqual([
      { kind: "message", text: "Looking at greet.sh first." },
      { kind: "tool", name: "read_file", detail: '{"path":"greet.sh"}' },
      { kind: "tool_output", name: "read_file", text: "echo hello\n", isError: false },
      { kind: "usage", input: 1500, output: 40, cachedInput: 0, estimated: false, model: "gpt-test" },
      { kind: "final", text: "Looks fine." },
    ]);
    expect(agent.calls[0]!.entries.at(-1)).toMatchObject({ kind: "result", ok: true });
    const ship = readTranscript(run, step("ship"));
    expect(ship.calls[0]!.entries).toContainEqual({ kind: "stderr", text: "no remote configured\n" });
    expect(ship.calls[0]!.entries.at(-1)).toMatchObject({
      kind: "result",
      ok: false,
      exitCode: 4,
      error: expect.stringContaining("crash: command exited with code 4"),
    });
    const planning = readTranscript(run, null);
    expect(planning.calls.map((c) => [c.phase, c.attempt])).toEqual([["plan", 1]]);
    expect(planning.calls[0]!.entries).toContainEqual({ kind: "final", text: JSON.stringify(PLAN) });
  });

  it("reads transcripts only inside the protocol folder: no symlink is followed", () => {
    const secret = join(mkdtempSync(join(tmpdir(), "tgz-secret-")), "secret.jsonl");
    writeFileSync(secret, `${JSON.stringify({ type: "message", text: "secret" })}\n`);
    const logs = join(run.protocolRoot!, "logs");
    symlinkSync(secret, join(logs, `${step("write").stepName}.exec.9.jsonl`));
    expect(readTranscript(run, step("write")).calls.map((c) => c.attempt)).toEqual([1, 2]);
    // a logs folder swapped for a link out of the protocol folder is not read at all
    const moved = `${logs}-real`;
    execFileSync("mv", [logs, moved]);
    symlinkSync(join(secret, ".."), logs);
    try {
      expect(readTranscript(run, step("write"))).toEqual({
        calls: [],
        note: `the logs folder of run ${run.id} resolves outside its protocol folder`,
      });
    } finally {
      rmSync(logs);
      execFileSync("mv", [moved, logs]);
    }
    expect(() => readTranscript({ ...run, id: run.id + 100 }, step("write"))).toThrow(InvalidInputError);
  });

  it("diffs a step from its checkpoints and the whole run from its start", async () => {
    const write = await runDiff(store, run, step("write"), data);
    expect(write.files).toEqual(["attempt-2.txt"]);
    expect(write.patch).toContain("+++ b/attempt-2.txt");
    expect(write.to).toBe(step("write").runtimeState.checkpoint);
    const whole = await runDiff(store, run, null, data);
    expect(whole.to).toBeNull();
    expect(whole.files).toEqual(["attempt-2.txt"]);
    // a run in a checkout of the user's has no checkpoints
    const [plain] = (await store.listProtocolRuns()).filter((r) => r.id !== run.id);
    await expect(runDiff(store, plain!, null, data)).rejects.toBeInstanceOf(NoCheckpointsError);
  });

  it("links the PR the run opened, and offers to open one only while there is none", async () => {
    expect(await runPrLink(store, run.id)).toBeNull();
    await approveStep({ store, source: "cli" }, step("ship").id);
    const done = await store.getProtocolRun(run.id);
    expect(done.status).toBe("completed");
    expect((await runSituation(store, done)).next.map((n) => [n.action, n.command])).toEqual([
      [null, `tgz diff ${run.id}`],
      ["open_pr", `tgz pr ${run.id}`],
    ]);
    await store.appendEvent({
      protocolRunId: run.id,
      eventType: EVENT.prOpened,
      message: "PR opened",
      metadata: { url: "https://github.com/acme/demo/pull/7", number: 7, via: "cli", existed: false },
    });
    expect(await runPrLink(store, run.id)).toMatchObject({
      url: "https://github.com/acme/demo/pull/7",
      number: 7,
    });
    const after = await runSituation(store, done);
    expect(after.pr).toEqual({ url: "https://github.com/acme/demo/pull/7", number: 7 });
    expect(after.next).toEqual([]);
  });

  it("says the worktree is gone once it was pruned", async () => {
    const gone = { ...run, worktreePath: join(data, "worktrees", "nowhere") };
    mkdirSync(join(data, "worktrees"), { recursive: true });
    await expect(runDiff(store, gone, null, data)).rejects.toBeInstanceOf(WorktreeGoneError);
  });
});

describe("the run list", () => {
  let store: Store;
  const ids: Record<string, number> = {};

  beforeAll(async () => {
    store = await openStore({ sqlitePath: join(mkdtempSync(join(tmpdir(), "tgz-list-")), "db.sqlite") });
    const alpha = await store.createProject({ name: "alpha", gitUrl: "/a" });
    const beta = await store.createProject({ name: "beta", gitUrl: "/b" });
    const make = async (projectId: number, name: string, description: string | null, status?: "planned") => {
      const run = await store.createProtocolRun({ projectId, protocolName: name, description, status });
      ids[name] = run.id;
    };
    await make(alpha.id, "0001-greeter", "Add a greeter script", "planned");
    await make(alpha.id, "0002-docs", "Write the README");
    await make(beta.id, "0001-login", "Fix the LOGIN page", "planned");
    await make(beta.id, "0002-100%_done", null);
    await make(beta.id, "0003-greeting-card", "Cards");
  });
  afterAll(() => store.close());

  const names = async (q: Parameters<typeof listRuns>[1]) =>
    (await listRuns(store, q)).items.map((i) => i.run.protocolName);

  it("lists every run newest first with its project's name", async () => {
    const list = await listRuns(store);
    expect(list.items.map((i) => [i.run.protocolName, i.projectName])).toEqual([
      ["0003-greeting-card", "beta"],
      ["0002-100%_done", "beta"],
      ["0001-login", "beta"],
      ["0002-docs", "alpha"],
      ["0001-greeter", "alpha"],
    ]);
    expect(list).toMatchObject({ total: 5, nextCursor: null });
  });

  it("searches names and descriptions case-insensitively, every word, with LIKE's wildcards taken literally", async () => {
    expect(await names({ search: "greet" })).toEqual(["0003-greeting-card", "0001-greeter"]);
    expect(await names({ search: "login" })).toEqual(["0001-login"]);
    expect(await names({ search: "page fix" })).toEqual(["0001-login"]);
    expect(await names({ search: "greet script" })).toEqual(["0001-greeter"]);
    expect(await names({ search: "100%_" })).toEqual(["0002-100%_done"]);
    expect(await names({ search: "%" })).toEqual(["0002-100%_done"]);
    expect(await names({ search: "_" })).toEqual(["0002-100%_done"]);
    expect(await names({ search: "   " })).toHaveLength(5);
  });

  it("filters by status and project, and pages with a cursor", async () => {
    expect(await names({ statuses: ["planned"] })).toEqual(["0001-login", "0001-greeter"]);
    const alpha = (await store.listProjects()).find((p) => p.name === "alpha")!;
    expect(await names({ projectIds: [alpha.id], statuses: ["pending"] })).toEqual(["0002-docs"]);
    const first = await listRuns(store, { limit: 2 });
    expect(first.items.map((i) => i.run.id)).toEqual([ids["0003-greeting-card"], ids["0002-100%_done"]]);
    expect(first).toMatchObject({ total: 5, nextCursor: ids["0002-100%_done"] });
    const second = await listRuns(store, { limit: 2, cursor: first.nextCursor! });
    expect(second.items.map((i) => i.run.protocolName)).toEqual(["0001-login", "0002-docs"]);
    const third = await listRuns(store, { limit: 2, cursor: second.nextCursor! });
    expect(third.items.map((i) => i.run.protocolName)).toEqual(["0001-greeter"]);
    expect(third.nextCursor).toBeNull();
    expect(await names({ hiddenProjectIds: [alpha.id] })).not.toContain("0002-docs");
  });

  it("refuses a bad query with the field named", async () => {
    await expect(listRuns(store, { statuses: ["nope"] })).rejects.toThrow(
      /^status: nope is not a run status/,
    );
    await expect(listRuns(store, { limit: 0 })).rejects.toThrow(
      /^limit: 0 is not a whole number from 1 to 500/,
    );
    await expect(listRuns(store, { limit: 501 })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(listRuns(store, { cursor: -1 })).rejects.toThrow(/^cursor: -1 is not a run id/);
  });
});
