/**
 * `tgz import codemachine` from the command line: the import options reach the import, the printed
 * spec says which dialect was read and why, errors exit 1, and a refused import creates nothing.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open-store.js";
import { gitRepo } from "../scenario/harness.js";
import { exampleCopy, pkg, STOCK_08 } from "./packages.js";

const BIN = join(import.meta.dirname, "../../dist/cli/main.js");
const tgz = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  promisify(execFile)("node", [BIN, "import", "codemachine", ...args], {
    env: { ...process.env, TASKSGODZILLA_QA_POLICY: "", ...env },
  }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
const run = (args: string[]) => tgz([...args, "--print-spec"]);

describe("tgz import codemachine", () => {
  it("maps engines with --engine and takes QA from the project's config", async () => {
    const repo = exampleCopy();
    writeFileSync(join(repo, "tasksgodzilla.config.json"), JSON.stringify({ qa: { policy: "full" } }));
    const r = await run([repo, "--repo", repo, "--engine", "claude=opencode", "codex=gemini"]);
    expect(r.code).toBe(0);
    const spec = JSON.parse(r.stdout) as { steps: { engine_id: string; qa: { policy: string } }[] };
    expect(spec.steps.map((s) => [s.engine_id, s.qa.policy])).toEqual([
      ["opencode", "full"],
      ["gemini", "full"],
      ["opencode", "full"],
    ]);
  });

  it("passes --track and --condition, and exits 1 with the error when the package cannot be imported", async () => {
    const dir = pkg({
      "codemachine.json": JSON.stringify({ name: "t", version: "1" }),
      "config/main.agents.js":
        "module.exports = [{ id: 'a', name: 'A', promptPath: 'prompts/a.md' }, { id: 'b', name: 'B', promptPath: 'prompts/a.md' }];",
      "templates/workflows/w.workflow.js": `export default { name: 'w',
  tracks: { question: 'Which?', options: { quick: {}, full: {} } },
  conditionGroups: [{ id: 'g', conditions: { ui: {} } }],
  steps: [resolveStep('a'), resolveStep('b', { tracks: ['full'], conditions: ['ui'] })] };`,
      "prompts/a.md": "a",
    });
    const quick = await run([dir, "--repo", dir, "--track", "quick"]);
    expect(JSON.parse(quick.stdout).steps.map((s: { id: string }) => s.id)).toEqual(["a"]);
    const full = await run([dir, "--repo", dir, "--track", "full", "--condition", "ui"]);
    expect(JSON.parse(full.stdout).steps.map((s: { id: string }) => s.id)).toEqual(["a", "b"]);
    // without --track, the first track, as CodeMachine's onboarding preselects it
    const none = await run([dir, "--repo", dir]);
    expect(none.code).toBe(0);
    expect(JSON.parse(none.stdout).steps.map((s: { id: string }) => s.id)).toEqual(["a"]);
    expect(none.stderr).toContain(
      'warning: no track chosen: track quick, the first answer to "Which?" (quick, full), which CodeMachine\'s onboarding preselects; choose another with --track',
    );
    const wrong = await run([dir, "--repo", dir, "--track", "slow"]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(
      /cannot import .*: --track slow: not a track of the workflow \(tracks: quick, full\)/,
    );
    const bad = await run([dir, "--repo", dir, "--track", "quick", "--engine", "cursor"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--engine must be <codemachine engine>=<engine id>, got "cursor"/);
  });

  it("prints with --print-spec --json which dialect it read and why", async () => {
    const repo = pkg({});
    const r = await tgz([STOCK_08, "--repo", repo, "--track", "lean", "--print-spec", "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).metadata.codemachine).toMatchObject({
      layout: "root",
      dialect: "0.8",
      dialect_reason: expect.stringMatching(
        /^uses what only CodeMachine 0\.8 has: separator\(\), tracks, conditionGroups, /,
      ),
      selected_track: "lean",
    });
  });

  it("creates nothing when the import is refused, and a run when it is not", async () => {
    const data = mkdtempSync(join(tmpdir(), "tgz-cm-data-"));
    const env = { TASKSGODZILLA_DATA_DIR: data };
    const runs = async () => {
      const store = await openStore({ sqlitePath: join(data, "tasksgodzilla.db") });
      try {
        return (await store.listProtocolRuns()).length;
      } finally {
        await store.close();
      }
    };
    const good = gitRepo();
    const ok = await tgz([STOCK_08, "--repo", good, "--json"], env);
    expect(ok.code).toBe(0);
    expect(existsSync(JSON.parse(ok.stdout).protocol_root)).toBe(true);
    expect(await runs()).toBe(1);

    // the same workflow, with a placeholder file that a symlink in the repository leads out of it
    const repo = gitRepo();
    symlinkSync("/etc", join(repo, "linked"));
    const dir = exampleCopy(STOCK_08);
    writeFileSync(
      join(dir, "config/placeholders.js"),
      "module.exports = { userDir: { brief: 'linked/hostname' } };",
    );
    const refused = await tgz([dir, "--repo", repo, "--json"], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      `cannot import ${dir}: ${join(dir, "config/placeholders.js")}: module.exports.userDir: brief: "linked/hostname" is outside the repository (through a symlink)\n`,
    );
    expect(existsSync(join(repo, ".protocols"))).toBe(false);
    expect(await runs()).toBe(1);
  });
});
