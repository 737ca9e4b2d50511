/** `tgz import codemachine` from the command line: the import options reach the import, errors exit 1. */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { exampleCopy, pkg } from "./packages.js";

const BIN = join(import.meta.dirname, "../../dist/cli/main.js");
const run = (args: string[]) =>
  promisify(execFile)("node", [BIN, "import", "codemachine", ...args, "--print-spec"], {
    env: { ...process.env, TASKSGODZILLA_QA_POLICY: "" },
  }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );

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
    const none = await run([dir, "--repo", dir]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(
      /cannot import .*: the workflow asks for a track "Which\?": choose one with --track/,
    );
    const bad = await run([dir, "--repo", dir, "--track", "quick", "--engine", "cursor"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--engine must be <codemachine engine>=<engine id>, got "cursor"/);
  });
});
