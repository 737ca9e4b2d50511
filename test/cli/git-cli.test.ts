/** tgz plan, worktree, diff, pr and spec audit, as a user runs them, on temp repositories. */
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
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

const PLAN = JSON.stringify({
  title: "Greeter",
  summary: "Write it.",
  context: "none",
  steps: [{ slug: "write", title: "Write greet.sh", kind: "work", prompt: "Create greet.sh." }],
});

/** A local REST endpoint that records the one call it gets and answers like GitHub or GitLab. */
async function recordingApi(reply: { status: number; body: unknown }) {
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
      res.writeHead(reply.status, { "content-type": "application/json" }).end(JSON.stringify(reply.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    calls,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => server.close(),
  };
}

async function plannedRepo() {
  const repo = gitRepo();
  const bare = mkdtempSync(join(tmpdir(), "tgz-remote-"));
  execFileSync("git", ["init", "-q", "--bare", bare]);
  execFileSync("git", ["remote", "add", "origin", bare], { cwd: repo });
  const r = await tgz(
    {},
    "plan",
    "Add a greeter",
    "--repo",
    repo,
    "--engine",
    "replay",
    "--input",
    `final=${PLAN}`,
    "--json",
  );
  expect(r.code).toBe(0);
  return {
    repo,
    bare,
    run: JSON.parse(r.stdout) as { run_id: number; protocol_name: string; worktree: string },
  };
}

beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), "tgz-git-cli-"));
});

describe("tgz git life cycle", () => {
  it("plans, lists the worktree with its run, and refuses to prune work that would be lost", async () => {
    const { repo, run } = await plannedRepo();
    expect(run.protocol_name).toBe("0001-add-a-greeter");
    const list = await tgz({}, "worktree", "list", "--repo", repo, "--json");
    const rows = JSON.parse(list.stdout) as {
      branch: string;
      run_id: number;
      unmergedCommits: number;
      sizeBytes: number;
    }[];
    expect(rows).toEqual([
      expect.objectContaining({ branch: run.protocol_name, run_id: run.run_id, unmergedCommits: 1 }),
    ]);
    expect((await tgz({}, "worktree", "list", "--repo", repo)).stdout).toMatch(
      /Total: [\d.]+ MB in 1 worktree/,
    );
    writeFileSync(join(run.worktree, "greet.sh"), "echo hello\n");
    expect((await tgz({}, "diff", String(run.run_id))).stdout).toContain("+echo hello");
    const refused = await tgz({}, "worktree", "prune", "--repo", repo);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/refusing to prune .*uncommitted work/);
    expect((await tgz({}, "worktree", "prune", "--repo", repo, "--force")).code).toBe(0);
    expect(JSON.parse((await tgz({}, "worktree", "list", "--repo", repo, "--json")).stdout)).toEqual([]);
  });

  it("pushes the branch and opens a GitHub PR through the REST API, with the token in the header only", async () => {
    const { bare, run } = await plannedRepo();
    const api = await recordingApi({
      status: 201,
      body: { html_url: "https://github.example/acme/demo/pull/7", number: 7 },
    });
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
    expect(api.calls[0]!.body).toMatchObject({
      head: run.protocol_name,
      base: "main",
      title: `${run.protocol_name}: Greeter`,
    });
    expect(api.calls[0]!.body.body).toMatch(/\| `01-write` \| planned|pending/);
    expect(execFileSync("git", ["ls-remote", "--heads", bare], { encoding: "utf8" })).toContain(
      `refs/heads/${run.protocol_name}`,
    );
    const events = await tgz({}, "events", String(run.run_id), "--json");
    expect(events.stdout).toContain('"pr_opened"');
    expect(events.stdout).not.toContain("tok-secret-1");
  });

  it("opens a GitLab MR through the REST API, and fails clearly without a token", async () => {
    const { run } = await plannedRepo();
    const api = await recordingApi({
      status: 201,
      body: { web_url: "https://gitlab.example/group/demo/-/merge_requests/3", iid: 3 },
    });
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
    const missing = await tgz({ ...env, GITLAB_TOKEN: "" }, "pr", String(run.run_id));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no gitlab token: set GITLAB_TOKEN/);
  });

  it("audits stored specs and backfills a removed one from its protocol folder", async () => {
    const { run } = await plannedRepo();
    const store = await openStore({ sqlitePath: join(dataDir, "tasksgodzilla.db") });
    const stored = await store.getProtocolRun(run.run_id);
    await store.updateProtocolRun(run.run_id, { templateConfig: {} });
    await store.close();
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
