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
import {
  namesInCheckout,
  nextProtocolNumber,
  protocolName,
  sanitizeBranchName,
} from "../../src/git/protocol-names.js";
import { protocolWorktreeOf } from "../../src/git/run-worktree.js";
import {
  createProtocolWorktree,
  listProtocolWorktrees,
  type PruneRun,
  pruneWorktree,
  WorktreePruneRefusedError,
} from "../../src/git/worktrees.js";
import { stepBaseCommit } from "../../src/runner/step-checkpoints.js";
import { isInside } from "../../src/shared/paths.js";
import { openStore } from "../../src/store/open-store.js";
import type { ProtocolRun, StepRun } from "../../src/store/types.js";
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

  /** A store with the repository's project, and a way to add runs by name (and branch). */
  async function numbering(repo: string) {
    const store = await openStore({ sqlitePath: join(mkdtempSync(join(tmpdir(), "tgz-num-")), "db.sqlite") });
    const project = await store.createProject({ name: "p", gitUrl: repo, localPath: repo });
    return {
      store,
      next: async () => nextProtocolNumber(store, project.id, await namesInCheckout(repo)),
      run: (protocolName: string, branch?: string) =>
        store.createProtocolRun({
          projectId: project.id,
          protocolName,
          ...(branch ? { templateConfig: { branch } } : {}),
        }),
    };
  }

  it("numbers past folders, branches and the project's runs (their names and branches)", async () => {
    const repo = gitRepo();
    const n = await numbering(repo);
    expect(await n.next()).toBe(1);
    mkdirSync(join(repo, ".protocols", "0003-old"), { recursive: true });
    sh(repo, "branch", "0005-feature");
    await n.run("0002-x");
    expect(await n.next()).toBe(6);
    await n.run("0009-known");
    expect(await n.next()).toBe(10);
    // an API run named in words is numbered by the branch it was planned on
    await n.run("Add greeter", "0011-add-greeter");
    expect(await n.next()).toBe(12);
    // four digits at least, however many: a user's 1-fix branch is no protocol, 10000-x is
    sh(repo, "branch", "1-fix");
    expect(await n.next()).toBe(12);
    sh(repo, "branch", "10000-far");
    expect(await n.next()).toBe(10001);
    await n.store.close();
  });

  it("numbers a folder that is not a git repository by its runs and protocol folders", async () => {
    const plain = mkdtempSync(join(tmpdir(), "tgz-plain-"));
    const n = await numbering(plain);
    mkdirSync(join(plain, ".protocols", "0004-by-hand"), { recursive: true });
    expect(await n.next()).toBe(5);
    await n.store.close();
  });

  it("numbers past branches a teammate pushed (remote-tracking branches)", async () => {
    const repo = gitRepo();
    const n = await numbering(repo);
    const bare = mkdtempSync(join(tmpdir(), "tgz-remote-"));
    sh(bare, "init", "-q", "--bare");
    sh(repo, "remote", "add", "origin", bare);
    sh(repo, "push", "-q", "origin", "main");
    const teammate = mkdtempSync(join(tmpdir(), "tgz-clone-"));
    sh(teammate, "clone", "-q", bare, ".");
    sh(teammate, "push", "-q", "origin", "origin/main:refs/heads/0012-theirs");
    expect(await n.next()).toBe(1);
    sh(repo, "fetch", "-q", "origin");
    expect(sh(repo, "branch", "--list")).not.toContain("0012");
    expect(await n.next()).toBe(13);
    await n.store.close();
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
    const run = (status: string, extra: Partial<PruneRun> = {}): PruneRun => ({
      id: 7,
      status,
      leased: false,
      prMerged: false,
      ...extra,
    });
    await expect(pruneWorktree(repo, by(clean.path), { force: true, run: run("running") })).rejects.toThrow(
      "its run is running",
    );
    await expect(
      pruneWorktree(repo, by(clean.path), { force: true, run: run("planning", { leased: true }) }),
    ).rejects.toThrow("its run is being planned");
    // a planner that died left its run planning: only forced
    await expect(pruneWorktree(repo, by(clean.path), { force: false, run: run("planning") })).rejects.toThrow(
      /its run is planning but no planner holds it \(use --force, or plan it again with `tgz plan --run-id 7`\)/,
    );
    await expect(pruneWorktree(repo, by(clean.path), { force: false, run: run("paused") })).rejects.toThrow(
      /paused and can be resumed/,
    );
    await expect(pruneWorktree(repo, by(dirty.path), { force: false, run: null })).rejects.toThrow(
      WorktreePruneRefusedError,
    );
    await expect(
      pruneWorktree(repo, by(ahead.path), { force: false, run: run("completed") }),
    ).rejects.toThrow(/1 unmerged commit/);
    await pruneWorktree(repo, by(clean.path), { force: true, run: run("planning") });
    await pruneWorktree(repo, by(dirty.path), { force: true, run: null });
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
    await expect(pruneWorktree(repo, info!, { force: false, run: null })).rejects.toThrow(
      /cannot tell whether branch 0001-x is merged/,
    );
    expect(existsSync(wt.path)).toBe(true);
  });
});

