/**
 * What a PR/MR request is made of: the gh/glab arguments, the real `gh` against a local
 * GitHub-like host, what the CLIs print, the REST calls against a local endpoint, and the body.
 * `glab` has no package for this platform here, so its path goes through a stand-in script.
 */
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  choosePrRoute,
  cliArgs,
  MissingTokenError,
  openPullRequest,
  PullRequestError,
  parseCliOutput,
} from "../../src/pr/open-pull-request.js";
import { prBody } from "../../src/pr/pr-body.js";
import { resolvePrTarget } from "../../src/pr/pr-target.js";
import { InvalidInputError } from "../../src/shared/errors.js";
import { GH, ghPresent, localGitHub } from "../support/local-github.js";
import { recordingApi } from "../support/recording-api.js";

const github = { provider: "github" as const, repository: "acme/demo", host: "github.com", apiUrl: "" };
const gitlab = { provider: "gitlab" as const, repository: "group/sub/demo", host: "gitlab.com", apiUrl: "" };

/**
 * A stand-in `glab` on PATH: logged in, appends each argv to `calls`, and answers `create` with
 * `created` (a URL) or, when `exists`, glab's "already exists" error; `view` with `view`.
 */
function standInGlab(answers: { created?: string; exists?: string; view?: unknown }) {
  const dir = mkdtempSync(join(tmpdir(), "tgz-glab-"));
  const calls = join(dir, "calls");
  writeFileSync(join(dir, "view.json"), JSON.stringify(answers.view ?? {}));
  writeFileSync(
    join(dir, "glab"),
    [
      "#!/bin/sh",
      `printf '%s\\n' "$*" >> '${calls}'`,
      'case "$2" in',
      `  create) ${answers.exists ? `echo '${answers.exists}' >&2; exit 1` : `echo '${answers.created}'`} ;;`,
      `  view) cat '${join(dir, "view.json")}' ;;`,
      "esac",
    ].join("\n"),
  );
  chmodSync(join(dir, "glab"), 0o755);
  return {
    env: { PATH: `${dir}:/usr/bin:/bin` },
    calls: () => readFileSync(calls, "utf8").trim().split("\n"),
  };
}

/** A local REST endpoint that answers each call in turn (then 500) and records them. */
const restApi = (replies: { status: number; body: unknown }[]) =>
  recordingApi((_method, i) => replies[i] ?? { status: 500, body: {} });

const pr = {
  title: "0003-x: Greeter",
  body: "## Greeter\n\nbody with `ticks` and 'quotes'",
  head: "0003-x",
  base: "main",
};

