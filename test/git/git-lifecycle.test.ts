import { execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkpoint, diffOf, restoreTo } from "../../src/git/checkpoints.js";
import { BaseBranchMissingError, NotAGitRepositoryError } from "../../src/git/git-command.js";
import { nextProtocolNumber, protocolName, sanitizeBranchName } from "../../src/git/protocol-names.js";
import {
  createProtocolWorktree,
  listProtocolWorktrees,
  pruneWorktree,
  WorktreePruneRefusedError,
} from "../../src/git/worktrees.js";
import { stepBaseCommit } from "../../src/runner/step-checkpoints.js";
import { isInside } from "../../src/shared/paths.js";
import type { Project, ProtocolRun, StepRun } from "../../src/store/types.js";
import { gitRepo } from "../scenario/harness.js";

const sh = (cwd: string, ...args: string[]) => execFileSync("git", args, { cwd, encoding: "utf8" }).trim();
const worktreesRoot = () => mkdtempSync(join(tmpdir(), "tgz-wt-"));

describe("protocol names", () => {
  it("sanitises short names into valid branch names", () => {
    expect(sanitizeBranchName("Add Login / OAuth!!")).toBe("add-login-oauth");
    expect(sanitizeBranchName("..--")).toBe("task");
    expect(sanitizeBranchName("x".repeat(100))).toHaveLength(48);
    expect(protocolName(7, "Fix bug")).toBe("0007-fix-bug");
    for (const n of ["a b", "ünïcode", "refs/heads/x", "a..b", "a.lock"]) {
      expect(() =>
        execFileSync("git", ["check-ref-format", "--branch", sanitizeBranchName(n)]),
      ).not.toThrow();
    }
  });

  it("numbers past folders, branches and known runs", async () => {
    const repo = gitRepo();
    expect(await nextProtocolNumber(repo, [])).toBe(1);
    mkdirSync(join(repo, ".protocols", "0003-old"), { recursive: true });
    sh(repo, "branch", "0005-feature");
    expect(await nextProtocolNumber(repo, ["0002-x"])).toBe(6);
    expect(await nextProtocolNumber(repo, ["0009-known"])).toBe(10);
  });

  it("numbers past branches a teammate pushed (remote-tracking branches)", async () => {
    const repo = gitRepo();
    const bare = mkdtempSync(join(tmpdir(), "tgz-remote-"));
    sh(bare, "init", "-q", "--bare");
    sh(repo, "remote", "add", "origin", bare);
    sh(repo, "push", "-q", "origin", "main");
    const teammate = mkdtempSync(join(tmpdir(), "tgz-clone-"));
    sh(teammate, "clone", "-q", bare, ".");
    sh(teammate, "push", "-q", "origin", "origin/main:refs/heads/0012-theirs");
    expect(await nextProtocolNumber(repo, [])).toBe(1);
    sh(repo, "fetch", "-q", "origin");
    expect(sh(repo, "branch", "--list")).not.toContain("0012");
    expect(await nextProtocolNumber(repo, [])).toBe(13);
  });
});

