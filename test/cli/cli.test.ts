/** The built `tgz` binary, as a user runs it. Requires `npm run build` (part of `npm test`). */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { beforeAll, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open-store.js";
import { gitRepo } from "../scenario/harness.js";

const BIN = join(import.meta.dirname, "../../dist/cli/main.js");
const EXAMPLE = join(import.meta.dirname, "../../examples/hello/protocol.json");
let dataDir: string;

function tgz(...args: string[]) {
  const r = spawnSync("node", [BIN, ...args], {
    encoding: "utf8",
    env: { ...process.env, TASKSGODZILLA_DATA_DIR: dataDir },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), "tgz-cli-"));
});

describe("tgz CLI", () => {
  it("runs the shipped example end to end in a scratch repo and reports JSON", () => {
    const repo = gitRepo();
    const r = tgz("run", EXAMPLE, "--repo", repo, "--json");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({
      status: "completed",
      protocol_name: "0001-hello-greeter",
      spec_hash: expect.stringMatching(/^[0-9a-f]{12}$/),
    });
    expect(out.steps.map((st: { id: string; status: string }) => [st.id, st.status])).toEqual([
      ["00-setup", "completed"],
      ["01-implement", "completed"],
      ["02-review", "completed"],
      ["03-test", "completed"],
    ]);
    expect(execFileSync("bash", [join(repo, "bin/greet"), "CLI"], { encoding: "utf8" })).toBe(
      "Hello, CLI!\n",
    );
    expect(readFileSync(join(repo, ".protocols/0001-hello-greeter/aux/review/greeter.md"), "utf8")).toMatch(
      /Review of bin\/greet/,
    );
    expect(out.usage).toMatchObject({
      total: expect.any(Number),
      cached_input: expect.any(Number),
      estimated_calls: 0,
    });
    expect(out.usage.total).toBeGreaterThan(0);

    const events = tgz("events", String(out.run_id), "--json")
      .stdout.trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    // the HTTP API's shape: snake_case
    expect(events.at(-1)).toMatchObject({ event_type: "protocol_completed", protocol_run_id: out.run_id });
    expect(events.map((e: { id: number }) => e.id)).toEqual(
      [...events.map((e: { id: number }) => e.id)].sort((a, b) => a - b),
    );
    const status = tgz("status", String(out.run_id));
    expect(status.stdout).toMatch(/0001-hello-greeter \[completed\]/);
  });

  it("prints the whole ledger, however long, in order", async () => {
    const spec = join(mkdtempSync(join(tmpdir(), "tgz-long-")), "long.json");
    const steps = Array.from({ length: 220 }, (_, i) => ({
      id: `s${i}`,
      engine_id: "shell",
      inputs: { command: `echo ${i}` },
      qa: { policy: "skip", reason: "bench of the ledger" },
    }));
    writeFileSync(spec, JSON.stringify({ steps }));
    const run = JSON.parse(tgz("run", spec, "--repo", gitRepo(), "--json").stdout);
    const lines = tgz("events", String(run.run_id), "--json").stdout.trim().split("\n");
    // well past one page of the ledger
    expect(lines.length).toBeGreaterThan(600);
    const events = lines.map((l) => JSON.parse(l) as { id: number; event_type: string });
    expect(events.at(-1)!.event_type).toBe("protocol_completed");
    const ids = events.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(events.filter((e) => e.event_type === "step_started")).toHaveLength(220);
  });

  it("shows live per-step progress without --json, and exits 1 when the protocol does not complete", () => {
    const repo = gitRepo();
    const dir = mkdtempSync(join(tmpdir(), "tgz-spec-"));
    writeFileSync(
      join(dir, "p.json"),
      JSON.stringify({
        steps: [
          { id: "ok", engine_id: "shell", inputs: { command: "echo hi" } },
          {
            id: "bad",
            engine_id: "shell",
            inputs: { command: "echo started; sleep 30" },
            idle_timeout_seconds: 0.5,
            retry: { engine_errors: 0 },
          },
        ],
      }),
    );
    const r = tgz("run", join(dir, "p.json"), "--repo", repo);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/ok\s+▶ shell attempt 1/);
    expect(r.stdout).toMatch(/bad\s+✗ step_stalled: Step bad stalled: command printed nothing for 0\.\d s/);
    expect(r.stdout).toMatch(/bad\s+✗ step_failed/);
    expect(r.stdout).toMatch(/\[blocked\]/);
  });

  it("spec validate prints each error with its pointer and exits 1", () => {
    const dir = mkdtempSync(join(tmpdir(), "tgz-spec-"));
    writeFileSync(
      join(dir, "bad.json"),
      JSON.stringify({ steps: [{ id: "a", qa: { policy: "maybe" } }, { name: "no id" }] }),
    );
    const r = tgz("spec", "validate", join(dir, "bad.json"));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\/steps\/0\/qa\/policy: must be one of "skip", "light", "full"/);
    expect(r.stderr).toMatch(/\/steps\/1\/id: expected string, but it is missing/);
    const ok = tgz("spec", "validate", EXAMPLE);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/valid \(4 steps, spec hash [0-9a-f]{12}\)/);
    writeFileSync(join(dir, "broken.json"), "{ not json");
    const broken = tgz("spec", "validate", join(dir, "broken.json"));
    expect(broken.code).toBe(2);
    expect(broken.stderr).toMatch(/broken\.json is not valid JSON/);
  });

  it("spec schema prints the published JSON Schema", () => {
    const r = tgz("spec", "schema");
    expect(JSON.parse(r.stdout)).toEqual(
      JSON.parse(readFileSync(join(import.meta.dirname, "../../schemas/protocol-spec.schema.json"), "utf8")),
    );
  });

  it("lists every engine with binary, version and preflight, using the repo's engine settings", () => {
    const repo = gitRepo();
    const codex = join(import.meta.dirname, "../agents/node_modules/.bin/codex");
    writeFileSync(
      join(repo, "tasksgodzilla.config.json"),
      JSON.stringify({ engines: { gemini: { binary: "/nonexistent/gemini" }, codex: { binary: codex } } }),
    );
    const r = tgz("engines", "--json", "--repo", repo);
    expect(r.code).toBe(1);
    const rows = JSON.parse(r.stdout) as {
      id: string;
      kind: string;
      binary_path: string | null;
      version: string | null;
      preflight: { ok: boolean; problems: { message: string; fix: string }[] };
    }[];
    expect(rows.map((e) => e.id).sort()).toEqual([
      "claude-code",
      "codex",
      "gemini",
      "opencode",
      "replay",
      "shell",
    ]);
    const gemini = rows.find((e) => e.id === "gemini")!;
    expect(gemini).toMatchObject({ kind: "cli", binary_path: null, preflight: { ok: false } });
    expect(gemini.preflight.problems[0]!.fix).toMatch(/engines\.gemini\.binary/);
    // in CI the pinned CLIs are installed (test/agents), so the version is always checked there
    if (existsSync(codex) || process.env.CI === "true")
      expect(rows.find((e) => e.id === "codex")).toMatchObject({ binary_path: codex, version: "0.169.0" });
    expect(tgz("doctor", "--repo", repo).stdout).toMatch(
      /\n {2}gemini: binary "\/nonexistent\/gemini" not found\n\s+fix:/,
    );
    // the doctor needs no database: it answers with the one configured down
    const noDb = spawnSync("node", [BIN, "doctor", "--repo", repo], {
      encoding: "utf8",
      env: {
        ...process.env,
        TASKSGODZILLA_DATA_DIR: dataDir,
        TASKSGODZILLA_DB_URL: "postgres://127.0.0.1:1/none",
      },
      timeout: 60_000,
    });
    expect(noDb).toMatchObject({
      status: 1,
      stdout: expect.stringMatching(/gemini: binary "\/nonexistent\/gemini" not found/),
    });
    writeFileSync(join(repo, "tasksgodzilla.config.json"), JSON.stringify({ engines: { codx: {} } }));
    expect(tgz("doctor", "--repo", repo)).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(
        /unknown engine "codx" \(engines\.codx in .*\); known engines: claude-code,/,
      ),
    });
  });

  it("says what is wrong with a run id that is not one, and ends quietly when its reader goes away", () => {
    expect(tgz("status", "abc")).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/"abc" is not a run id/),
    });
    const repo = gitRepo();
    const run = JSON.parse(tgz("run", EXAMPLE, "--repo", repo, "--json").stdout);
    const piped = spawnSync("bash", ["-c", `node ${BIN} events ${run.run_id} --json | head -1`], {
      encoding: "utf8",
      env: { ...process.env, TASKSGODZILLA_DATA_DIR: dataDir },
    });
    expect(piped.stdout.trim().split("\n")).toHaveLength(1);
    expect(piped.stderr).toBe("");
  });

  it("prints its version with --version and -V", () => {
    const { version } = JSON.parse(readFileSync(join(import.meta.dirname, "../../package.json"), "utf8"));
    for (const flag of ["--version", "-V"])
      expect(tgz(flag)).toMatchObject({ code: 0, stdout: `${version}\n` });
  });

  it("takes engine slots under the workers' caps (TASKSGODZILLA_ENGINE_CONCURRENCY) for what it runs", async () => {
    const db = join(mkdtempSync(join(tmpdir(), "tgz-caps-")), "tgz.db");
    const store = await openStore({ sqlitePath: db });
    const slots = store.slots;
    // a worker elsewhere holds the one shell slot
    const token = await slots.acquire("engine:shell", 1, "worker-elsewhere", 60_000);
    expect(token).toBeTruthy();
    const repo = gitRepo();
    const dir = mkdtempSync(join(tmpdir(), "tgz-spec-"));
    writeFileSync(
      join(dir, "p.json"),
      JSON.stringify({ steps: [{ id: "a", engine_id: "shell", inputs: { command: "touch ran" } }] }),
    );
    const child = spawn("node", [BIN, "--db", db, "run", join(dir, "p.json"), "--repo", repo, "--json"], {
      env: { ...process.env, TASKSGODZILLA_DATA_DIR: dataDir, TASKSGODZILLA_ENGINE_CONCURRENCY: "shell=1" },
    });
    let stdout = "";
    child.stdout.on("data", (d) => (stdout += d));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    try {
      // the step started and waits for the slot: its command has not run
      for (let i = 0; i < 200; i++) {
        if ((await store.listEvents({ eventTypes: ["step_started"] })).length > 0) break;
        await sleep(50);
      }
      expect(await store.listEvents({ eventTypes: ["step_started"] })).toHaveLength(1);
      await sleep(1000);
      expect(existsSync(join(repo, "ran"))).toBe(false);
      expect(child.exitCode).toBeNull();
      await slots.release("engine:shell", token!);
      expect(await exited).toBe(0);
      expect(JSON.parse(stdout).status).toBe("completed");
      expect(existsSync(join(repo, "ran"))).toBe(true);
    } finally {
      child.kill();
      await store.close();
    }
  });

  it("names what was not found", () => {
    const r = tgz("status", "9999");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not found/);
  });
});
