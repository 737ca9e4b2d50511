/**
 * Planned runs executed by the runner on temp git repositories: a checkpoint per step on the protocol
 * branch, and loops that put the worktree back (or keep it). The planner is replayed; the steps run
 * shell commands that act like an agent writing different files on every attempt.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import { diffOf } from "../../src/git/checkpoints.js";
import { ProtocolRunner } from "../../src/runner/protocol-runner.js";
import { stepBaseCommit } from "../../src/runner/step-checkpoints.js";
import { createRunFromSpec } from "../../src/services/create-run.js";
import { planRun } from "../../src/services/plan-run.js";
import { openStore } from "../../src/store/open-store.js";
import { gitRepo, inspect } from "../scenario/harness.js";

const git = (cwd: string, ...args: string[]) => execFileSync("git", args, { cwd, encoding: "utf8" }).trim();
const files = (wt: string, rev: string) =>
  git(wt, "ls-tree", "-r", "--name-only", rev)
    .split("\n")
    .filter((f) => f && !f.startsWith(".protocols/"));

/** Attempt n writes attempt-n.txt and renames README.md to README-n.md; QA passes from attempt `passAt`. */
const attemptCommand = [
  'n=$(( $(cat "$TASKSGODZILLA_PROTOCOL_DIR/attempts" 2>/dev/null || echo 0) + 1 ))',
  'echo $n > "$TASKSGODZILLA_PROTOCOL_DIR/attempts"',
  'echo "attempt $n" > "attempt-$n.txt"',
  '[ -e README.md ] && mv README.md "README-$n.md"',
  "echo done",
].join("\n");

/** Plans a run with a replayed planner, then lets each step run a shell command (as an agent would edit). */
async function plannedShellRun(
  steps: { slug: string; command: string; checks?: string[] }[],
  env: Record<string, string> = {},
) {
  const data = mkdtempSync(join(tmpdir(), "tgz-cp-data-"));
  const fullEnv = { TASKSGODZILLA_DATA_DIR: data, ...env };
  const store = await openStore({ sqlitePath: join(data, "db.sqlite") });
  const deps = {
    store,
    registry: createDefaultRegistry(),
    configFor: (dir: string) => loadConfig(dir, fullEnv),
  };
  const plan = {
    title: "Attempts",
    summary: "Steps that write files.",
    context: "",
    steps: steps.map((s) => ({ slug: s.slug, title: s.slug, kind: "work", prompt: `Do ${s.slug}.` })),
  };
  const planned = await planRun(deps, {
    task: "Write files",
    repoDir: gitRepo(),
    engine: "replay",
    inputs: { final: JSON.stringify(plan) },
  });
  const spec = planned.templateConfig.protocol_spec as { steps: Record<string, unknown>[] };
  spec.steps.forEach((s, i) => {
    Object.assign(s, {
      engine_id: "shell",
      inputs: { command: steps[i]!.command },
      qa: { policy: "light", checks: steps[i]!.checks ?? [] },
    });
  });
  await store.updateProtocolRun(planned.id, {
    templateConfig: { ...planned.templateConfig, protocol_spec: spec },
  });
  return { store, deps, planned, data };
}