describe("protocol worktrees", () => {
  it("creates branch and worktree from the base without touching a dirty main checkout", async () => {
    const repo = gitRepo();
    writeFileSync(join(repo, "README.md"), "local edits\n");
    writeFileSync(join(repo, "scratch.txt"), "untracked\n");
    const wt = await createProtocolWorktree({
      repo,
      base: "main",
      name: "0001-demo",
      worktreesRoot: worktreesRoot(),
    });
    expect(wt.branch).toBe("0001-demo");
    expect(readFileSync(join(wt.path, "README.md"), "utf8")).toBe("# scratch\n");
    expect(existsSync(join(wt.path, "scratch.txt"))).toBe(false);
    expect(readFileSync(join(repo, "README.md"), "utf8")).toBe("local edits\n");
    expect(sh(repo, "branch", "--show-current")).toBe("main");
  });

  it("fails clearly outside a repository and for a missing base branch", async () => {
    await expect(
      createProtocolWorktree({
        repo: mkdtempSync(join(tmpdir(), "plain-")),
        base: "main",
        name: "0001-x",
        worktreesRoot: worktreesRoot(),
      }),
    ).rejects.toThrow(NotAGitRepositoryError);
    await expect(
      createProtocolWorktree({
        repo: gitRepo(),
        base: "develop",
        name: "0001-x",
        worktreesRoot: worktreesRoot(),
      }),
    ).rejects.toThrow(BaseBranchMissingError);
  });

  it("lists worktrees with size and state, and prunes only what loses nothing unless forced", async () => {
    const repo = gitRepo();
    const root = worktreesRoot();
    const make = (name: string) => createProtocolWorktree({ repo, base: "main", name, worktreesRoot: root });
    const clean = await make("0001-clean");
    const dirty = await make("0002-dirty");
    const ahead = await make("0003-ahead");
    writeFileSync(join(dirty.path, "wip.txt"), "work in progress");
    writeFileSync(join(ahead.path, "done.txt"), "done");
    await checkpoint(ahead.path, "step");
    const scope = { root, runs: [], defaultBase: "main" };
    const list = await listProtocolWorktrees(repo, scope);
    const by = (p: string) => list.find((w) => w.path === p)!;
    expect(by(clean.path)).toMatchObject({
      branch: "0001-clean",
      dirty: false,
      unmergedCommits: 0,
      sizeBytes: expect.any(Number),
    });
    expect(by(dirty.path).dirty).toBe(true);
    expect(by(ahead.path).unmergedCommits).toBe(1);
    for (const status of ["running", "planning"]) {
      await expect(pruneWorktree(repo, by(clean.path), { force: true, runStatus: status })).rejects.toThrow(
        `its run is ${status}`,
      );
    }
    await expect(pruneWorktree(repo, by(clean.path), { force: false, runStatus: "paused" })).rejects.toThrow(
      /paused and can be resumed/,
    );
    await expect(pruneWorktree(repo, by(dirty.path), { force: false, runStatus: null })).rejects.toThrow(
      WorktreePruneRefusedError,
    );
    await expect(
      pruneWorktree(repo, by(ahead.path), { force: false, runStatus: "completed" }),
    ).rejects.toThrow(/1 unmerged commit/);
    await pruneWorktree(repo, by(clean.path), { force: true, runStatus: "paused" });
    await pruneWorktree(repo, by(dirty.path), { force: true, runStatus: null });
    expect(existsSync(clean.path) || existsSync(dirty.path)).toBe(false);
    expect(sh(repo, "branch", "--list", "0001-clean", "0002-dirty")).toBe("");
    expect((await listProtocolWorktrees(repo, scope)).map((w) => w.branch)).toEqual(["0003-ahead"]);
  });

  it("lists only protocol worktrees: the user's own worktrees are never listed, so never pruned", async () => {
    const repo = gitRepo();
    const root = worktreesRoot();
    const ours = await createProtocolWorktree({ repo, base: "main", name: "0001-ours", worktreesRoot: root });
    const mine = join(mkdtempSync(join(tmpdir(), "tgz-user-")), "mine");
    sh(repo, "worktree", "add", "-q", "-b", "my-feature", mine, "main");
    // a run that works somewhere else (made before this data dir) is known by its path
    const elsewhere = join(mkdtempSync(join(tmpdir(), "tgz-old-")), "0002-old");
    sh(repo, "worktree", "add", "-q", "-b", "0002-old", elsewhere, "main");
    const list = await listProtocolWorktrees(repo, {
      root,
      runs: [
        { path: elsewhere, base: "main" },
        { path: join(root, "0009-pruned-long-ago"), base: "main" },
      ],
      defaultBase: "main",
    });
    expect(list.map((w) => w.path).sort()).toEqual([ours.path, elsewhere].sort());
    expect(isInside(repo, ours.path)).toBe(false);
    expect(existsSync(mine)).toBe(true);
  });

  it("treats a branch whose unmerged commits git cannot count as unsafe to prune", async () => {
    const repo = gitRepo();
    const root = worktreesRoot();
    const wt = await createProtocolWorktree({ repo, base: "main", name: "0001-x", worktreesRoot: root });
    const [info] = await listProtocolWorktrees(repo, { root, runs: [], defaultBase: "gone-branch" });
    expect(info).toMatchObject({ path: wt.path, unmergedCommits: null });
    await expect(pruneWorktree(repo, info!, { force: false, runStatus: null })).rejects.toThrow(
      /cannot tell whether branch 0001-x is merged/,
    );
    expect(existsSync(wt.path)).toBe(true);
  });
});