describe("a base branch on the remote", () => {
  /** A clone of a remote that has `main` and `develop`; the clone has only `main` as a local branch. */
  function cloneWithRemoteDevelop() {
    const upstream = gitRepo();
    sh(upstream, "checkout", "-q", "-b", "develop");
    writeFileSync(join(upstream, "dev.txt"), "develop only\n");
    sh(upstream, "add", ".");
    sh(upstream, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "develop");
    sh(upstream, "checkout", "-q", "main");
    const clone = mkdtempSync(join(tmpdir(), "tgz-clone-"));
    sh(clone, "clone", "-q", upstream, ".");
    return { upstream, clone };
  }

  it("starts from origin/<base> when there is no local branch, without tracking it", async () => {
    const { clone } = cloneWithRemoteDevelop();
    expect(sh(clone, "branch", "--list", "develop")).toBe("");
    const wt = await createProtocolWorktree({
      repo: clone,
      base: "develop",
      name: "0001-dev",
      worktreesRoot: worktreesRoot(),
    });
    expect(wt.baseRef).toBe("refs/remotes/origin/develop");
    expect(wt.baseCommit).toBe(sh(clone, "rev-parse", "origin/develop"));
    expect(readFileSync(join(wt.path, "dev.txt"), "utf8")).toBe("develop only\n");
    expect(() => sh(wt.path, "rev-parse", "--abbrev-ref", "@{upstream}")).toThrow();
  });

  it("starts from the local branch when both exist: the user's own commits on it count", async () => {
    const { clone } = cloneWithRemoteDevelop();
    sh(clone, "branch", "develop", "origin/develop");
    sh(clone, "checkout", "-q", "develop");
    writeFileSync(join(clone, "local.txt"), "not pushed yet\n");
    sh(clone, "add", ".");
    sh(clone, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "local");
    sh(clone, "checkout", "-q", "main");
    const wt = await createProtocolWorktree({
      repo: clone,
      base: "develop",
      name: "0001-dev",
      worktreesRoot: worktreesRoot(),
    });
    expect(wt.baseRef).toBe("refs/heads/develop");
    expect(existsSync(join(wt.path, "local.txt"))).toBe(true);
  });

  it("names both places in the error when the base exists in neither", async () => {
    const { clone } = cloneWithRemoteDevelop();
    await expect(
      createProtocolWorktree({
        repo: clone,
        base: "release",
        name: "0001-x",
        worktreesRoot: worktreesRoot(),
      }),
    ).rejects.toThrow(/base branch "release" exists neither as a branch nor as origin\/release/);
  });
});

