/**
 * What a PR/MR request is made of: the gh/glab arguments (those CLIs are not installed here, so the
 * argument building is checked as a function), what they print, and the body.
 */
import { describe, expect, it } from "vitest";
import {
  cliArgs,
  openPullRequest,
  PullRequestError,
  parseCliOutput,
} from "../../src/pr/open-pull-request.js";
import { prBody } from "../../src/pr/pr-body.js";

const pr = {
  title: "0003-x: Greeter",
  body: "## Greeter\n\nbody with `ticks` and 'quotes'",
  head: "0003-x",
  base: "main",
};

describe("pull requests through gh and glab", () => {
  it("builds gh pr create and glab mr create arguments, one argument per value (no shell)", () => {
    expect(cliArgs("github", pr)).toEqual([
      "pr",
      "create",
      "--title",
      "0003-x: Greeter",
      "--body",
      pr.body,
      "--base",
      "main",
      "--head",
      "0003-x",
    ]);
    expect(cliArgs("gitlab", pr)).toEqual([
      "mr",
      "create",
      "--title",
      "0003-x: Greeter",
      "--description",
      pr.body,
      "--target-branch",
      "main",
      "--source-branch",
      "0003-x",
      "--yes",
    ]);
  });

  it("reads the URL and number from what the CLIs print last", () => {
    expect(
      parseCliOutput("Creating pull request for 0003-x into main\n\nhttps://github.com/acme/demo/pull/12\n"),
    ).toEqual({
      url: "https://github.com/acme/demo/pull/12",
      number: 12,
    });
    expect(parseCliOutput("https://gitlab.com/g/demo/-/merge_requests/4/\n")).toEqual({
      url: "https://gitlab.com/g/demo/-/merge_requests/4/",
      number: 4,
    });
    expect(parseCliOutput("done")).toEqual({ url: "done", number: null });
  });

  it("says so when the CLI is asked for but not installed, instead of falling back", async () => {
    const target = { provider: "github" as const, repository: "acme/demo", apiUrl: "http://127.0.0.1:9" };
    const attempt = openPullRequest(target, pr, process.cwd(), {
      PATH: "/nonexistent",
      TASKSGODZILLA_PR_VIA: "cli",
      GITHUB_TOKEN: "t",
    });
    await expect(attempt).rejects.toThrow(PullRequestError);
    await expect(attempt).rejects.toThrow("TASKSGODZILLA_PR_VIA=cli but gh is not installed (not on PATH)");
  });
});

describe("the PR body", () => {
  it("lists every step with its status, verdict and tokens, and leaves out what a run does not have", () => {
    expect(
      prBody({
        protocolName: "0003-x",
        title: "Greeter",
        task: null,
        summary: null,
        specHash: null,
        steps: [
          { id: "01-a", status: "completed", verdict: "pass", tokens: 120 },
          { id: "02-b", status: "failed", verdict: "fail", tokens: 0 },
          { id: "03-c", status: "pending", verdict: null, tokens: 0 },
        ],
        totalTokens: 300,
        estimatedCalls: 2,
      }),
    ).toBe(
      [
        "## Greeter",
        "",
        "### Steps",
        "",
        "| Step | Status | QA | Tokens |",
        "|---|---|---|---|",
        "| `01-a` | completed | pass | 120 |",
        "| `02-b` | failed | fail | 0 |",
        "| `03-c` | pending | - | 0 |",
        "",
        "**Tokens:** 300 (2 call(s) estimated)  ",
        "**Protocol:** `0003-x`",
        "",
        "Opened by TasksGodzilla; the full event ledger is in the run (`tgz events`).",
      ].join("\n"),
    );
  });
});
