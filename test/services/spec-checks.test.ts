/**
 * One validation for a spec, wherever it is asked for: `tgz spec validate --repo`, run creation
 * (the API's 400, `tgz run SPEC` refusing before it creates anything) and a run's start (files may
 * change after creation: the run blocks with `spec_validation_error`) — each naming the same
 * pointer. Requires `npm run build`.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import { ProtocolRunner } from "../../src/runner/protocol-runner.js";
import { createRunFromSpec } from "../../src/services/create-run.js";
import { gitRepo, inspect } from "../scenario/harness.js";
import { type Api, startApi } from "../server/api-harness.js";

const BIN = join(import.meta.dirname, "../../dist/cli/main.js");
const dataDir = mkdtempSync(join(tmpdir(), "tgz-spec-checks-"));
let api: Api;

beforeAll(async () => {
  api = await startApi();
});
afterAll(async () => {
  await api.close();
});

function tgz(...args: string[]) {
  const r = spawnSync("node", [BIN, "--db", api.dbPath!, ...args], {
    encoding: "utf8",
    env: { ...process.env, TASKSGODZILLA_DATA_DIR: dataDir },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A folder of its own holding the spec file (its folder is what `tgz run` copies). */
function specFile(spec: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), "tgz-spec-")), "protocol.json");
  writeFileSync(file, JSON.stringify(spec));
  return file;
}

const replay = (extra: Record<string, unknown>) => ({
  id: "a",
  engine_id: "replay",
  prompt_ref: "README.md",
  ...extra,
});

const cases: {
  name: string;
  spec: unknown;
  repo?: (repo: string) => void;
  pointer: string;
  message: RegExp;
}[] = [
  {
    name: "a codex step with no prompt_ref",
    spec: { steps: [{ id: "a", engine_id: "codex" }] },
    pointer: "/steps/0/prompt_ref",
    message: /has no prompt_ref, and its engine needs a prompt/,
  },
  {
    name: "an engine id nobody registered",
    spec: { steps: [{ id: "a", engine_id: "codx", prompt_ref: "README.md" }] },
    pointer: "/steps/0/engine_id",
    message: /unknown engine "codx" \(known: .*codex.*\)/,
  },
  {
    name: "a prompt_ref outside the repository",
    spec: { steps: [replay({ prompt_ref: "../../../../../etc/hostname", inputs: { final: "x" } })] },
    pointer: "/steps/0/prompt_ref",
    message: /outside|escapes/,
  },
  {
    name: "a prompt that is a link leading out of the repository",
    repo: (repo) => symlinkSync("/etc/hostname", join(repo, "link.md")),
    spec: { steps: [replay({ prompt_ref: "link.md", inputs: { final: "x" } })] },
    pointer: "/steps/0/prompt_ref",
    message: /resolves outside the protocol folder, worktree and prompt library/,
  },
  {
    name: "an output written outside the repository",
    spec: { steps: [replay({ inputs: { final: "x" }, outputs: { protocol: "/tmp/tgz-escaped.md" } })] },
    pointer: "/steps/0/outputs/protocol",
    message: /escapes the protocol folder and worktree/,
  },
  {
    name: "a replay recording read from anywhere on the machine",
    spec: { steps: [replay({ inputs: { recording: "/etc/passwd" } })] },
    pointer: "/steps/0/inputs/recording",
    message: /inputs\.recording "\/etc\/passwd" resolves outside the protocol folder and worktree/,
  },
  {
    name: "a placeholder file outside the repository",
    spec: {
      placeholders: { notes: { file: "../../../../../etc/hostname" } },
      steps: [replay({ inputs: { final: "{{notes}}" } })],
    },
    pointer: "/placeholders/notes",
    message: /escapes the workspace/,
  },
  {
    name: "a sandbox the engine does not enforce",
    spec: { steps: [{ id: "a", engine_id: "shell", inputs: { command: "true" }, sandbox: "read-only" }] },
    pointer: "/steps/0/sandbox",
    message: /engine "shell" has no sandbox/,
  },
];