describe("checkpoints and loops of a planned run", () => {
  it("restores the worktree to where the step started on every loop, so no attempt's files survive another", async () => {
    const { store, deps, planned, data } = await plannedShellRun([
      { slug: "write", command: attemptCommand, checks: ["test -e attempt-3.txt"] },
      { slug: "after", command: "echo after > after.txt; echo done" },
    ]);
    const run = await new ProtocolRunner(deps).run(planned.id);
    const r = await inspect(store, run.id);
    expect(run.status).toBe("completed");
    const wt = run.worktreePath!;
    // only the third attempt's work is left: the first two were undone by the two loops
    expect(files(wt, "HEAD").sort()).toEqual(["README-3.md", "after.txt", "attempt-3.txt"]);
    for (const f of ["attempt-1.txt", "attempt-2.txt", "README-1.md", "README-2.md", "README.md"])
      expect(existsSync(join(wt, f)), f).toBe(false);
    const loops = r.of("loop_decision").map((e) => e.metadata.worktree as Record<string, string>);
    expect(loops.map((w) => w.action)).toEqual(["restored", "restored"]);
    for (const w of loops) expect(files(wt, w.restore_commit!)).toEqual(["README.md"]);
    expect(git(wt, "log", "--format=%s").split("\n")).toEqual([
      `${run.protocolName}: 02-after (qa pass)`,
      `${run.protocolName}: 01-write (qa pass)`,
      `${run.protocolName}: restore before 01-write`,
      `${run.protocolName}: 01-write (qa fail)`,
      `${run.protocolName}: restore before 01-write`,
      `${run.protocolName}: 01-write (qa fail)`,
      `${run.protocolName}: plan (2 steps)`,
      "init",
    ]);
    // what each step changed, from where it starts to its latest checkpoint
    const [write, after] = r.steps;
    const ctx = { run, config: { dataDir: data } };
    expect(stepBaseCommit(ctx, r.steps, after!)).toBe(write!.runtimeState.checkpoint);
    const writeDiff = await diffOf(
      wt,
      stepBaseCommit(ctx, r.steps, write!)!,
      String(write!.runtimeState.checkpoint),
    );
    expect(writeDiff.files).toEqual(["README-3.md", "README.md", "attempt-3.txt"]);
    const afterDiff = await diffOf(
      wt,
      stepBaseCommit(ctx, r.steps, after!)!,
      String(after!.runtimeState.checkpoint),
    );
    expect(afterDiff.files).toEqual(["after.txt"]);
    // the transcripts are kept in the worktree, out of every commit
    expect(existsSync(join(run.protocolRoot!, "logs"))).toBe(true);
    expect(
      git(wt, "log", "--all", "--name-only", "--format=")
        .split("\n")
        .filter((f) => f.includes("/logs/")),
    ).toEqual([]);
    await store.close();
  });

  it("keeps the failed attempt's files when loop_restore is keep, and says so", async () => {
    const { store, deps, planned } = await plannedShellRun(
      [{ slug: "write", command: attemptCommand, checks: ["test -e attempt-2.txt"] }],
      { TASKSGODZILLA_LOOP_RESTORE: "keep" },
    );
    const run = await new ProtocolRunner(deps).run(planned.id);
    const r = await inspect(store, run.id);
    expect(run.status).toBe("completed");
    expect(r.of("loop_decision").map((e) => e.metadata.worktree)).toEqual([
      { action: "kept", reason: "loop_restore is keep" },
    ]);
    expect(files(run.worktreePath!, "HEAD").sort()).toEqual([
      "README-1.md",
      "attempt-1.txt",
      "attempt-2.txt",
    ]);
    await store.close();
  });

  it("commits what a failed engine call left behind, naming the failure", async () => {
    const { store, deps, planned } = await plannedShellRun([
      { slug: "write", command: "echo partial > half.txt; exit 3" },
    ]);
    const run = await new ProtocolRunner(deps).run(planned.id);
    expect(run.status).toBe("blocked");
    const [step] = await store.listStepRuns(run.id);
    const wt = run.worktreePath!;
    expect(git(wt, "log", "-1", "--format=%s")).toBe(`${run.protocolName}: 01-write (exec failed: crash)`);
    expect(files(wt, "HEAD")).toEqual(["README.md", "half.txt"]);
    expect(step!.runtimeState.checkpoint).toBe(git(wt, "rev-parse", "HEAD"));
    expect(readFileSync(join(wt, "half.txt"), "utf8")).toBe("partial\n");
    await store.close();
  });
});

describe("runs that work in a checkout of the user's get no checkpoints", () => {
  /** A run of one shell step that writes a file, created from a spec in `project`, maybe in `worktreePath`. */
  async function shellRunIn(project: { gitUrl: string; localPath: string | null }, worktreePath?: string) {
    const data = mkdtempSync(join(tmpdir(), "tgz-cp-data-"));
    const store = await openStore({ sqlitePath: join(data, "db.sqlite") });
    const created = await store.createProject({ name: "p", baseBranch: "main", ...project });
    const { run } = await createRunFromSpec(store, {
      projectId: created.id,
      ...(worktreePath ? { worktreePath } : {}),
      spec: {
        version: 1,
        steps: [
          {
            id: "s1",
            engine_id: "shell",
            inputs: { command: "echo hi > new.txt; echo done" },
            qa: { policy: "skip", reason: "x" },
          },
        ],
      },
    });
    const deps = {
      store,
      registry: createDefaultRegistry(),
      configFor: (dir: string) => loadConfig(dir, { TASKSGODZILLA_DATA_DIR: data }),
    };
    const done = await new ProtocolRunner(deps).run(run.id);
    const events = (await inspect(store, run.id)).of("checkpoint_created");
    await store.close();
    return { done, events };
  }

  it("a project known only by its git URL: nothing is committed on the user's branch", async () => {
    const repo = gitRepo();
    const head = git(repo, "rev-parse", "HEAD");
    const { done, events } = await shellRunIn({ gitUrl: repo, localPath: null });
    expect(done).toMatchObject({ status: "completed", worktreePath: repo });
    expect(git(repo, "rev-parse", "HEAD")).toBe(head);
    expect(git(repo, "log", "--format=%s", "main")).toBe("init");
    expect(git(repo, "status", "--porcelain")).toContain("?? new.txt");
    expect(events).toEqual([]);
  });

  it("a run in the user's own linked worktree: their branch gets no commit", async () => {
    const repo = gitRepo();
    const mine = join(mkdtempSync(join(tmpdir(), "tgz-user-")), "my-feature");
    git(repo, "worktree", "add", "-q", "-b", "my-feature", mine, "main");
    const { done, events } = await shellRunIn({ gitUrl: repo, localPath: repo }, mine);
    expect(done).toMatchObject({ status: "completed", worktreePath: mine });
    expect(git(mine, "log", "--format=%s")).toBe("init");
    expect(existsSync(join(mine, "new.txt"))).toBe(true);
    expect(events).toEqual([]);
  });
});
