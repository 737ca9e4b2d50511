/** tgz plan, run, worktree, diff, pr and spec audit, as a user runs them, on temp repositories. */
import { execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { isInside } from "../../src/shared/paths.js";
import { openStore } from "../../src/store/open-store.js";
import { gitRepo } from "../scenario/harness.js";

const BIN = join(import.meta.dirname, "../../dist/cli/main.js");
const exec = promisify(execFile);
let dataDir: string;

async function tgz(env: NodeJS.ProcessEnv, ...args: string[]) {
  try {
    const r = await exec("node", [BIN, ...args], {
      env: { ...process.env, TASKSGODZILLA_DATA_DIR: dataDir, ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const git = (cwd: string, ...args: string[]) => execFileSync("git", args, { cwd, encoding: "utf8" }).trim();
const store = () => openStore({ sqlitePath: join(dataDir, "tasksgodzilla.db") });

const PLAN = {
  title: "Greeter",
  summary: "Write it.",
  context: "none",
  steps: [{ slug: "write", title: "Write greet.sh", kind: "work", prompt: "Create greet.sh." }],
};

/** A local REST endpoint that records the calls it gets and answers like GitHub or GitLab. */
async function recordingApi(reply: (method: string) => { status: number; body: unknown }) {
  const calls: {
    method: string;
    url: string;
    headers: IncomingMessage["headers"];
    body: Record<string, unknown>;
  }[] = [];
  const server = createServer((req, res) => {
    let raw = "";
    req.on("data", (c) => (raw += c));
    req.on("end", () => {
      calls.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: raw ? JSON.parse(raw) : {},
      });
      const r = reply(req.method ?? "");
      res.writeHead(r.status, { "content-type": "application/json" }).end(JSON.stringify(r.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    calls,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => server.close(),
  };
}

function recording(events: unknown[]): string {
  const file = join(mkdtempSync(join(tmpdir(), "tgz-rec-")), "events.jsonl");
  writeFileSync(file, `${events.map((e) => JSON.stringify(e)).join("\n")}\n`);
  return file;
}

interface PlannedRun {
  run_id: number;
  protocol_name: string;
  worktree: string;
}

async function planIn(repo: string, plan: unknown = PLAN, ...extra: string[]): Promise<PlannedRun> {
  const r = await tgz(
    {},
    "plan",
    "Add a greeter",
    "--repo",
    repo,
    "--engine",
    "replay",
    "--input",
    `final=${JSON.stringify(plan)}`,
    "--json",
    ...extra,
  );
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as PlannedRun;
}

async function plannedRepo(plan: unknown = PLAN) {
  const repo = gitRepo();
  const bare = mkdtempSync(join(tmpdir(), "tgz-remote-"));
  execFileSync("git", ["init", "-q", "--bare", bare]);
  execFileSync("git", ["remote", "add", "origin", bare], { cwd: repo });
  return { repo, bare, run: await planIn(repo, plan) };
}

/** Lets the planned steps do their work without an agent: each step gets an engine and inputs of its own. */
async function giveSteps(runId: number, steps: Record<string, unknown>[]) {
  const s = await store();
  const run = await s.getProtocolRun(runId);
  const spec = run.templateConfig.protocol_spec as { steps: Record<string, unknown>[] };
  for (const [i, step] of spec.steps.entries()) Object.assign(step, steps[i]);
  await s.updateProtocolRun(runId, { templateConfig: { ...run.templateConfig, protocol_spec: spec } });
  await s.close();
}

beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), "tgz-git-cli-"));
});

describe("tgz worktree", () => {
  it("lists protocol worktrees outside the checkout, prunes them one by one, and never touches the user's own", async () => {
    const repo = gitRepo();
    const first = await planIn(repo);
    const second = await planIn(repo, PLAN, "--name", "second");
    const mine = join(mkdtempSync(join(tmpdir(), "tgz-user-")), "mine");
    git(repo, "worktree", "add", "-q", "-b", "my-feature", mine, "main");
    const list = async () =>
      JSON.parse((await tgz({}, "worktree", "list", "--repo", repo, "--json")).stdout) as {
        branch: string;
        path: string;
        run_id: number;
        run_status: string;
        unmergedCommits: number;
      }[];
    expect(await list()).toEqual([
      expect.objectContaining({
        branch: first.protocol_name,
        run_id: first.run_id,
        run_status: "planned",
        unmergedCommits: 1,
      }),
      expect.objectContaining({ branch: "0002-second", run_id: second.run_id, unmergedCommits: 1 }),
    ]);
    for (const wt of [first.worktree, second.worktree]) {
      expect(isInside(repo, wt)).toBe(false);
      expect(isInside(join(dataDir, "worktrees"), wt)).toBe(true);
    }
    expect((await tgz({}, "worktree", "list", "--repo", repo)).stdout).toMatch(
      /Total: [\d.]+ MB in 2 worktree/,
    );

    const refused = await tgz({}, "worktree", "prune", first.protocol_name, "--repo", repo);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /refusing to prune .*branch 0001-add-a-greeter has 1 unmerged commit\(s\)/,
    );
    const pruned = await tgz({}, "worktree", "prune", first.protocol_name, "--repo", repo, "--force");
    expect(pruned).toMatchObject({ code: 0, stdout: expect.stringMatching(/^pruned 0001-add-a-greeter /) });
    expect(existsSync(first.worktree)).toBe(false);
    // the first run's worktree is gone: listing and pruning go on with the rest
    expect((await list()).map((w) => w.branch)).toEqual(["0002-second"]);
    expect((await tgz({}, "events", String(first.run_id))).stdout).toMatch(/worktree_pruned/);
    expect((await tgz({}, "worktree", "prune", "--repo", repo, "--force")).code).toBe(0);
    expect(await list()).toEqual([]);
    expect(existsSync(mine)).toBe(true);
    expect(git(repo, "branch", "--format=%(refname:short)")).toBe("main\nmy-feature");
  });

  it("refuses to prune the worktree of a running run, and of a paused one unless forced", async () => {
    const repo = gitRepo();
    const run = await planIn(repo);
    const s = await store();
    const move = (to: "running" | "paused") =>
      s.transitionProtocol(run.run_id, to, {
        eventType: to === "running" ? "protocol_started" : "paused",
        message: `moved to ${to}`,
      });
    await move("running");
    const running = await tgz({}, "worktree", "prune", "--repo", repo, "--force");
    expect(running).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/refusing to prune .*: its run is running/),
    });
    await move("paused");
    await s.close();
    const paused = await tgz({}, "worktree", "prune", "--repo", repo);
    expect(paused.stderr).toMatch(/its run is paused and can be resumed \(use --force\)/);
    writeFileSync(join(run.worktree, "wip.txt"), "work in progress\n");
    expect(existsSync(run.worktree)).toBe(true);
    expect((await tgz({}, "worktree", "prune", "--repo", repo, "--force")).code).toBe(0);
    expect(existsSync(run.worktree)).toBe(false);
  });
});

