/**
 * The web console in real Chromium against a real `tgz server` process, on real runs: a run planned
 * by the replay engine into its own worktree (with a remote to push to and a local stand-in for
 * GitHub's API), whose shell and replayed agent steps loop on a failing QA check, use tokens and
 * block on a check; runs created through the API for the list. The page asks for the token once,
 * lists, searches, filters and pages runs, shows a run's situation, timeline, transcripts, diffs,
 * tokens and PR link, offers exactly the actions the server allows and shows its refusals, follows
 * the event stream across a server restart (a stale banner, then recovery without a reload), and
 * reads well in dark mode and on a narrow window. Screenshots go to test-results/console/ (not
 * committed).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open-store.js";
import { gitRepo } from "../scenario/harness.js";
import { shellSpec } from "../server/api-harness.js";
import { freePort, type Proc, tgzProcess } from "../service/process-harness.js";
import { recordingApi } from "../support/recording-api.js";
import { systemToolPresent } from "../support/system-tool.js";

const CHROMIUM = "/usr/bin/chromium";
const TOKEN = "console-token-5e1d7a";
/** Where the pictures go (test-results/ is kept by the test run, not committed). */
const SHOTS = join(import.meta.dirname, "../../test-results/console");
const PAGE_SIZE = 15;

const PLAN = {
  title: "Greeter",
  summary: "Write it, let an agent look, check it.",
  context: "A scratch repository.",
  steps: [
    { slug: "write", title: "Write the greeter", kind: "work", prompt: "Write greet.sh." },
    { slug: "agent", title: "Let an agent look", kind: "work", prompt: "Look at it." },
    { slug: "check", title: "Check it", kind: "work", prompt: "Check it." },
  ],
};
/** Writes an attempt file each time; QA wants the second attempt, so the loop runs it twice. */
const WRITE = [
  'n=$(( $(cat "$TASKSGODZILLA_PROTOCOL_DIR/attempts" 2>/dev/null || echo 0) + 1 ))',
  'echo $n > "$TASKSGODZILLA_PROTOCOL_DIR/attempts"',
  'echo "echo hello from attempt $n" > "greet-$n.sh"',
  'echo "wrote attempt $n"',
].join("\n");

const present = systemToolPresent(CHROMIUM, "the web console tests", "chromium");

