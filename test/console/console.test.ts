/**
 * The web console in real Chromium against a real `tgz server` process: it asks for the token once,
 * starts a run whose steps and events then show live, offers exactly the actions the server allows,
 * shows the server's reason for a refused action, and follows the event stream across a server
 * restart (resuming with Last-Event-ID) without showing an event twice.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gitRepo } from "../scenario/harness.js";
import { shellSpec } from "../server/api-harness.js";
import { freePort, type Proc, tgzProcess } from "../service/process-harness.js";
import { systemToolPresent } from "../support/system-tool.js";

const CHROMIUM = "/usr/bin/chromium";
const TOKEN = "console-token-5e1d7a";
/** Where the page's picture goes (test-results/ is not committed). */
const SCREENSHOT = join(import.meta.dirname, "../../test-results/console.png");

const present = systemToolPresent(CHROMIUM, "the web console tests", "chromium");

describe.skipIf(!present)(
  `web console in Chromium${present ? "" : ` (skipped: ${CHROMIUM} missing)`}`,
  () => {
    const dir = mkdtempSync(join(tmpdir(), "tgz-console-"));
    let port = 0;
    let base = "";
    let server: Proc | undefined;
    let browser: BrowserContext | undefined;
    let page: Page;
    let runId = 0;
    let bareRunId = 0;
    let goneRunId = 0;
    let goneRepo = "";

    const tgzServer = async (folder: string, listen: number, token: string) => {
      const proc = tgzProcess(["--db", join(folder, "tgz.db"), "server", "--port", String(listen)], {
        TASKSGODZILLA_DATA_DIR: join(folder, "data"),
        TASKSGODZILLA_API_TOKEN: token,
        TASKSGODZILLA_REDIS_URL: "",
        TASKSGODZILLA_DB_URL: "",
      });
      await proc.waitFor(/API on http:\/\/127\.0\.0\.1:\d+/);
      return proc;
    };
    const startServer = async () => {
      server = await tgzServer(dir, port, TOKEN);
    };

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

    /** The ids of the events the page shows, in page order. */
    const shownIds = () =>
      page.$$eval("#events tr", (rows) => rows.map((r) => Number((r as HTMLElement).dataset.eventId)));
    /** A run's events as the API has them, oldest first. */
    const storedIds = async (id = runId) =>
      ((await call("GET", `/protocols/${id}/events?after=0`)).body as { id: number }[]).map((e) => e.id);

    beforeAll(async () => {
      port = await freePort();
      base = `http://127.0.0.1:${port}`;
      await startServer();
      const repo = gitRepo();
      const project = await call("POST", "/projects", { name: "demo", git_url: repo, local_path: repo });
      // the first step is an agent's replayed call with its usage, so the page has tokens to show;
      // its recording lies inside the repository, as the runner requires
      const recording = join(repo, "s0.jsonl");
      writeFileSync(
        recording,
        [
          { type: "usage", usage: { input: 1200, output: 34 } },
          { type: "final", text: "one" },
        ]
          .map((e) => JSON.stringify(e))
          .join("\n"),
      );
      const [, second] = shellSpec("echo one", "sleep 1 && echo two").steps;
      const run = await call("POST", `/projects/${project.body.id}/protocols`, {
        protocol_name: "readme",
        spec: {
          steps: [
            {
              id: "s0",
              engine_id: "replay",
              prompt_ref: "README.md",
              inputs: { recording },
              qa: { policy: "skip" },
            },
            second,
          ],
        },
      });
      expect(run.body.status).toBe("planned");
      runId = run.body.id;
      // a project known only by its URL: this machine has no checkout of it
      const bare = await call("POST", "/projects", {
        name: "elsewhere",
        git_url: "git@example.com:acme/x.git",
      });
      const bareRun = await call("POST", `/projects/${bare.body.id}/protocols`, {
        protocol_name: "remote",
        spec: shellSpec("echo one"),
      });
      bareRunId = bareRun.body.id;
      // a project whose checkout goes away after the page has shown its run
      goneRepo = gitRepo();
      const gone = await call("POST", "/projects", { name: "gone", git_url: goneRepo, local_path: goneRepo });
      const goneRun = await call("POST", `/projects/${gone.body.id}/protocols`, {
        protocol_name: "gone",
        spec: shellSpec("echo one"),
      });
      goneRunId = goneRun.body.id;

      browser = await chromium.launchPersistentContext(mkdtempSync(join(dir, "profile-")), {
        executablePath: CHROMIUM,
        headless: true,
        viewport: { width: 1360, height: 900 },
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
    });

    afterAll(async () => {
      await browser?.close();
      await server?.stop("SIGKILL");
    });

    it("asks for the token once, keeps it in localStorage, and lists the projects with their runs", async () => {
      const served = await fetch(`${base}/console`);
      expect(served.headers.get("content-type")).toMatch(/^text\/html/);
      await page.goto(`${base}/console`);
      const panel = page.locator("#token-panel");
      await panel.waitFor({ state: "visible" });
      expect(await panel.textContent()).toContain("localStorage");
      expect(await page.isHidden("#app")).toBe(true);
      await page.fill("#token-input", `${TOKEN}-wrong`);
      await page.click("#token-form button[type=submit]");
      await page.waitForSelector("#token-error:not([hidden])");
      expect(await page.textContent("#token-error")).toBe(
        "The server refused the stored token; enter the right one.",
      );
      await page.fill("#token-input", TOKEN);
      await page.click("#token-form button[type=submit]");

      const link = page.locator(`a[data-run-id="${runId}"]`);
      await link.waitFor();
      expect(await link.locator(".badge").textContent()).toBe("planned");
      expect(await page.locator(".project h2").allTextContents()).toEqual(
        expect.arrayContaining([expect.stringContaining("demo"), expect.stringContaining("elsewhere")]),
      );
      expect(await page.evaluate(() => localStorage.getItem("tasksgodzilla.apiToken"))).toBe(TOKEN);

      // a reload keeps the token: no second prompt
      await page.reload();
      await link.waitFor();
      expect(await panel.isHidden()).toBe(true);
      expect(await page.content()).not.toContain(TOKEN);
    });

    it("asks for no token when the server has none (loopback only)", async () => {
      const open = await tgzServer(mkdtempSync(join(dir, "open-")), 0, "");
      try {
        const url = (await open.waitFor(/API on (http:\/\/\S+)/))[1]!;
        const other = await browser!.newPage();
        await other.goto(`${url}/`);
        await other.waitForSelector("#app:not([hidden])");
        expect(await other.textContent("#projects")).toContain("No projects yet");
        expect(await other.isHidden("#token-panel")).toBe(true);
        await other.close();
      } finally {
        await open.stop("SIGTERM");
      }
    });

    it("starts a run from the page: its steps turn completed and its events appear live", async () => {
      await page.click(`a[data-run-id="${runId}"]`);
      await page.locator("#steps tr").nth(1).waitFor();
      expect(
        await page.$$eval("#steps tr", (rows) => rows.map((r) => (r as HTMLElement).dataset.status)),
      ).toEqual(["pending", "pending"]);
      // exactly the actions the server allows now
      const offered = () =>
        page.$$eval("#run-actions button", (bs) => bs.map((b) => (b as HTMLElement).dataset.action));
      expect(await offered()).toEqual((await call("GET", `/protocols/${runId}`)).body.allowed_actions);
      expect(await offered()).toEqual(["start", "pause", "cancel", "run_next_step"]);
      expect(await page.isEnabled('#run-actions [data-action="start"]')).toBe(true);
      const hash = (await call("GET", `/protocols/${runId}`)).body.spec_hash as string;
      expect(await page.getAttribute("#spec-hash", "title")).toBe(hash);
      const before = (await shownIds()).length;

      await page.click('#run-actions [data-action="start"]');
      await page.waitForSelector('#run-notice[data-kind="info"]');
      expect(await page.textContent("#run-notice")).toBe("run queued");
      // the page is never reloaded: all that follows arrives through its event stream
      await page.waitForSelector('#events tr[data-type="protocol_completed"]', { timeout: 30_000 });
      await page.waitForFunction(
        () =>
          [...document.querySelectorAll("#steps tr")].every(
            (r) => (r as HTMLElement).dataset.status === "completed",
          ),
        undefined,
        { timeout: 10_000 },
      );
      expect(await page.textContent(".run-head .badge")).toBe("completed");
      // what it cost: the run's tokens and the step's, as the API counts them
      await page.waitForFunction(() =>
        document.querySelector("#run-tokens")?.textContent?.startsWith("1234"),
      );
      expect(await page.textContent("#run-tokens")).toBe("1234 (2 call(s))");
      expect(await page.textContent("#steps tr[data-step-id] td.tokens")).toBe("1234");
      expect((await call("GET", `/protocols/${runId}/usage`)).body.total).toMatchObject({
        total: 1234,
        calls: 2,
      });
      const types = await page.$$eval("#events tr", (rows) =>
        rows.map((r) => (r as HTMLElement).dataset.type),
      );
      expect(types).toEqual(expect.arrayContaining(["start_enqueued", "step_started", "step_completed"]));
      expect((await shownIds()).length).toBeGreaterThan(before);
      expect(await shownIds()).toEqual(await storedIds());
      // the step column names the step
      expect(await page.textContent('#events tr[data-type="step_started"] td[data-step-id]')).toBe("s0");
      // a completed run allows nothing: no button is offered
      await page.waitForFunction(() => document.querySelectorAll("#run-actions button").length === 0);
      expect((await call("GET", `/protocols/${runId}`)).body.allowed_actions).toEqual([]);
      // the project list follows the all-runs stream too
      await page.waitForSelector(`a[data-run-id="${runId}"] .badge[data-status="completed"]`);
    });

    it("offers no action the server would refuse, and shows the server's message when it refuses one", async () => {
      // this machine has no checkout of the project: nothing that needs one is offered
      await page.goto(`${base}/console#/runs/${bareRunId}`);
      await page.locator("#steps tr").first().waitFor();
      const offered = () =>
        page.$$eval("#run-actions button", (bs) => bs.map((b) => (b as HTMLElement).dataset.action));
      await page.waitForSelector('#run-actions [data-action="cancel"]');
      expect(await offered()).toEqual(["pause", "cancel"]);
      expect(await page.$$('#run-actions [data-action="start"]')).toHaveLength(0);
      const refused = await call("POST", `/protocols/${bareRunId}/actions/start`);
      expect(refused).toMatchObject({ status: 409, body: { error: "repo_missing" } });

      // the checkout goes away after the page offered start: the server refuses it, the page says why
      await page.goto(`${base}/console#/runs/${goneRunId}`);
      await page.waitForSelector('#run-actions [data-action="start"]');
      rmSync(goneRepo, { recursive: true, force: true });
      await page.click('#run-actions [data-action="start"]');
      await page.waitForSelector('#run-notice[data-kind="error"]');
      const detail = (await call("POST", `/protocols/${goneRunId}/actions/start`)).body.detail;
      expect(detail).toContain("has no local checkout");
      expect(await page.textContent("#run-notice")).toBe(`409 repo_missing: ${detail}`);
      expect(await page.textContent(".run-head .badge")).toBe("planned");
      // and, shown again, start is no longer offered
      await page.waitForFunction(() => !document.querySelector('#run-actions [data-action="start"]'));
    });

    it("follows the stream across a server restart, resuming with Last-Event-ID, never showing an event twice", async () => {
      const project = (await call("GET", "/projects")).body.find((p: { name: string }) => p.name === "demo");
      const run = await call("POST", `/projects/${project.id}/protocols`, {
        protocol_name: "restart",
        spec: shellSpec("echo three"),
      });
      await page.goto(`${base}/console#/runs/${run.body.id}`);
      await page.waitForSelector('#run-stream[data-state="live"]');
      const stored = () => storedIds(run.body.id);
      const before = await stored();
      await page.waitForFunction((n) => document.querySelectorAll("#events tr").length === n, before.length);
      expect(await shownIds()).toEqual(before);
      const resumedFrom: string[] = [];
      page.on("request", (req) => {
        if (req.url().includes(`/protocols/${run.body.id}/events/stream`))
          resumedFrom.push(req.headers()["last-event-id"] ?? "none");
      });

      // the page holds two streams open: the server still stops at once, and the page sees it go
      const stopping = Date.now();
      await server!.stop("SIGTERM");
      expect(Date.now() - stopping).toBeLessThan(5000);
      expect(server!.child.exitCode).toBe(0);
      await page.waitForSelector('#run-stream[data-state="reconnecting"]');
      await startServer();
      await page.waitForSelector('#run-stream[data-state="live"]', { timeout: 20_000 });
      expect(resumedFrom.at(-1)).toBe(String(before.at(-1)));

      // the whole run happens after the restart: each of its events shows once, after the ones before
      await page.click('#run-actions [data-action="start"]');
      await page.waitForSelector('#events tr[data-type="protocol_completed"]', { timeout: 30_000 });
      const all = await stored();
      await page.waitForFunction((n) => document.querySelectorAll("#events tr").length >= n, all.length);
      const shown = await shownIds();
      expect(new Set(shown).size).toBe(shown.length);
      expect(shown.slice(0, before.length)).toEqual(before);
      expect(shown).toEqual(all);
      expect(await page.textContent("#event-count")).toBe(String(all.length));
      await page.waitForSelector('.run-head .badge[data-status="completed"]');

      mkdirSync(join(SCREENSHOT, ".."), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
    });
  },
);