describe("tgz run and tgz diff on a planned run", () => {
  it("runs the planned steps, and shows what a step's latest attempt changed and what the run changed", async () => {
    const repo = gitRepo();
    const plan = {
      ...PLAN,
      steps: [PLAN.steps[0], { slug: "after", title: "After", kind: "work", prompt: "Then this." }],
    };
    const run = await planIn(repo, plan);
    const attempt = [
      'n=$(( $(cat "$TASKSGODZILLA_PROTOCOL_DIR/attempts" 2>/dev/null || echo 0) + 1 ))',
      'echo $n > "$TASKSGODZILLA_PROTOCOL_DIR/attempts"',
      'echo "attempt $n" > "attempt-$n.txt"',
      "echo done",
    ].join("\n");
    await giveSteps(run.run_id, [
      {
        engine_id: "shell",
        inputs: { command: attempt },
        qa: { policy: "light", checks: ["test -e attempt-2.txt"] },
      },
      { engine_id: "shell", inputs: { command: "echo after > after.txt; echo done" } },
    ]);
    const ran = await tgz({}, "run", String(run.run_id), "--json");
    expect(ran.code, ran.stderr).toBe(0);
    expect(JSON.parse(ran.stdout)).toMatchObject({ status: "completed" });

    const step = await tgz({}, "diff", String(run.run_id), "01-write");
    expect(step.code).toBe(0);
    expect(step.stdout).toContain("+++ b/attempt-2.txt");
    expect(step.stdout).not.toContain("attempt-1.txt");
    expect(step.stdout).not.toContain("after.txt");
    expect((await tgz({}, "diff", String(run.run_id), "02-after")).stdout).toMatch(
      /^diff --git a\/after.txt b\/after.txt\n[\s\S]*\+after\n$/,
    );
    writeFileSync(join(run.worktree, "later.txt"), "not committed yet\n");
    const whole = await tgz({}, "diff", String(run.run_id));
    for (const f of ["attempt-2.txt", "after.txt", "later.txt"]) expect(whole.stdout).toContain(`+++ b/${f}`);
    // nothing was staged to compute it
    expect(git(run.worktree, "diff", "--cached", "--name-only")).toBe("");
    expect(git(run.worktree, "status", "--porcelain")).toBe("?? later.txt");
    expect(await tgz({}, "diff", String(run.run_id), "nope")).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/step "nope" not found/),
    });
  });
});