describe("checkpoints", () => {
  const protocolWorktree = async () =>
    (
      await createProtocolWorktree({
        repo: gitRepo(),
        base: "main",
        name: "0001-cp",
        worktreesRoot: worktreesRoot(),
      })
    ).path;
  const tracked = (wt: string, rev: string) =>
    sh(wt, "ls-tree", "-r", "--name-only", rev)
      .split("\n")
      .filter((f) => f && !f.startsWith(".protocols/"));

  it("commits a step's changes, diffs them, and restores the files as a new commit, keeping .protocols and history", async () => {
    const wt = await protocolWorktree();
    const start = sh(wt, "rev-parse", "HEAD");
    expect(await checkpoint(wt, "nothing yet")).toEqual({ commit: start, changed: false });
    writeFileSync(join(wt, "a.txt"), "step one\n");
    mkdirSync(join(wt, ".protocols", "0001-cp"), { recursive: true });
    writeFileSync(join(wt, ".protocols", "0001-cp", "log.md"), "step one ran\n");
    const one = await checkpoint(wt, "0001-cp: step one (qa pass)");
    expect(one.changed).toBe(true);
    expect(sh(wt, "log", "-1", "--format=%s")).toBe("0001-cp: step one (qa pass)");
    writeFileSync(join(wt, "a.txt"), "step two\n");
    writeFileSync(join(wt, "b.txt"), "new in two\n");
    writeFileSync(join(wt, ".protocols", "0001-cp", "log.md"), "step two ran\n");
    const two = await checkpoint(wt, "step two");
    const diff = await diffOf(wt, one.commit, two.commit);
    expect(diff.files).toEqual(["a.txt", "b.txt"]);
    expect(diff.patch).toContain("+step two");
    const restored = await restoreTo(wt, one.commit, "0001-cp: restore before two");
    expect(readFileSync(join(wt, "a.txt"), "utf8")).toBe("step one\n");
    expect(existsSync(join(wt, "b.txt"))).toBe(false);
    expect(readFileSync(join(wt, ".protocols", "0001-cp", "log.md"), "utf8")).toBe("step two ran\n");
    expect(restored.changed).toBe(true);
    expect(sh(wt, "rev-parse", "HEAD")).toBe(restored.commit);
    expect(sh(wt, "rev-parse", "HEAD~1")).toBe(two.commit);
    expect(sh(wt, "log", "-1", "--format=%s")).toBe("0001-cp: restore before two");
    expect(sh(wt, "status", "--porcelain")).toBe("");
    // nothing left to restore: no commit
    expect(await restoreTo(wt, one.commit, "again")).toEqual({ commit: restored.commit, changed: false });
  });

  it("restores exactly: renamed, deleted, new, re-moded and uncommitted files, ignored files left alone", async () => {
    const wt = await protocolWorktree();
    mkdirSync(join(wt, "src"));
    writeFileSync(join(wt, "src", "keep.ts"), "export const keep = 1;\n");
    writeFileSync(join(wt, "run.sh"), "echo hi\n");
    writeFileSync(join(wt, "gone.txt"), "deleted later\n");
    writeFileSync(join(wt, ".gitignore"), "cache/\n");
    const base = (await checkpoint(wt, "base")).commit;
    // what a failed attempt does, partly committed and partly not
    renameSync(join(wt, "README.md"), join(wt, "README-moved.md"));
    renameSync(join(wt, "src", "keep.ts"), join(wt, "src", "renamed.ts"));
    chmodSync(join(wt, "run.sh"), 0o755);
    rmSync(join(wt, "gone.txt"));
    await checkpoint(wt, "failed attempt");
    mkdirSync(join(wt, "new", "deep"), { recursive: true });
    writeFileSync(join(wt, "new", "deep", "file.txt"), "uncommitted\n");
    writeFileSync(join(wt, "run.sh"), "echo changed\n");
    mkdirSync(join(wt, "cache"));
    writeFileSync(join(wt, "cache", "blob"), "ignored\n");
    await restoreTo(wt, base, "restore");
    expect(tracked(wt, "HEAD")).toEqual(tracked(wt, base));
    expect(sh(wt, "rev-parse", "HEAD^{tree}")).toBe(sh(wt, "rev-parse", `${base}^{tree}`));
    for (const f of ["README-moved.md", "src/renamed.ts", "new"])
      expect(existsSync(join(wt, f)), f).toBe(false);
    expect(readFileSync(join(wt, "README.md"), "utf8")).toBe("# scratch\n");
    expect(readFileSync(join(wt, "src", "keep.ts"), "utf8")).toBe("export const keep = 1;\n");
    expect(readFileSync(join(wt, "gone.txt"), "utf8")).toBe("deleted later\n");
    expect(readFileSync(join(wt, "run.sh"), "utf8")).toBe("echo hi\n");
    expect(statSync(join(wt, "run.sh")).mode & 0o111).toBe(0);
    expect(readFileSync(join(wt, "cache", "blob"), "utf8")).toBe("ignored\n");
    expect(sh(wt, "status", "--porcelain")).toBe("");
  });

  it("diffs up to the working tree without staging anything in the worktree's index", async () => {
    const wt = await protocolWorktree();
    const start = sh(wt, "rev-parse", "HEAD");
    writeFileSync(join(wt, "README.md"), "changed\n");
    writeFileSync(join(wt, "fresh.txt"), "new file\n");
    const diff = await diffOf(wt, start);
    expect(diff.files).toEqual(["README.md", "fresh.txt"]);
    expect(diff.patch).toContain("+new file");
    expect(sh(wt, "status", "--porcelain")).toBe("M README.md\n?? fresh.txt");
    expect(sh(wt, "ls-files")).toBe("README.md");
  });
});

describe("where a step starts", () => {
  const run = { worktreePath: "/wt", templateConfig: { base_commit: "start" } } as unknown as ProtocolRun;
  const project = { localPath: "/repo" } as Project;
  const step = (stepIndex: number, checkpointed?: string) =>
    ({
      stepIndex,
      stepName: `s${stepIndex}`,
      runtimeState: checkpointed ? { checkpoint: checkpointed } : {},
    }) as StepRun;

  it("is the checkpoint of the nearest earlier step that has one, else the run's start, whatever the step's own attempts", () => {
    const steps = [step(0, "c0"), step(1), step(2, "c2-of-an-earlier-attempt"), step(3)];
    expect(stepBaseCommit({ run, project }, steps, steps[0]!)).toBe("start");
    expect(stepBaseCommit({ run, project }, steps, steps[1]!)).toBe("c0");
    expect(stepBaseCommit({ run, project }, steps, steps[2]!)).toBe("c0");
    expect(stepBaseCommit({ run, project }, steps, steps[3]!)).toBe("c2-of-an-earlier-attempt");
    expect(stepBaseCommit({ run: { ...run, worktreePath: "/repo" }, project }, steps, steps[1]!)).toBeNull();
  });
});