describe.skipIf(!present)(
  `web console in Chromium${present ? "" : ` (skipped: ${CHROMIUM} missing)`}`,
  () => {
    const dir = mkdtempSync(join(tmpdir(), "tgz-console-"));
    const db = join(dir, "tgz.db");
    const data = join(dir, "data");
    let port = 0;
    let base = "";
    let server: Proc | undefined;
    let browser: BrowserContext | undefined;
    let page: Page;
    let github: Awaited<ReturnType<typeof recordingApi>>;
    let planned = { run_id: 0, protocol_name: "", worktree: "" };
    let goneRunId = 0;
    let goneRepo = "";
    let demoProject = 0;

    const env = () => ({
      TASKSGODZILLA_DATA_DIR: data,
      TASKSGODZILLA_REDIS_URL: "",
      TASKSGODZILLA_DB_URL: "",
      TASKSGODZILLA_PR_PROVIDER: "github",
      TASKSGODZILLA_PR_VIA: "api",
      GITHUB_REPOSITORY: "acme/demo",
      GITHUB_API_URL: github.url,
      GITHUB_TOKEN: "gh-token-1",
    });
    const tgzServer = async (folder: string, listen: number, token: string, extra = {}) => {
      const proc = tgzProcess(["--db", join(folder, "tgz.db"), "server", "--port", String(listen)], {
        ...env(),
        TASKSGODZILLA_DATA_DIR: join(folder, "data"),
        TASKSGODZILLA_API_TOKEN: token,
        ...extra,
      });
      await proc.waitFor(/API on http:\/\/127\.0\.0\.1:\d+/);
      return proc;
    };
    const startServer = async () => {
      server = await tgzServer(dir, port, TOKEN);
    };
    const cli = (...args: string[]) =>
      execFileSync("node", [join(import.meta.dirname, "../../dist/cli/main.js"), "--db", db, ...args], {
        env: { ...process.env, ...env() },
        encoding: "utf8",
      });

    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${TOKEN}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: res.status, body: (await res.json()) as any };
    };
    const shot = async (name: string, p = page) => {
      mkdirSync(SHOTS, { recursive: true });
      await p.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
    };
    /** The ids of the events the page shows, in page order. */
    const shownIds = () =>
      page.$$eval("#events tr", (rows) => rows.map((r) => Number((r as HTMLElement).dataset.eventId)));
    /** A run's events as the API has them, oldest first. */
    const storedIds = async (id: number) =>
      ((await call("GET", `/protocols/${id}/events?after=0`)).body as { id: number }[]).map((e) => e.id);

    beforeAll(async () => {
      github = await recordingApi(() => ({
        status: 201,
        body: { html_url: "https://github.example/acme/demo/pull/7", number: 7 },
      }));
      port = await freePort();
      base = `http://127.0.0.1:${port}`;
      await startServer();

      // a run planned into its own worktree, with a remote to push its branch to
      const repo = gitRepo();
      const bare = mkdtempSync(join(tmpdir(), "tgz-remote-"));
      execFileSync("git", ["init", "-q", "--bare", bare]);
      execFileSync("git", ["remote", "add", "origin", bare], { cwd: repo });
      const planner = join(dir, "planner.jsonl");
      writeFileSync(
        planner,
        [
          { type: "usage", usage: { input: 900, output: 100 } },
          { type: "final", text: JSON.stringify(PLAN) },
        ]
          .map((e) => JSON.stringify(e))
          .join("\n"),
      );
      planned = JSON.parse(
        cli(
          "plan",
          "Add a greeter",
          "--repo",
          repo,
          "--engine",
          "replay",
          "--input",
          `recording=${planner}`,
          "--json",
        ),
      );
      // the steps do their work without an agent: shell commands and a replayed agent call
      const protocolRoot = join(planned.worktree, ".protocols", planned.protocol_name);
      const recording = join(protocolRoot, "logs", "agent-recording.jsonl");
      writeFileSync(
        recording,
        [
          { type: "message", text: "Reading greet-2.sh before I judge it." },
          { type: "tool", name: "read_file", detail: '{"path":"greet-2.sh"}' },
          { type: "tool_output", name: "read_file", text: "echo hello from attempt 2\n" },
          { type: "usage", usage: { input: 1500, output: 40 } },
          { type: "final", text: "It greets." },
        ]
          .map((e) => JSON.stringify(e))
          .join("\n"),
      );
      const store = await openStore({ sqlitePath: db });
      const run = await store.getProtocolRun(planned.run_id);
      const spec = run.templateConfig.protocol_spec as { steps: Record<string, unknown>[] };
      Object.assign(spec.steps[0]!, {
        engine_id: "shell",
        inputs: { command: WRITE },
        qa: { policy: "light", checks: ["test -e greet-2.sh || { echo 'greet-2.sh is missing'; exit 3; }"] },
        policies: [{ behavior: "loop", step_back: 0, max_iterations: 3 }],
      });
      Object.assign(spec.steps[1]!, { engine_id: "replay", inputs: { recording }, qa: { policy: "skip" } });
      Object.assign(spec.steps[2]!, {
        engine_id: "shell",
        inputs: { command: "echo checking" },
        qa: { policy: "light", checks: ["seq 1 40; echo 'greet.sh says nothing'; exit 5"] },
        policies: [],
      });
      await store.updateProtocolRun(run.id, {
        templateConfig: { ...run.templateConfig, protocol_spec: spec },
      });
      await store.close();

      // runs for the list: two projects, names to search for, more than a page
      const demo = await call("POST", "/projects", { name: "demo", git_url: repo, local_path: repo });
      demoProject = demo.body.id;
      const other = gitRepo();
      const beta = await call("POST", "/projects", { name: "beta", git_url: other, local_path: other });
      for (let i = 0; i < 8; i++)
        await call("POST", `/projects/${beta.body.id}/protocols`, {
          protocol_name: `docs-${i}`,
          description: "Write the docs",
          spec: shellSpec("echo docs"),
        });
      for (let i = 0; i < 8; i++)
        await call("POST", `/projects/${demoProject}/protocols`, {
          protocol_name: `greet-${i}`,
          description: i === 3 ? "Say hello in French" : null,
          spec: shellSpec("echo hi"),
        });
      // a project whose checkout goes away after the page has shown its run
      goneRepo = gitRepo();
      const gone = await call("POST", "/projects", { name: "gone", git_url: goneRepo, local_path: goneRepo });
      goneRunId = (
        await call("POST", `/projects/${gone.body.id}/protocols`, {
          protocol_name: "gone",
          spec: shellSpec("echo one"),
        })
      ).body.id;

      browser = await chromium.launchPersistentContext(mkdtempSync(join(dir, "profile-")), {
        executablePath: CHROMIUM,
        headless: true,
        viewport: { width: 1280, height: 900 },
        // without the background-networking flags Chromium reaches out to its vendor's hosts
        args: [
          "--no-sandbox",
          "--disable-gpu",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--no-first-run",
        ],
      });
      page = browser.pages()[0] ?? (await browser.newPage());
      // nothing the page loads comes from another host
      page.on("request", (req) => {
        if (!req.url().startsWith(base) && !req.url().startsWith("data:"))
          throw new Error(`the console loaded ${req.url()}`);
      });
    }, 120_000);

    afterAll(async () => {
      await browser?.close();
      await server?.stop("SIGKILL");
      await github?.close();
    });

    it("asks for the token once and keeps it in localStorage", async () => {
      await page.goto(`${base}/console`);
      const panel = page.locator("#token-panel");
      await panel.waitFor({ state: "visible" });
      expect(await panel.textContent()).toContain("localStorage");
      // asked for the first time: no error yet
      expect(await page.locator("#token-error").count()).toBe(0);
      expect(await page.locator("#app").count()).toBe(0);
      await page.fill("#token-input", `${TOKEN}-wrong`);
      await page.click("#token-form button[type=submit]");
      await page.waitForSelector("#token-error");
      expect(await page.textContent("#token-error")).toBe(
        "The server refused the stored token; enter the right one.",
      );
      await page.fill("#token-input", TOKEN);
      await page.click("#token-form button[type=submit]");
      await page.locator(`a[data-run-id="${goneRunId}"]`).waitFor();
      expect(await page.evaluate(() => localStorage.getItem("tasksgodzilla.apiToken"))).toBe(TOKEN);
      // a reload keeps the token: no second prompt
      await page.reload();
      await page.locator(`a[data-run-id="${goneRunId}"]`).waitFor();
      expect(await panel.count()).toBe(0);
      expect(await page.content()).not.toContain(TOKEN);
    });

    it("asks for no token when the server has none (loopback only)", async () => {
      const open = await tgzServer(mkdtempSync(join(dir, "open-")), 0, "");
      try {
        const url = (await open.waitFor(/API on (http:\/\/\S+)/))[1]!;
        const other = await browser!.newPage();
        await other.goto(`${url}/`);
        await other.waitForSelector("#run-count");
        await other.waitForFunction(() =>
          document.querySelector("#run-count")?.textContent?.startsWith("No runs"),
        );
        expect(await other.locator("#token-panel").count()).toBe(0);
        await other.close();
      } finally {
        await open.stop("SIGTERM");
      }
    });

    it("lists runs newest first, searches them, filters by status and project, and pages", async () => {
      await page.goto(`${base}/console`);
      const names = () => page.$$eval("#run-list .run-name", (els) => els.map((e) => e.textContent));
      await page.waitForFunction((n) => document.querySelectorAll("#run-list li").length === n, PAGE_SIZE);
      const total = (await call("GET", "/protocols?limit=1")).body.total as number;
      expect(total).toBe(18);
      expect(await page.textContent("#run-count")).toBe(`1–${PAGE_SIZE} of ${total}`);
      const all = (await call("GET", `/protocols?limit=${PAGE_SIZE}`)).body.runs.map(
        (r: any) => r.protocol_name,
      );
      expect(await names()).toEqual(all);
      expect(await page.textContent(`a[data-run-id="${goneRunId}"] .project-name`)).toBe("gone");
      // the next page, then back
      expect(await page.isDisabled("#newer-page")).toBe(true);
      await page.click("#older-page");
      await page.waitForFunction(() => document.querySelector("#run-count")?.textContent === "16–18 of 18");
      expect(await names()).toEqual([
        expect.stringMatching(/-docs-1$/),
        expect.stringMatching(/-docs-0$/),
        planned.protocol_name,
      ]);
      expect(await page.isDisabled("#older-page")).toBe(true);
      await page.click("#newer-page");
      await page.waitForFunction(() => document.querySelector("#run-count")?.textContent === "1–15 of 18");

      // search names and descriptions
      await page.fill("#run-search", "french");
      await page.waitForFunction(() => document.querySelector("#run-count")?.textContent === "1–1 of 1");
      expect(await names()).toEqual([expect.stringMatching(/-greet-3$/)]);
      await page.fill("#run-search", "greet");
      // every greet-N run, and the planned greeter (its task says so)
      await page.waitForFunction(() => document.querySelector("#run-count")?.textContent === "1–9 of 9");
      // by project: the planned run's project holds it and the greet runs
      await page.fill("#run-search", "");
      await page.selectOption("#project-filter", { label: "beta" });
      await page.waitForFunction(() => document.querySelector("#run-count")?.textContent === "1–8 of 8");
      expect((await names()).every((n) => /-docs-\d$/.test(n ?? ""))).toBe(true);
      // by status, from the server's own list of statuses
      await page.selectOption("#project-filter", "");
      expect(
        await page.$$eval("#status-filter option", (os) => os.map((o) => (o as HTMLOptionElement).value)),
      ).toEqual(expect.arrayContaining(["", "pending", "planned", "blocked", "completed"]));
      await page.selectOption("#status-filter", "pending");
      await page.waitForFunction(
        () => document.querySelector("#run-count")?.textContent === "No run matches.",
      );
      await page.selectOption("#status-filter", "planned");
      await page.waitForFunction(() => document.querySelector("#run-count")?.textContent === "1–15 of 18");
      await shot("list");
      await page.selectOption("#status-filter", "");
    });

    it("runs the planned run from its page: timeline, tokens, block reason and the next command", async () => {
      await page.goto(`${base}/console#/runs/${planned.run_id}`);
      await page.waitForSelector("#steps tr[data-step-id]");
      const offered = () =>
        page.$$eval("#run-actions button", (bs) => bs.map((b) => (b as HTMLElement).dataset.action));
      expect(await offered()).toEqual(
        (await call("GET", `/protocols/${planned.run_id}`)).body.allowed_actions,
      );
      expect(await page.textContent("#situation .headline")).toBe("Planned: ready to start");
      expect(await page.textContent("#situation .command")).toBe(`tgz start ${planned.run_id}`);
      expect(await page.textContent("#run-tokens")).toBe("1000 tokens (1 call)");

      await page.click('#run-actions [data-action="start"]');
      await page.waitForSelector('#run-notice[data-kind="info"]');
      // all that follows arrives through the run's event stream: no reload
      await page.waitForSelector('.run-head .badge[data-status="blocked"]', { timeout: 60_000 });
      const detail = (await call("GET", `/protocols/${planned.run_id}`)).body;
      const check = detail.situation.step.name as string;
      expect(await page.textContent("#situation .headline")).toBe(detail.situation.headline);
      expect(detail.situation.headline).toContain("Blocked");
      expect(await page.textContent("#situation .check")).toContain("greet.sh says nothing");
      expect(await page.textContent("#situation .check-output")).toMatch(/39\n40\ngreet\.sh says nothing\n$/);
      const commands = await page.$$eval("#situation .command", (cs) => cs.map((c) => c.textContent));
      expect(commands).toEqual([`tgz run ${planned.run_id}`, `tgz approve ${planned.run_id} ${check}`]);
      expect(
        await page.$$eval("#situation [data-next-action]", (bs) =>
          bs.map((b) => (b as HTMLElement).dataset.nextAction),
        ),
      ).toEqual(["retry_latest", "approve"]);

      // the timeline: the loop, the QA verdicts, durations, tokens
      const row = (name: string) => page.locator("#steps tr", { hasText: name });
      await page.waitForFunction(() => document.querySelector("#steps tr .loops")?.textContent === "1 loop");
      expect(await row("01-write").locator("td.attempts").textContent()).toBe("21 loop");
      expect(await row("01-write").locator("td.qa").textContent()).toBe("fail → pass");
      expect(await row("01-write").locator("td.duration").textContent()).toMatch(/^\d+(\.\d)? m?s$/);
      expect(await row("02-agent").locator("td.tokens").textContent()).toBe("1540");
      expect(await row("03-check").locator("td.qa").textContent()).toBe("fail");
      // the shell steps' calls count, with no tokens
      expect(await page.textContent("#run-tokens")).toMatch(/^2540 tokens \(5 calls\)$/);
      expect(await page.locator("#steps .bar").count()).toBe(3);
      // the run's time counts from its start through the API, not from its planning
      const timeline = (await call("GET", `/protocols/${planned.run_id}/timeline`)).body;
      const started = (await call("GET", `/protocols/${planned.run_id}/events?event_type=start_enqueued`))
        .body;
      expect(timeline.started_at).toBe(started[0].created_at);
      expect(await page.textContent("#run-duration")).not.toBe("");
      // the blocked step is the one shown: its attempt with the failing check
      await page.waitForSelector(`#step-detail[data-step-id="${detail.situation.step.id}"]`);
      expect(await page.textContent('#attempts tr[data-attempt="1"] .verdict')).toBe("fail");
      expect(await page.textContent('#attempts tr[data-attempt="1"] .failed-check summary')).toContain(
        "greet.sh says nothing",
      );
      await shot("run-blocked");
    });

    it("shows a step's transcript and its diff from the checkpoints", async () => {
      await page.locator("#steps tr", { hasText: "02-agent" }).locator("button.step-name").click();
      await page.click("#tab-transcript");
      await page.waitForSelector("#transcript .entry.message");
      expect(await page.textContent("#transcript .entry.message")).toBe(
        "Reading greet-2.sh before I judge it.",
      );
      expect(await page.textContent("#transcript .entry.tool .tool-name")).toBe("read_file");
      expect(await page.textContent("#transcript .entry.tool .tool-args")).toBe('{"path":"greet-2.sh"}');
      expect(await page.textContent("#transcript .entry.tool-output .label")).toBe("read_file output");
      expect(await page.textContent("#transcript .entry.tool-output pre")).toBe(
        "echo hello from attempt 2\n",
      );
      expect(await page.textContent("#transcript .entry.usage")).toBe("1500 in / 40 out tokens");
      expect(await page.textContent("#transcript .entry.final pre")).toBe("It greets.");
      await shot("transcript");

      // planning is on the timeline too: its tokens, and the planner's transcript
      const planning = page.locator('#steps tr[data-planning="true"]');
      expect(await planning.locator("td.tokens").textContent()).toBe("1000");
      await planning.locator("button.step-name").click();
      await page.waitForSelector('#step-detail[data-planning="true"] #transcript .entry.final');
      expect(await page.textContent("#transcript .call summary")).toBe("Planning · attempt 1");
      expect(JSON.parse((await page.textContent("#transcript .entry.final pre"))!)).toEqual(PLAN);

      await page.locator("#steps tr", { hasText: "01-write" }).locator("button.step-name").click();
      await page.click("#tab-transcript");
      await page.waitForFunction(() => document.querySelectorAll("#transcript .call").length === 2);
      expect(await page.$$eval("#transcript .call summary", (ss) => ss.map((s) => s.textContent))).toEqual([
        "Execution · attempt 1",
        "Execution · attempt 2",
      ]);
      await page.click("#tab-diff");
      await page.waitForSelector("#diff .d2h-file-name");
      // the latest attempt's change since the step's start: greet-2.sh only (the loop put greet-1.sh back)
      expect(
        await page.$$eval("#diff .d2h-file-name", (fs) => [...new Set(fs.map((f) => f.textContent?.trim()))]),
      ).toEqual(["greet-2.sh"]);
      expect(await page.textContent("#diff")).toContain("echo hello from attempt 2");
      await shot("diff");
    });

    it("approves the blocked step, opens the PR from the page and links it", async () => {
      const check = page.locator("#steps tr", { hasText: "03-check" });
      await check.locator('[data-action="approve"]').click();
      await page.waitForSelector('.run-head .badge[data-status="completed"]', { timeout: 20_000 });
      await page.waitForSelector('#run-actions [data-action="open_pr"]');
      expect(await page.$$eval("#situation .command", (cs) => cs.map((c) => c.textContent))).toEqual([
        `tgz diff ${planned.run_id}`,
        `tgz pr ${planned.run_id}`,
      ]);
      await page.click('#run-actions [data-action="open_pr"]');
      await page.waitForSelector("#pr-link", { timeout: 30_000 });
      expect(await page.getAttribute("#pr-link", "href")).toBe("https://github.example/acme/demo/pull/7");
      expect(await page.textContent("#pr-link")).toBe("#7");
      expect(github.calls).toHaveLength(1);
      expect(github.calls[0]).toMatchObject({ method: "POST", url: "/repos/acme/demo/pulls" });
      // a PR is open: it is not offered again as the next step
      await page.waitForFunction(() => document.querySelectorAll("#situation .command").length === 0);
    });

    it("lists events newest first, with the table header above the rows, not over them", async () => {
      const ids = await shownIds();
      expect(ids).toEqual([...(await storedIds(planned.run_id))].reverse());
      expect(await page.textContent("#event-count")).toBe(String(ids.length));
      // scrolled down, the header stays at the top of the box and no row shows through it
      await page.$eval("#event-log", (log) => {
        log.scrollTop = 200;
      });
      const overlap = await page.$eval("#event-log", (log) => {
        const head = log.querySelector("thead th")!.getBoundingClientRect();
        const box = log.getBoundingClientRect();
        const hit = document.elementFromPoint(head.left + 5, head.top + head.height / 2);
        return { headTop: Math.round(head.top - box.top), hitIsHeader: hit?.closest("thead") !== null };
      });
      expect(overlap.hitIsHeader).toBe(true);
      expect(overlap.headTop).toBeGreaterThanOrEqual(0);
      expect(overlap.headTop).toBeLessThanOrEqual(1);
    });

    it("offers only what the server allows, and shows the server's message when it refuses", async () => {
      await page.goto(`${base}/console#/runs/${goneRunId}`);
      await page.waitForSelector('#run-actions [data-action="start"]');
      const allowed = (await call("GET", `/protocols/${goneRunId}`)).body.allowed_actions;
      expect(
        await page.$$eval("#run-actions button", (bs) => bs.map((b) => (b as HTMLElement).dataset.action)),
      ).toEqual(allowed);
      // the checkout goes away after the page offered start: the server refuses it, the page says why
      rmSync(goneRepo, { recursive: true, force: true });
      await page.click('#run-actions [data-action="start"]');
      await page.waitForSelector('#run-notice[data-kind="error"]');
      const detail = (await call("POST", `/protocols/${goneRunId}/actions/start`)).body.detail;
      expect(detail).toContain("has no local checkout");
      expect(await page.textContent("#run-notice")).toBe(`409 repo_missing: ${detail}`);
      expect(await page.textContent(".run-head .badge")).toBe("planned");
      // shown again, start is no longer offered
      await page.waitForFunction(() => !document.querySelector('#run-actions [data-action="start"]'));
    });

    it("shows a stale banner while the server is down, and recovers without a reload", async () => {
      const run = await call("POST", `/projects/${demoProject}/protocols`, {
        protocol_name: "restart",
        spec: shellSpec("echo three"),
      });
      await page.goto(`${base}/console#/runs/${run.body.id}`);
      await page.waitForSelector('#run-stream[data-state="live"]');
      const before = await storedIds(run.body.id);
      await page.waitForFunction((n) => document.querySelectorAll("#events tr").length === n, before.length);
      expect(await page.locator("#stale-banner").count()).toBe(0);
      const resumedFrom: string[] = [];
      page.on("request", (req) => {
        if (req.url().includes(`/protocols/${run.body.id}/events/stream`))
          resumedFrom.push(req.headers()["last-event-id"] ?? "none");
      });
      // the page can tell it was never reloaded
      await page.evaluate(() => {
        (window as unknown as { marker: string }).marker = "same page";
      });

      await server!.stop("SIGTERM");
      await page.waitForSelector("#stale-banner");
      expect(await page.textContent("#stale-banner")).toContain("Live updates are down");
      expect(await page.textContent("#stale-banner")).toContain("may be out of date");
      await page.waitForSelector('#run-stream[data-state="reconnecting"]');
      await shot("stale-banner");

      await startServer();
      await page.waitForSelector('#run-stream[data-state="live"]', { timeout: 20_000 });
      await page.waitForSelector("#stale-banner", { state: "detached", timeout: 20_000 });
      expect(resumedFrom.at(-1)).toBe(String(before.at(-1)));
      expect(await page.evaluate(() => (window as unknown as { marker: string }).marker)).toBe("same page");

      // the whole run happens after the restart: each event shows once, newest first
      await page.click('#run-actions [data-action="start"]');
      await page.waitForSelector('#events tr[data-type="protocol_completed"]', { timeout: 30_000 });
      const all = await storedIds(run.body.id);
      await page.waitForFunction((n) => document.querySelectorAll("#events tr").length >= n, all.length);
      expect(await shownIds()).toEqual([...all].reverse());
      await page.waitForSelector('.run-head .badge[data-status="completed"]');
      // the run list follows the all-runs stream, which came back too
      await page.waitForSelector(`a[data-run-id="${run.body.id}"] .badge[data-status="completed"]`);
      // a run in a checkout of the user's has no checkpoints: the diff tab says so, in the server's words
      await page.click("#tab-diff");
      await page.waitForSelector("#diff-none");
      expect(await page.textContent("#diff-none")).toContain("not a protocol worktree");
    });

    it("follows the system's dark mode", async () => {
      await page.emulateMedia({ colorScheme: "dark" });
      await page.goto(`${base}/console#/runs/${planned.run_id}`);
      await page.waitForSelector("#steps tr[data-step-id]");
      const background = await page.evaluate(
        () => getComputedStyle(document.documentElement).backgroundColor,
      );
      const text = await page.evaluate(() => getComputedStyle(document.body).color);
      const light = (rgb: string) => {
        const [r, g, b] = rgb.match(/\d+/g)!.map(Number);
        return (r! + g! + b!) / 3;
      };
      expect(light(background)).toBeLessThan(60);
      expect(light(text)).toBeGreaterThan(180);
      await page.locator("#steps tr", { hasText: "01-write" }).locator("button.step-name").click();
      await page.click("#tab-diff");
      await page.waitForSelector("#diff .d2h-file-name");
      await shot("run-dark");
      await page.emulateMedia({ colorScheme: "light" });
      expect(
        light(await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor)),
      ).toBeGreaterThan(200);
    });

    it("is usable on a narrow window: one column, nothing wider than the window", async () => {
      const narrow = await browser!.newPage();
      await narrow.setViewportSize({ width: 400, height: 860 });
      await narrow.goto(`${base}/console`);
      await narrow.waitForSelector("#run-list li");
      const fits = () => narrow.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
      expect(await fits()).toBe(true);
      expect(await narrow.locator("#run").isVisible()).toBe(false);
      await shot("narrow-list", narrow);
      await narrow.click(`a[data-run-id="${goneRunId}"]`);
      await narrow.waitForSelector("#steps tr[data-step-id]");
      expect(await fits()).toBe(true);
      await narrow.goto(`${base}/console#/runs/${planned.run_id}`);
      await narrow.waitForSelector("#steps tr[data-step-id]");
      expect(await narrow.locator("#runs").isVisible()).toBe(false);
      expect(await narrow.locator("#run .back").isVisible()).toBe(true);
      expect(await fits()).toBe(true);
      await narrow.click("#tab-transcript");
      await narrow.waitForSelector("#transcript .call");
      expect(await fits()).toBe(true);
      await shot("narrow-run", narrow);
      await narrow.click("#run .back");
      await narrow.waitForSelector("#run-list li");
      expect(await narrow.locator("#runs").isVisible()).toBe(true);
      await narrow.close();
    });
  },
);