describe("tgz pr", () => {
  it("pushes the branch without the agent transcripts and opens a GitHub PR summarising plan, steps, verdicts and tokens", async () => {
    const plan = {
      ...PLAN,
      steps: [
        PLAN.steps[0],
        { slug: "check", title: "Check", kind: "work", prompt: "Check it.", qa: "skip" },
      ],
    };
    const repo = gitRepo();
    const bare = mkdtempSync(join(tmpdir(), "tgz-remote-"));
    execFileSync("git", ["init", "-q", "--bare", bare]);
    git(repo, "remote", "add", "origin", bare);
    const planner = recording([
      { type: "usage", usage: { input: 1000, output: 50 } },
      { type: "final", text: JSON.stringify(plan) },
    ]);
    const planned = await tgz(
      {},
      "plan",
      "Add a greeter",
      "--repo",
      repo,
      "--engine",
      "replay",
      "--input",
      `recording=${planner}`,
      "--json",
    );
    const run = JSON.parse(planned.stdout) as PlannedRun;
    const stepRecording = (input: number, output: number) =>
      recording([
        { type: "usage", usage: { input, output } },
        { type: "final", text: "done" },
      ]);
    await giveSteps(run.run_id, [
      { engine_id: "replay", inputs: { recording: stepRecording(100, 20) } },
      { engine_id: "replay", inputs: { recording: stepRecording(7, 3) } },
    ]);
    expect((await tgz({}, "run", String(run.run_id), "--json")).code).toBe(0);
    const api = await recordingApi(() => ({
      status: 201,
      body: { html_url: "https://github.example/acme/demo/pull/7", number: 7 },
    }));
    const env = {
      TASKSGODZILLA_PR_PROVIDER: "github",
      GITHUB_REPOSITORY: "acme/demo",
      GITHUB_API_URL: api.url,
      GITHUB_TOKEN: "tok-secret-1",
      TASKSGODZILLA_PR_VIA: "api",
    };
    const r = await tgz(env, "pr", String(run.run_id));
    api.close();
    expect(r).toMatchObject({ code: 0, stdout: "Opened: https://github.example/acme/demo/pull/7\n" });
    expect(api.calls).toHaveLength(1);
    expect(api.calls[0]).toMatchObject({
      method: "POST",
      url: "/repos/acme/demo/pulls",
      headers: { authorization: "Bearer tok-secret-1" },
    });
    const s = await store();
    const specHash = (await s.getProtocolRun(run.run_id)).templateConfig.spec_meta?.spec_hash;
    await s.close();
    expect(api.calls[0]!.body).toEqual({
      head: run.protocol_name,
      base: "main",
      title: `${run.protocol_name}: Greeter`,
      body: [
        "## Greeter",
        "",
        "**Task:** Add a greeter",
        "",
        "### Plan",
        "",
        "Write it.",
        "",
        "### Steps",
        "",
        "| Step | Status | QA | Tokens |",
        "|---|---|---|---|",
        "| `01-write` | completed | pass | 120 |",
        "| `02-check` | completed | skipped | 10 |",
        "",
        "**Tokens:** 1180  ",
        `**Protocol:** \`${run.protocol_name}\` — spec \`${specHash}\``,
        "",
        "Opened by TasksGodzilla; the full event ledger is in the run (`tgz events`).",
      ].join("\n"),
    });
    const pushed = git(bare, "ls-tree", "-r", "--name-only", run.protocol_name).split("\n");
    expect(pushed).toContain(`.protocols/${run.protocol_name}/plan.md`);
    expect(pushed).toContain(`.protocols/${run.protocol_name}/outputs/01-write.md`);
    expect(pushed.filter((f) => f.includes("/logs/"))).toEqual([]);
    expect(existsSync(join(run.worktree, ".protocols", run.protocol_name, "logs", "plan.1.jsonl"))).toBe(
      true,
    );
    const events = await tgz({}, "events", String(run.run_id), "--json");
    expect(events.stdout).toContain('"pr_opened"');
    expect(events.stdout).not.toContain("tok-secret-1");
  });

  it("opens a GitLab MR through the REST API, returns the open one on 409, and fails clearly without a token", async () => {
    const { run } = await plannedRepo();
    const api = await recordingApi(() => ({
      status: 201,
      body: { web_url: "https://gitlab.example/group/demo/-/merge_requests/3", iid: 3 },
    }));
    const env = {
      TASKSGODZILLA_PR_PROVIDER: "gitlab",
      GITLAB_PROJECT: "group/demo",
      GITLAB_API_URL: api.url,
      GITLAB_TOKEN: "glpat-secret",
      TASKSGODZILLA_PR_VIA: "api",
    };
    expect((await tgz(env, "pr", String(run.run_id))).code).toBe(0);
    api.close();
    expect(api.calls[0]).toMatchObject({
      method: "POST",
      url: "/projects/group%2Fdemo/merge_requests",
      headers: { "private-token": "glpat-secret" },
    });
    expect(api.calls[0]!.body).toMatchObject({ source_branch: run.protocol_name, target_branch: "main" });

    const existing = await recordingApi((method) =>
      method === "POST"
        ? {
            status: 409,
            body: { message: ["Another open merge request already exists for this source branch: !3"] },
          }
        : {
            status: 200,
            body: [{ web_url: "https://gitlab.example/group/demo/-/merge_requests/3", iid: 3 }],
          },
    );
    const again = await tgz({ ...env, GITLAB_API_URL: existing.url }, "pr", String(run.run_id), "--json");
    existing.close();
    expect(JSON.parse(again.stdout)).toEqual({
      url: "https://gitlab.example/group/demo/-/merge_requests/3",
      number: 3,
      via: "api",
      existed: true,
    });
    expect(existing.calls[1]).toMatchObject({
      method: "GET",
      url: `/projects/group%2Fdemo/merge_requests?state=opened&source_branch=${run.protocol_name}&target_branch=main`,
      headers: { "private-token": "glpat-secret" },
    });

    const missing = await tgz({ ...env, GITLAB_TOKEN: "" }, "pr", String(run.run_id));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no gitlab token: set GITLAB_TOKEN/);
  });

  it("fails clearly on a repository with no remote, and commits nothing", async () => {
    const repo = gitRepo();
    const run = await planIn(repo);
    writeFileSync(join(run.worktree, "left.txt"), "uncommitted\n");
    const head = git(run.worktree, "rev-parse", "HEAD");
    const r = await tgz({ GITHUB_TOKEN: "t" }, "pr", String(run.run_id));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /has no remote "origin": add one \(git remote add origin URL\) or pass --remote NAME/,
    );
    expect(git(run.worktree, "rev-parse", "HEAD")).toBe(head);
    expect((await tgz({}, "events", String(run.run_id))).stdout).toMatch(/open_pr_failed/);
  });
});

