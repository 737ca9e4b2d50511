/** tgz plan, run, worktree, diff, pr and spec audit, as a user runs them, on temp repositories. */
import { execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { isInside } from "../../src/shared/paths.js";
import { openStore } from "../../src/store/open-store.js";
import { gitRepo } from "../scenario/harness.js";
import { rawDb } from "../store/raw-db.js";
import { ghPresent, localGitHub } from "../support/local-github.js";
import { recordingApi } from "../support/recording-api.js";

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

/** A recording file, in a folder of its own or in `dir` (a step's recording: inside the run's roots). */
function recording(events: unknown[], dir = mkdtempSync(join(tmpdir(), "tgz-rec-"))): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `events-${readdirSync(dir).length}.jsonl`);
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

  it("never lists or prunes a user's own linked worktree that a run works in", async () => {
    const repo = gitRepo();
    const mine = join(mkdtempSync(join(tmpdir(), "tgz-user-")), "my-feature");
    git(repo, "worktree", "add", "-q", "-b", "my-feature", mine, "main");
    writeFileSync(join(mine, "precious.txt"), "my work\n");
    git(mine, "add", ".");
    git(mine, "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "my precious commit");
    // a run the API created in that worktree (worktree_path), since completed
    const s = await store();
    const project = await s.createProject({
      name: "p",
      gitUrl: repo,
      localPath: git(repo, "rev-parse", "--show-toplevel"),
    });
    const run = await s.createProtocolRun({
      projectId: project.id,
      protocolName: "0001-mine",
      worktreePath: mine,
    });
    await s.transitionProtocol(run.id, "cancelled", { eventType: "cancelled", message: "done with it" });
    await s.close();
    expect(JSON.parse((await tgz({}, "worktree", "list", "--repo", repo, "--json")).stdout)).toEqual([]);
    expect((await tgz({}, "worktree", "prune", "--repo", repo, "--force")).code).toBe(0);
    expect(existsSync(join(mine, "precious.txt"))).toBe(true);
    expect(git(repo, "log", "-1", "--format=%s", "my-feature")).toBe("my precious commit");
    expect(await tgz({}, "diff", String(run.id))).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/works in a checkout of yours, not a protocol worktree/),
    });
  });

  it("says so when the named branch has no protocol worktree, and prunes nothing", async () => {
    const repo = gitRepo();
    const run = await planIn(repo);
    const r = await tgz({}, "worktree", "prune", "0009-nope", run.protocol_name, "--repo", repo, "--force");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /no protocol worktree with branch 0009-nope in .* \(see `tgz worktree list`\); nothing pruned/,
    );
    expect(existsSync(run.worktree)).toBe(true);
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
    // in the protocol folder's git-ignored logs/: inside the run's roots, and never pushed
    const logs = join(run.worktree, ".protocols", run.protocol_name, "logs");
    const stepRecording = (input: number, output: number) =>
      recording(
        [
          { type: "usage", usage: { input, output } },
          { type: "final", text: "done" },
        ],
        logs,
      );
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

  it.skipIf(!ghPresent)(
    "opens the PR through the real gh logged in to the remote's host, and says it is already open the second time",
    async () => {
      const { repo, bare, run } = await plannedRepo();
      await giveSteps(run.run_id, [{ engine_id: "replay", inputs: { final: "done" } }]);
      expect((await tgz({}, "run", String(run.run_id))).code).toBe(0);
      const gh = await localGitHub();
      try {
        gh.login();
        // the remote is the host's URL; pushes go to the local bare repository
        const url = `https://${gh.host}/acme/demo.git`;
        git(repo, "remote", "set-url", "origin", url);
        git(repo, "config", `url.${bare}.pushInsteadOf`, url);
        const env = { ...gh.env, TASKSGODZILLA_PR_PROVIDER: "github", GITHUB_TOKEN: "" };
        const first = await tgz(env, "pr", String(run.run_id));
        expect(first, first.stderr).toMatchObject({
          code: 0,
          stdout: `Opened: https://${gh.host}/acme/demo/pull/1\n`,
        });
        expect(gh.pulls).toEqual([
          expect.objectContaining({
            headRefName: run.protocol_name,
            baseRefName: "main",
            title: `${run.protocol_name}: Greeter`,
            body: expect.stringContaining("| `01-write` | completed |"),
          }),
        ]);
        expect(git(bare, "rev-parse", run.protocol_name)).toBe(git(run.worktree, "rev-parse", "HEAD"));
        const again = await tgz(env, "pr", String(run.run_id), "--json");
        expect(again.code, again.stderr).toBe(0);
        expect(JSON.parse(again.stdout)).toMatchObject({ via: "cli", existed: true, number: 1 });
        expect(gh.pulls).toHaveLength(1);
      } finally {
        await gh.close();
      }
    },
  );

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

  it("checks the token (and TASKSGODZILLA_PR_VIA) before anything is committed or pushed", async () => {
    const { run, bare } = await plannedRepo();
    writeFileSync(join(run.worktree, "left.txt"), "uncommitted\n");
    const head = git(run.worktree, "rev-parse", "HEAD");
    const env = {
      TASKSGODZILLA_PR_PROVIDER: "github",
      GITHUB_REPOSITORY: "acme/demo",
      GITHUB_TOKEN: "",
      GH_TOKEN: "",
    };
    const missing = await tgz({ ...env, TASKSGODZILLA_PR_VIA: "api" }, "pr", String(run.run_id));
    expect(missing).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/no github token: set GITHUB_TOKEN or GH_TOKEN/),
    });
    const typo = await tgz(
      { ...env, GITHUB_TOKEN: "t", TASKSGODZILLA_PR_VIA: "rest" },
      "pr",
      String(run.run_id),
    );
    expect(typo).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/TASKSGODZILLA_PR_VIA=rest: expected auto, cli, api/),
    });
    expect(git(run.worktree, "rev-parse", "HEAD")).toBe(head);
    expect(git(bare, "for-each-ref")).toBe("");
  });

  it("says the worktree is gone after a prune, for tgz pr and tgz diff alike", async () => {
    const { repo, run } = await plannedRepo();
    expect((await tgz({}, "worktree", "prune", run.protocol_name, "--repo", repo, "--force")).code).toBe(0);
    const gone =
      /the worktree of run \d+ \(.*\) no longer exists \(was it pruned with `tgz worktree prune`\?\)/;
    const pr = await tgz(
      { GITHUB_TOKEN: "t", TASKSGODZILLA_PR_PROVIDER: "github" },
      "pr",
      String(run.run_id),
    );
    expect(pr).toMatchObject({ code: 2, stderr: expect.stringMatching(gone) });
    expect(pr.stderr).not.toMatch(/no remote/);
    expect(await tgz({}, "diff", String(run.run_id))).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(gone),
    });
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
    const plan = await slowPlan(repo);
    plan.child.kill("SIGINT");
    expect(await plan.exited).toBe(1);
    expect(plan.stderr()).toMatch(/planning was interrupted/);
    const s = await store();
    const run = await s.getProtocolRun(plan.runId);
    await s.close();
    expect(run.status).toBe("blocked");
    const events = await tgz({}, "events", String(run.id), "--json");
    expect(events.stdout).toMatch(/"planning_failed"[\s\S]*"interrupted"/);
    expect(existsSync(join(run.protocolRoot!, "plan.md"))).toBe(false);
    expect((await tgz({}, "worktree", "prune", "--repo", repo, "--force")).code).toBe(0);
    expect(existsSync(run.worktreePath!)).toBe(false);
  });
});