describe("the same pointer from spec validate, run creation and run start", () => {
  for (const c of cases) {
    it(c.name, async () => {
      const repo = gitRepo();
      c.repo?.(repo);
      const expected = expect.arrayContaining([
        { pointer: c.pointer, message: expect.stringMatching(c.message) },
      ]);
      const file = specFile(c.spec);

      const validated = tgz("spec", "validate", file, "--repo", repo, "--json");
      expect(validated.code, validated.stderr).toBe(1);
      expect(JSON.parse(validated.stdout)).toMatchObject({ valid: false, errors: expected });

      const project = (await api.call("POST", "/projects", { name: "p", git_url: repo, local_path: repo }))
        .body;
      const created = await api.call("POST", `/projects/${project.id}/protocols`, {
        protocol_name: "checked",
        spec: c.spec,
      });
      expect(created).toMatchObject({ status: 400, body: { error: "spec_invalid", errors: expected } });
      expect(created.body.detail).toContain(c.pointer);

      const run = tgz("run", file, "--repo", repo);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`${c.pointer}: `);
      expect(run.stderr).toContain("no run was created");
      // nothing was created: no run, no protocol folder
      expect((await api.call("GET", `/projects/${project.id}/protocols`)).body).toEqual([]);
      expect(existsSync(join(repo, ".protocols")) ? readdirSync(join(repo, ".protocols")) : []).toEqual([]);

      // a run created without the check (as an import or a plan creates one) is stopped at its start
      const { run: unchecked } = await createRunFromSpec(api.store, { projectId: project.id, spec: c.spec });
      const started = await new ProtocolRunner({
        store: api.store,
        registry: createDefaultRegistry(),
        configFor: (d) => loadConfig(d, {}),
      }).run(unchecked.id);
      expect(started.status).toBe("blocked");
      const seen = await inspect(api.store, unchecked.id);
      expect(seen.of("step_started")).toHaveLength(0);
      expect(seen.of("spec_validation_error").map((e) => e.metadata)).toEqual(
        expect.arrayContaining([{ pointer: c.pointer, error: expect.stringMatching(c.message), step: "a" }]),
      );
    });
  }

  it("holds the spec folder's files to the same roots: a link in it leading out is refused, never copied", () => {
    const repo = gitRepo();
    const file = specFile({ steps: [replay({ prompt_ref: "p.md", inputs: { final: "x" } })] });
    symlinkSync("/etc/hostname", join(file, "..", "p.md"));
    const validated = JSON.parse(tgz("spec", "validate", file, "--repo", repo, "--json").stdout);
    expect(validated.errors).toEqual([
      { pointer: "/steps/0/prompt_ref", message: expect.stringMatching(/resolves outside/) },
    ]);
    const run = tgz("run", file, "--repo", repo);
    expect(run).toMatchObject({ code: 1, stderr: expect.stringContaining("/steps/0/prompt_ref: ") });
  });

  it("never shows a byte of a recording it refused", async () => {
    const repo = gitRepo();
    const project = (await api.call("POST", "/projects", { name: "p", git_url: repo, local_path: repo }))
      .body;
    const spec = { steps: [replay({ inputs: { recording: "/etc/passwd" } })] };
    const { run } = await createRunFromSpec(api.store, { projectId: project.id, spec });
    await new ProtocolRunner({
      store: api.store,
      registry: createDefaultRegistry(),
      configFor: (d) => loadConfig(d, {}),
    }).run(run.id);
    const events = (await api.call("GET", `/protocols/${run.id}/events?after=0`)).body;
    expect(events.map((e: { event_type: string }) => e.event_type)).toContain("spec_validation_error");
    expect(JSON.stringify(events)).not.toMatch(/root:x?:0:0/);
  });

  it("says valid a spec that runs, with and without a repository, and runs it", () => {
    const repo = gitRepo();
    const file = specFile({ steps: [{ id: "a", engine_id: "shell", inputs: { command: "echo hi" } }] });
    expect(tgz("spec", "validate", file)).toMatchObject({ code: 0, stdout: expect.stringMatching(/valid/) });
    expect(tgz("spec", "validate", file, "--repo", repo)).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/paths checked in/),
    });
    expect(tgz("run", file, "--repo", repo, "--json").code).toBe(0);
  });

  it("checks engines and prompts without a repository, and names settings for engines that do not exist", async () => {
    const file = specFile({ steps: [{ id: "a", engine_id: "codex" }] });
    expect(JSON.parse(tgz("spec", "validate", file, "--json").stdout).errors).toEqual([
      { pointer: "/steps/0/prompt_ref", message: expect.stringMatching(/no prompt_ref/) },
    ]);
    const repo = gitRepo();
    writeFileSync(
      join(repo, "tasksgodzilla.config.json"),
      JSON.stringify({ engines: { codx: { binary: "/x" } } }),
    );
    const ok = specFile({ steps: [{ id: "a", engine_id: "shell", inputs: { command: "true" } }] });
    const config = { pointer: "", message: expect.stringMatching(/settings for unknown engine "codx"/) };
    expect(JSON.parse(tgz("spec", "validate", ok, "--repo", repo, "--json").stdout).errors).toEqual([config]);
    const project = (await api.call("POST", "/projects", { name: "c", git_url: repo, local_path: repo }))
      .body;
    const created = await api.call("POST", `/projects/${project.id}/protocols`, {
      protocol_name: "c",
      spec: { steps: [{ id: "a", engine_id: "shell", inputs: { command: "true" } }] },
    });
    expect(created).toMatchObject({ status: 400, body: { errors: [config] } });
  });
});