describe("tgz plan", () => {
  it("Ctrl-C stops the planner: the run ends blocked with an event, no plan written, its worktree prunable", async () => {
    const repo = gitRepo();
    const slow = recording([
      ...Array.from({ length: 20 }, (_, i) => ({ type: "message", text: `thinking ${i}` })),
      { type: "final", text: JSON.stringify(PLAN) },
    ]);
    const child = spawn(
      "node",
      [
        BIN,
        "plan",
        "Add a greeter",
        "--repo",
        repo,
        "--engine",
        "replay",
        "--input",
        `recording=${slow}`,
        "--input",
        "delay_ms=300",
      ],
      { env: { ...process.env, TASKSGODZILLA_DATA_DIR: dataDir }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (c) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const s = await store();
    const project = async () =>
      (await s.listProjects()).find((p) => p.localPath === git(repo, "rev-parse", "--show-toplevel"));
    for (let i = 0; i < 100; i++) {
      const p = await project();
      const runs = p ? await s.listProtocolRuns(p.id) : [];
      if (runs.some((r) => r.status === "planning")) break;
      await sleep(100);
    }
    child.kill("SIGINT");
    expect(await exited).toBe(1);
    expect(stderr).toMatch(/planning was interrupted/);
    const [run] = await s.listProtocolRuns((await project())!.id);
    await s.close();
    expect(run!.status).toBe("blocked");
    const events = await tgz({}, "events", String(run!.id), "--json");
    expect(events.stdout).toMatch(/"planning_failed"[\s\S]*"interrupted"/);
    expect(existsSync(join(run!.protocolRoot!, "plan.md"))).toBe(false);
    expect((await tgz({}, "worktree", "prune", "--repo", repo, "--force")).code).toBe(0);
    expect(existsSync(run!.worktreePath!)).toBe(false);
  });
});

describe("tgz spec audit", () => {
  it("audits stored specs and backfills a removed one from its protocol folder", async () => {
    const { run } = await plannedRepo();
    const s = await store();
    const stored = await s.getProtocolRun(run.run_id);
    await s.updateProtocolRun(run.run_id, { templateConfig: {} });
    await s.close();
    const audit = await tgz({}, "spec", "audit", "--run", String(run.run_id), "--json");
    expect(audit.code).toBe(1);
    expect(JSON.parse(audit.stdout)[0]).toMatchObject({ status: "missing" });
    rmSync(join(stored.protocolRoot!, "protocol-spec.json"));
    const backfill = await tgz({}, "spec", "audit", "--run", String(run.run_id), "--backfill", "--json");
    expect(backfill.code).toBe(0);
    expect(JSON.parse(backfill.stdout)[0]).toMatchObject({
      status: "backfilled",
      source: "step files (best effort)",
      spec_hash: expect.stringMatching(/^[0-9a-f]{12}$/),
    });
    const again = await tgz({}, "spec", "audit", "--run", String(run.run_id));
    expect(again.stdout).toMatch(/1 run\(s\): 1 ok/);
    expect((await tgz({}, "events", String(run.run_id))).stdout).toMatch(/spec_backfilled/);
  });
});