describe("pull requests through gh and glab", () => {
  it("builds gh pr create and glab mr create arguments for the resolved repository, one argument per value (no shell)", () => {
    expect(cliArgs(github, pr)).toEqual([
      "pr",
      "create",
      "--repo",
      "acme/demo",
      "--title",
      "0003-x: Greeter",
      "--body",
      pr.body,
      "--base",
      "main",
      "--head",
      "0003-x",
    ]);
    expect(cliArgs(gitlab, pr)).toEqual([
      "mr",
      "create",
      "--repo",
      "group/sub/demo",
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
    // self-hosted: the host goes with the repository
    expect(cliArgs({ ...github, host: "git.corp" }, pr).slice(2, 4)).toEqual([
      "--repo",
      "git.corp/acme/demo",
    ]);
    expect(cliArgs({ ...gitlab, host: "gitlab.corp" }, pr).slice(2, 4)).toEqual([
      "--repo",
      "https://gitlab.corp/group/sub/demo",
    ]);
    // the repository named for CI (a fork's upstream) is the one the request goes to
    const upstream = resolvePrTarget("git@github.com:me/demo.git", { GITHUB_REPOSITORY: "acme/demo" });
    expect(cliArgs(upstream, pr).slice(2, 4)).toEqual(["--repo", "acme/demo"]);
    // an https remote's port belongs to the web host; an ssh remote's does not
    expect(
      resolvePrTarget("https://git.corp:8443/acme/demo.git", { TASKSGODZILLA_PR_PROVIDER: "github" }),
    ).toEqual({
      provider: "github",
      repository: "acme/demo",
      host: "git.corp:8443",
      apiUrl: "https://git.corp:8443/api/v3",
    });
    expect(resolvePrTarget("ssh://git@github.com:22/acme/demo.git", {}).host).toBe("github.com");
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

  it.skipIf(!ghPresent)(
    "opens through the real gh logged in to the repository's host, and returns the open request when gh says it already exists",
    async () => {
      const gh = await localGitHub();
      try {
        gh.login();
        const target = { ...github, host: gh.host };
        const route = await choosePrRoute(target, process.cwd(), { PATH: "/usr/bin:/bin", ...gh.env });
        expect(route).toMatchObject({ via: "cli", binary: GH });
        expect(await openPullRequest(target, pr, process.cwd(), route)).toEqual({
          url: `https://${gh.host}/acme/demo/pull/1`,
          number: 1,
          via: "cli",
          existed: false,
        });
        expect(gh.pulls).toEqual([
          expect.objectContaining({
            title: pr.title,
            body: pr.body,
            headRefName: "0003-x",
            baseRefName: "main",
          }),
        ]);
        expect(await openPullRequest(target, pr, process.cwd(), route)).toEqual({
          url: `https://${gh.host}/acme/demo/pull/1`,
          number: 1,
          via: "cli",
          existed: true,
        });
        expect(gh.pulls).toHaveLength(1);
        expect(gh.operations.filter((op) => op === "PullRequestCreate")).toHaveLength(1);
      } finally {
        await gh.close();
      }
    },
  );

  it.skipIf(!ghPresent)(
    "does not use a gh logged in to another host: the token goes to the REST API instead",
    async () => {
      const gh = await localGitHub();
      try {
        gh.login();
        expect(
          await choosePrRoute(github, process.cwd(), { ...process.env, ...gh.env, GITHUB_TOKEN: "t" }),
        ).toEqual({
          via: "api",
          token: "t",
        });
        // asked for by name, gh is used all the same, and says what is wrong
        const forced = await choosePrRoute(github, process.cwd(), {
          ...process.env,
          ...gh.env,
          TASKSGODZILLA_PR_VIA: "cli",
        });
        const wrongHost = { ...github, host: "127.0.0.1:9" };
        await expect(openPullRequest(wrongHost, pr, process.cwd(), forced)).rejects.toThrow(
          new RegExp(`^${GH} could not open the request: `),
        );
      } finally {
        await gh.close();
      }
    },
  );

  it("returns the open merge request when glab says it already exists", async () => {
    const exists = standInGlab({
      exists: "Another open merge request already exists for this source branch: !4",
      view: { web_url: "https://gitlab.com/group/sub/demo/-/merge_requests/4", iid: 4 },
    });
    const opened = await openPullRequest(
      gitlab,
      pr,
      process.cwd(),
      await choosePrRoute(gitlab, ".", exists.env),
    );
    expect(opened).toEqual({
      url: "https://gitlab.com/group/sub/demo/-/merge_requests/4",
      number: 4,
      via: "cli",
      existed: true,
    });
    expect(exists.calls().at(-1)).toBe("mr view 0003-x --repo group/sub/demo --output json");
  });

  it("says so when the CLI is asked for but not installed, a token is missing, or the way is mistyped", async () => {
    const route = (env: NodeJS.ProcessEnv) =>
      choosePrRoute(github, process.cwd(), { PATH: "/nonexistent", ...env });
    await expect(route({ TASKSGODZILLA_PR_VIA: "cli", GITHUB_TOKEN: "t" })).rejects.toThrow(PullRequestError);
    await expect(route({ TASKSGODZILLA_PR_VIA: "cli", GITHUB_TOKEN: "t" })).rejects.toThrow(
      "TASKSGODZILLA_PR_VIA=cli but gh is not installed (not on PATH)",
    );
    await expect(route({})).rejects.toThrow(MissingTokenError);
    await expect(route({ GITHUB_TOKEN: "" })).rejects.toThrow(
      /no github token: set GITHUB_TOKEN or GH_TOKEN/,
    );
    expect(await route({ GH_TOKEN: "t2" })).toEqual({ via: "api", token: "t2" });
    await expect(route({ TASKSGODZILLA_PR_VIA: "rest", GITHUB_TOKEN: "t" })).rejects.toThrow(
      InvalidInputError,
    );
    await expect(route({ TASKSGODZILLA_PR_VIA: "rest", GITHUB_TOKEN: "t" })).rejects.toThrow(
      "TASKSGODZILLA_PR_VIA=rest: expected auto, cli, api",
    );
  });
});

describe("pull requests through the GitHub REST API", () => {
  it('returns the open pull request when GitHub answers 422 "already exists"', async () => {
    const api = await restApi([
      {
        status: 422,
        body: {
          message: "Validation Failed",
          errors: [
            {
              resource: "PullRequest",
              code: "custom",
              message: "A pull request already exists for acme:0003-x.",
            },
          ],
        },
      },
      { status: 200, body: [{ html_url: "https://github.com/acme/demo/pull/9", number: 9 }] },
    ]);
    const opened = await openPullRequest({ ...github, apiUrl: api.url }, pr, process.cwd(), {
      via: "api",
      token: "t",
    });
    api.close();
    expect(opened).toEqual({
      url: "https://github.com/acme/demo/pull/9",
      number: 9,
      via: "api",
      existed: true,
    });
    expect(api.calls.map(({ method, url }) => ({ method, url }))).toEqual([
      { method: "POST", url: "/repos/acme/demo/pulls" },
      { method: "GET", url: "/repos/acme/demo/pulls?head=acme%3A0003-x&state=open" },
    ]);
  });

  it("reports any other refusal with GitHub's message", async () => {
    const api = await restApi([
      {
        status: 422,
        body: { message: "Validation Failed", errors: [{ message: "No commits between main and 0003-x" }] },
      },
    ]);
    const attempt = openPullRequest({ ...github, apiUrl: api.url }, pr, process.cwd(), {
      via: "api",
      token: "t",
    });
    await expect(attempt).rejects.toThrow(
      "GitHub refused the pull request (HTTP 422): Validation Failed; No commits between main and 0003-x",
    );
    api.close();
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