/** Starts `tgz plan` with a planner that thinks for a while; resolves once its run is planning. */
async function slowPlan(repo: string, ...extra: string[]) {
  const slow = recording([
    ...Array.from({ length: 8 }, (_, i) => ({ type: "message", text: `thinking ${i}` })),
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
      "delay_ms=250",
      ...extra,
    ],
    { env: { ...process.env, TASKSGODZILLA_DATA_DIR: dataDir }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (c) => (stderr += c));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const s = await store();
  const top = git(repo, "rev-parse", "--show-toplevel");
  let runId: number | undefined;
  for (let i = 0; i < 200 && runId === undefined; i++) {
    const p = (await s.listProjects()).find((x) => x.localPath === top);
    runId = (p ? await s.listProtocolRuns(p.id) : []).find((r) => r.status === "planning")?.id;
    if (runId === undefined) await sleep(50);
  }
  await s.close();
  if (runId === undefined) throw new Error(`tgz plan never started planning: ${stderr}`);
  return { child, exited, runId, stderr: () => stderr };
}

/** What a lapsed lease looks like: the planner that held it died more than a lease ago. */
async function lapseLease(runId: number) {
  const s = await store();
  await rawDb(s)
    .updateTable("protocol_runs")
    .set({ lease_expires_at: new Date(Date.now() - 1000).toISOString() })
    .where("id", "=", runId)
    .execute();
  await s.close();
}

describe("a planner that dies", () => {
  it("a closed terminal (SIGHUP) stops it like Ctrl-C: blocked, and the way to plan it again is named", async () => {
    const repo = gitRepo();
    const plan = await slowPlan(repo);
    plan.child.kill("SIGHUP");
    expect(await plan.exited).toBe(1);
    expect(plan.stderr()).toMatch(
      new RegExp(`planning was interrupted; plan it again with \`tgz plan --run-id ${plan.runId}\``),
    );
    const s = await store();
    expect((await s.getProtocolRun(plan.runId)).status).toBe("blocked");
    await s.close();
  });

  it("killed outright: refused while its lease lasts, then planned again from the CLI with the same engine and inputs", async () => {
    const repo = gitRepo();
    const plan = await slowPlan(repo);
    plan.child.kill("SIGKILL");
    await plan.exited;
    const busy = await tgz({}, "plan", "--run-id", String(plan.runId));
    expect(busy).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(new RegExp(`run ${plan.runId} is being executed by`)),
    });
    const refused = await tgz({}, "worktree", "prune", "--repo", repo, "--force");
    expect(refused).toMatchObject({ code: 1, stderr: expect.stringMatching(/its run is being planned/) });
    await lapseLease(plan.runId);
    const again = await tgz({}, "plan", "--run-id", String(plan.runId), "--json");
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({
      run_id: plan.runId,
      status: "planned",
      steps: ["01-write"],
    });
    const events = (await tgz({}, "events", String(plan.runId), "--json")).stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { event_type: string; metadata: Record<string, unknown> });
    expect(
      events.filter((e) => e.event_type === "planning_started").map((e) => e.metadata.engine_id),
    ).toEqual(["replay", "replay"]);
  });

  it("killed outright and pruned: only forced once its lease lapsed; the run is then blocked, and tgz run says how to plan it", async () => {
    const repo = gitRepo();
    const plan = await slowPlan(repo, "--name", "doomed");
    plan.child.kill("SIGKILL");
    await plan.exited;
    await lapseLease(plan.runId);
    const unforced = await tgz({}, "worktree", "prune", "0001-doomed", "--repo", repo);
    expect(unforced).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(
        new RegExp(
          `its run is planning but no planner holds it \\(use --force, or plan it again with \`tgz plan --run-id ${plan.runId}\`\\)`,
        ),
      ),
    });
    expect((await tgz({}, "worktree", "prune", "0001-doomed", "--repo", repo, "--force")).code).toBe(0);
    const s = await store();
    const run = await s.getProtocolRun(plan.runId);
    await s.close();
    expect(run.status).toBe("blocked");
    expect(existsSync(run.worktreePath!)).toBe(false);
    expect(await tgz({}, "run", String(plan.runId))).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(
        new RegExp(
          `run ${plan.runId} is not planned \\(it is blocked\\); plan it with \`tgz plan --run-id ${plan.runId}\``,
        ),
      ),
    });
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

  it("says what is wrong with --project and --run instead of auditing nothing", async () => {
    expect(await tgz({}, "spec", "audit", "--project", "abc")).toMatchObject({
      code: 2,
      stderr: 'tgz: "abc" is not a project id (projects are numbered: see tgz status --json)\n',
    });
    expect(await tgz({}, "spec", "audit", "--project", "99")).toMatchObject({
      code: 2,
      stderr: "tgz: project 99 not found\n",
    });
    expect(await tgz({}, "spec", "audit", "--run", "abc")).toMatchObject({
      code: 2,
      stderr: 'tgz: "abc" is not a run id (runs are numbered: see tgz status)\n',
    });
  });
});
