import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkpoint, diffOf, restoreTo } from "../../src/git/checkpoints.js";
import { BaseBranchMissingError, NotAGitRepositoryError } from "../../src/git/git-command.js";
import { nextProtocolNumber, protocolName, sanitizeBranchName } from "../../src/git/protocol-names.js";
import {
  createProtocolWorktree,
  listWorktrees,
  pruneWorktree,
  WorktreePruneRefusedError,
} from "../../src/git/worktrees.js";
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
    const clean = await createProtocolWorktree({
      repo,
      base: "main",
      name: "0001-clean",
      worktreesRoot: root,
    });
    const dirty = await createProtocolWorktree({
      repo,
      base: "main",
      name: "0002-dirty",
      worktreesRoot: root,
    });
    const ahead = await createProtocolWorktree({
      repo,
      base: "main",
      name: "0003-ahead",
      worktreesRoot: root,
    });
    writeFileSync(join(dirty.path, "wip.txt"), "work in progress");
    writeFileSync(join(ahead.path, "done.txt"), "done");
    await checkpoint(ahead.path, "step");
    const list = await listWorktrees(repo, "main");
    const by = (p: string) => list.find((w) => w.path === p)!;
    expect(by(clean.path)).toMatchObject({
      branch: "0001-clean",
      dirty: false,
      unmergedCommits: 0,
      sizeBytes: expect.any(Number),
    });
    expect(by(dirty.path).dirty).toBe(true);
    expect(by(ahead.path).unmergedCommits).toBe(1);
    await expect(pruneWorktree(repo, by(clean.path), { force: false, active: true })).rejects.toThrow(
      /its run is active/,
    );
    await expect(pruneWorktree(repo, by(dirty.path), { force: false, active: false })).rejects.toThrow(
      WorktreePruneRefusedError,
    );
    await expect(pruneWorktree(repo, by(ahead.path), { force: false, active: false })).rejects.toThrow(
      /1 unmerged commit/,
    );
    await pruneWorktree(repo, by(clean.path), { force: false, active: false });
    await pruneWorktree(repo, by(dirty.path), { force: true, active: false });
    expect(existsSync(clean.path) || existsSync(dirty.path)).toBe(false);
    expect((await listWorktrees(repo, "main")).map((w) => w.branch)).toEqual(["0003-ahead"]);
  });
});

describe("checkpoints", () => {
  it("commits a step's changes, diffs them, and restores the files while keeping .protocols and history", async () => {
    const repo = gitRepo();
    const wt = await createProtocolWorktree({
      repo,
      base: "main",
      name: "0001-cp",
      worktreesRoot: worktreesRoot(),
    });
    const before = await checkpoint(wt.path, "nothing yet");
    expect(before).toEqual({ commit: wt.baseCommit, changed: false });
    writeFileSync(join(wt.path, "a.txt"), "step one\n");
    mkdirSync(join(wt.path, ".protocols", "0001-cp"), { recursive: true });
    writeFileSync(join(wt.path, ".protocols", "0001-cp", "log.md"), "step one ran\n");
    const one = await checkpoint(wt.path, "0001-cp: step one (qa pass)");
    expect(one.changed).toBe(true);
    expect(sh(wt.path, "log", "-1", "--format=%s")).toBe("0001-cp: step one (qa pass)");
    writeFileSync(join(wt.path, "a.txt"), "step two\n");
    writeFileSync(join(wt.path, "b.txt"), "new in two\n");
    writeFileSync(join(wt.path, ".protocols", "0001-cp", "log.md"), "step two ran\n");
    const two = await checkpoint(wt.path, "step two");
    const diff = await diffOf(wt.path, one.commit, two.commit);
    expect(diff.files).toEqual(["a.txt", "b.txt"]);
    expect(diff.patch).toContain("+step two");
    await restoreTo(wt.path, one.commit);
    expect(readFileSync(join(wt.path, "a.txt"), "utf8")).toBe("step one\n");
    expect(existsSync(join(wt.path, "b.txt"))).toBe(false);
    expect(readFileSync(join(wt.path, ".protocols", "0001-cp", "log.md"), "utf8")).toBe("step two ran\n");
    expect(sh(wt.path, "rev-parse", "HEAD")).toBe(two.commit);
  });
});