describe("what counts as merged", () => {
  const commitIn = (dir: string, file: string, text: string) => {
    writeFileSync(join(dir, file), text);
    sh(dir, "add", ".");
    sh(dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", file);
  };

  /** A repository with a remote, a protocol worktree with one commit, and a teammate's clone of the remote. */
  async function branchWithRemote() {
    const repo = gitRepo();
    const bare = mkdtempSync(join(tmpdir(), "tgz-remote-"));
    sh(bare, "init", "-q", "--bare");
    sh(repo, "remote", "add", "origin", bare);
    sh(repo, "push", "-q", "origin", "main");
    sh(repo, "fetch", "-q", "origin");
    const root = worktreesRoot();
    const wt = await createProtocolWorktree({
      repo,
      base: "main",
      name: "0001-feature",
      worktreesRoot: root,
    });
    commitIn(wt.path, "feature.txt", "the feature\n");
    sh(wt.path, "push", "-q", "origin", "0001-feature");
    const teammate = mkdtempSync(join(tmpdir(), "tgz-teammate-"));
    sh(teammate, "clone", "-q", "-b", "main", bare, ".");
    const info = async () => (await listProtocolWorktrees(repo, { root, runs: [], defaultBase: "main" }))[0]!;
    return { repo, wt, teammate, info };
  }

  it("is merged when the remote's base has its commits, before the local base is pulled", async () => {
    const { repo, teammate, info } = await branchWithRemote();
    expect((await info()).unmergedCommits).toBe(1);
    sh(teammate, "merge", "-q", "--no-ff", "-m", "merge", "origin/0001-feature");
    sh(teammate, "push", "-q", "origin", "main");
    sh(repo, "fetch", "-q", "origin");
    expect(sh(repo, "rev-list", "--count", "main..0001-feature")).toBe("1");
    expect(await info()).toMatchObject({ unmergedCommits: 0, mergedByContent: false });
    await pruneWorktree(repo, await info(), { force: false, run: null });
    expect(sh(repo, "branch", "--list", "0001-feature")).toBe("");
  });

  it("is merged by content after a squash merge, though its commits are not in the base", async () => {
    const { repo, teammate, info } = await branchWithRemote();
    commitIn(teammate, "other.txt", "someone else's work\n");
    sh(teammate, "merge", "-q", "--squash", "origin/0001-feature");
    sh(teammate, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "squashed");
    sh(teammate, "push", "-q", "origin", "main");
    sh(repo, "fetch", "-q", "origin");
    expect(await info()).toMatchObject({ unmergedCommits: 1, mergedByContent: true });
    await pruneWorktree(repo, await info(), { force: false, run: null });
    expect(sh(repo, "branch", "--list", "0001-feature")).toBe("");
  });

  it("is not merged when the base has only part of it, unless its PR was merged", async () => {
    const { repo, wt, info } = await branchWithRemote();
    commitIn(wt.path, "more.txt", "not pushed anywhere\n");
    expect(await info()).toMatchObject({ unmergedCommits: 2, mergedByContent: false });
    const run = { id: 3, status: "completed", leased: false, prMerged: false };
    await expect(pruneWorktree(repo, await info(), { force: false, run })).rejects.toThrow(
      /2 unmerged commit/,
    );
    await pruneWorktree(repo, await info(), { force: false, run: { ...run, prMerged: true } });
    expect(existsSync(wt.path)).toBe(false);
  });
});

describe("which runs work in a protocol worktree", () => {
  const planned = {
    worktreePath: "/data/worktrees/repo-1234/0001-x",
    templateConfig: { branch: "0001-x", base_commit: "abc" },
  } as unknown as ProtocolRun;

  it("only a run tgz plan made: branch and start commit recorded, its folder under the data dir's worktrees", () => {
    expect(protocolWorktreeOf(planned, "/data")).toEqual({
      path: "/data/worktrees/repo-1234/0001-x",
      branch: "0001-x",
      baseCommit: "abc",
    });
    // the user's own linked worktree, or a project's checkout given by path or git URL
    expect(protocolWorktreeOf({ ...planned, worktreePath: "/home/me/my-feature" }, "/data")).toBeNull();
    expect(protocolWorktreeOf({ ...planned, templateConfig: {} }, "/data")).toBeNull();
    expect(protocolWorktreeOf({ ...planned, templateConfig: { branch: "0001-x" } }, "/data")).toBeNull();
    expect(protocolWorktreeOf({ ...planned, worktreePath: null }, "/data")).toBeNull();
    expect(protocolWorktreeOf(planned, "/other-data")).toBeNull();
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

  it("commits and restores unsigned and without hooks, whatever the repository's config says", async () => {
    const wt = await protocolWorktree();
    const start = sh(wt, "rev-parse", "HEAD");
    // a signing program that always fails, and hooks that refuse or leave traces
    sh(wt, "config", "commit.gpgsign", "true");
    sh(wt, "config", "gpg.program", "false");
    const hooks = mkdtempSync(join(tmpdir(), "tgz-hooks-"));
    const trace = join(hooks, "ran");
    for (const hook of ["pre-commit", "commit-msg", "post-commit"]) {
      writeFileSync(join(hooks, hook), `#!/bin/sh\necho ${hook} >> '${trace}'\nexit 1\n`);
      chmodSync(join(hooks, hook), 0o755);
    }
    sh(wt, "config", "core.hooksPath", hooks);
    writeFileSync(join(wt, "a.txt"), "step\n");
    expect(() => sh(wt, "commit", "-q", "--allow-empty", "-m", "the user's own commit")).toThrow();
    expect(readFileSync(trace, "utf8")).toBe("pre-commit\n");
    rmSync(trace);
    const saved = await checkpoint(wt, "0001-cp: step (qa pass)");
    expect(saved.changed).toBe(true);
    const restored = await restoreTo(wt, start, "0001-cp: restore before step");
    expect(restored.changed).toBe(true);
    expect(existsSync(trace)).toBe(false);
    expect(sh(wt, "log", "--format=%G?", "-2")).toBe("N\nN");
  });
});

describe("where a step starts", () => {
  const run = {
    worktreePath: "/data/worktrees/repo-1234/0001-x",
    templateConfig: { base_commit: "start", branch: "0001-x" },
  } as unknown as ProtocolRun;
  const place = { run, config: { dataDir: "/data" } };
  const step = (stepIndex: number, checkpointed?: string) =>
    ({
      stepIndex,
      stepName: `s${stepIndex}`,
      runtimeState: checkpointed ? { checkpoint: checkpointed } : {},
    }) as StepRun;

  it("is the checkpoint of the nearest earlier step that has one, else the run's start, whatever the step's own attempts", () => {
    const steps = [step(0, "c0"), step(1), step(2, "c2-of-an-earlier-attempt"), step(3)];
    expect(stepBaseCommit(place, steps, steps[0]!)).toBe("start");
    expect(stepBaseCommit(place, steps, steps[1]!)).toBe("c0");
    expect(stepBaseCommit(place, steps, steps[2]!)).toBe("c0");
    expect(stepBaseCommit(place, steps, steps[3]!)).toBe("c2-of-an-earlier-attempt");
    // a run in a checkout of the user's has no checkpoints, so no step base
    expect(stepBaseCommit({ ...place, run: { ...run, worktreePath: "/repo" } }, steps, steps[1]!)).toBeNull();
  });
});
