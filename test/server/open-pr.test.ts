/**
 * The open_pr action over real HTTP: a planned run's branch is pushed to a local bare remote and the
 * pull request is opened through a local REST endpoint that answers like GitHub.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import { planRun } from "../../src/services/plan-run.js";
import { gitRepo } from "../scenario/harness.js";
import { recordingApi } from "../support/recording-api.js";
import { type Api, startApi } from "./api-harness.js";

const dataDir = mkdtempSync(join(tmpdir(), "tgz-open-pr-"));
let github: Awaited<ReturnType<typeof recordingApi>>;
let api: Api;

beforeAll(async () => {
  github = await recordingApi(() => ({
    status: 201,
    body: { html_url: "https://github.example/acme/demo/pull/9", number: 9 },
  }));
  // what the worker's open_pr job reads: where the run's worktree is, and how to open the PR
  Object.assign(process.env, {
    TASKSGODZILLA_DATA_DIR: dataDir,
    TASKSGODZILLA_PR_PROVIDER: "github",
    TASKSGODZILLA_PR_VIA: "api",
    GITHUB_REPOSITORY: "acme/demo",
    GITHUB_API_URL: github.url,
    GITHUB_TOKEN: "pr-token-never-shown",
  });
  api = await startApi();
});
afterAll(async () => {
  await api.close();
  await github.close();
});

describe("POST /protocols/{id}/actions/open_pr", () => {
  it("pushes the run's branch and opens its pull request in a job, recording pr_opened", async () => {
    const repo = gitRepo();
    const bare = mkdtempSync(join(tmpdir(), "tgz-remote-"));
    execFileSync("git", ["init", "-q", "--bare", bare]);
    execFileSync("git", ["remote", "add", "origin", bare], { cwd: repo });
    await api.call("POST", "/projects", { name: "demo", git_url: repo, local_path: repo });
    // planned as `tgz plan` does, so the run has a branch and a worktree of its own
    const plan = {
      title: "Greeter",
      summary: "Write it.",
      context: "none",
      steps: [{ slug: "write", title: "Write greet.sh", kind: "work", prompt: "Create greet.sh." }],
    };
    const run = await planRun(
      {
        store: api.store,
        registry: createDefaultRegistry(),
        configFor: (d) => loadConfig(d, { TASKSGODZILLA_DATA_DIR: dataDir }),
      },
      { task: "Add a greeter", repoDir: repo, engine: "replay", inputs: { final: JSON.stringify(plan) } },
    );
    expect(run.status).toBe("planned");

    const queued = await api.call("POST", `/protocols/${run.id}/actions/open_pr`);
    expect(queued.body).toMatchObject({ message: "PR queued", job: { deduplicated: false } });
    expect(
      (await api.call("GET", "/queues/jobs?status=queued")).body.map((j: { kind: string }) => j.kind),
    ).toEqual(["open_pr"]);
    await api.drain();

    expect(github.calls).toHaveLength(1);
    expect(github.calls[0]).toMatchObject({
      method: "POST",
      url: "/repos/acme/demo/pulls",
      headers: { authorization: "Bearer pr-token-never-shown" },
      body: { head: run.protocolName, base: "main", title: `${run.protocolName}: Greeter` },
    });
    const pushed = execFileSync("git", ["-C", bare, "ls-tree", "-r", "--name-only", run.protocolName], {
      encoding: "utf8",
    });
    expect(pushed).toContain(`.protocols/${run.protocolName}/plan.md`);
    const events = (await api.call("GET", `/protocols/${run.id}/events?after=0`)).body as {
      event_type: string;
      metadata: Record<string, unknown>;
    }[];
    expect(events.map((e) => e.event_type)).toContain("open_pr_enqueued");
    expect(events.find((e) => e.event_type === "pr_opened")?.metadata).toMatchObject({
      url: "https://github.example/acme/demo/pull/9",
    });
    expect(JSON.stringify(events)).not.toContain("pr-token-never-shown");
  });
});
