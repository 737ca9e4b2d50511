/** Importing real-shaped CodeMachine packages (0.7 root, 0.8 package, legacy layout) and broken ones. */
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { importCodemachine } from "../../src/codemachine/import-codemachine.js";
import { CodeMachineImportError } from "../../src/codemachine/import-errors.js";
import { validateSpecSchema } from "../../src/spec/validate-spec.js";

const EXAMPLE = join(import.meta.dirname, "../../../shared/reference/codemachine/example-workspace/my-app");

type Spec = {
  steps: Record<string, unknown>[];
  placeholders?: Record<string, unknown>;
  metadata: { codemachine: Record<string, unknown> };
};

function pkg(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "tgz-cm-"));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

const imp = (dir: string, extra: Record<string, unknown> = {}) => {
  const r = importCodemachine(dir, { repoDir: dir, ...extra });
  expect(validateSpecSchema(r.spec).ok).toBe(true);
  return { ...r, spec: r.spec as unknown as Spec };
};

describe("CodeMachine import", () => {
  it("imports the example workspace (0.8 local package): steps, engines, loop, placeholders, directive", () => {
    const repo = mkdtempSync(join(tmpdir(), "tgz-cm-example-"));
    cpSync(EXAMPLE, repo, { recursive: true });
    const { spec, files, warnings } = imp(repo, { qa: "full" });
    expect(warnings).toEqual([]);
    expect(
      spec.steps.map((s) => [s.id, s.engine_id, s.model ?? null, (s.qa as { policy: string }).policy]),
    ).toEqual([
      ["plan", "claude-code", "sonnet", "full"],
      ["build", "codex", "gpt-5.1-codex", "full"],
      ["check", "claude-code", null, "full"],
    ]);
    expect(spec.steps[0]).toMatchObject({
      execute_once: true,
      outputs: { protocol: "outputs/plan.md", aux: { codemachine: "aux/codemachine/plan.md" } },
    });
    expect(spec.steps[1]).toMatchObject({
      reasoning_effort: "medium",
      directive: { file: ".codemachine/memory/directive.json" },
    });
    expect(spec.steps[2]!.policies).toEqual([
      {
        behavior: "loop",
        id: "check",
        conditions: ["directive:loop"],
        target_step: "build",
        max_iterations: 5,
        skip: [],
      },
    ]);
    expect(spec.placeholders).toEqual({
      specifications: { file: ".codemachine/inputs/specifications.md", from: "workspace" },
    });
    expect(files["prompts/plan.md"]).toContain("{{specifications}}");
    expect(spec.metadata.codemachine).toMatchObject({
      dialect: "0.8",
      layout: "package",
      sub_agents: [{ id: "qa" }],
    });
  });

  it("imports a 0.7 root: CommonJS with require('node:path') and __dirname, resolveUI, resolveFolder, loopSkip", () => {
    const dir = pkg({
      "config/main.agents.js": `const path = require('node:path');
// real configs have comments, unquoted keys and trailing commas
module.exports = [
  { id: 'init', name: 'Init', promptPath: path.join(__dirname, '..', 'prompts', 'init.md'), engine: 'codex', },
  { id: 'code', name: 'Coder', promptPath: 'prompts/code.md', engine: 'claude', model: 'opus' },
  { id: 'prep', name: 'Prep', promptPath: 'prompts/prep.md', engine: 'cursor' },
  { id: 'docs', type: 'folder', model: 'gpt-5' },
];`,
      "config/modules.js": `module.exports = [{ id: 'check', name: 'Checker', promptPath: 'prompts/check.md', behavior: { type: 'loop', action: 'stepBack', steps: 1 } }];`,
      "templates/workflows/main.workflow.js": `export default {
  name: 'Seven',
  steps: [
    resolveStep('init', { executeOnce: true }),
    resolveUI('Build'),
    resolveStep('code', { engine: 'codex' }),
    resolveStep('prep'),
    ...resolveFolder('docs', { engine: 'gemini' }),
    resolveUI('Gate'),
    resolveModule('check', { loopSteps: 4, loopMaxIterations: 7, loopSkip: ['prep'] }),
  ],
};`,
      "prompts/init.md": "init",
      "prompts/code.md": "code {!notes}",
      "prompts/prep.md": "prep",
      "prompts/check.md": "check",
      "prompts/templates/docs/2-api.md": "api docs",
      "prompts/templates/docs/1-readme.md": "readme",
    });
    const { spec, warnings } = imp(dir);
    expect(spec.steps.map((s) => [s.id, s.engine_id])).toEqual([
      ["init", "codex"],
      ["code", "codex"],
      ["prep", "cursor"],
      ["readme", "gemini"],
      ["api", "gemini"],
      ["check", undefined],
    ]);
    expect(spec.metadata.codemachine.dialect).toBe("0.7");
    // 0.7 counts dividers: check is entry 7, 4 back is entry 3 (prep)
    expect(spec.steps[5]!.policies).toEqual([
      expect.objectContaining({ target_step: "prep", max_iterations: 7, skip: ["prep"] }),
    ]);
    expect(spec.steps[2]!.directive).toEqual({
      file: ".codemachine/memory/behavior.json",
      alt_files: [".codemachine/memory/directive.json"],
    });
    expect(warnings.join("\n")).toMatch(/step prep: engine "cursor" has no TasksGodzilla adapter/);
    expect(warnings.join("\n")).toMatch(/\{!notes\} is not defined/);
  });

  it("imports a 0.8 package with paths, separator, array promptPath and chained prompts", () => {
    const dir = pkg({
      "codemachine.json": JSON.stringify({
        name: "eight",
        version: "1.2.0",
        paths: { config: "cfg", workflows: "flows", prompts: "p" },
      }),
      "cfg/main.agents.js": `module.exports = [
  { id: 'a', name: 'A', promptPath: ['p/a1.md', 'p/a2.md'], engine: 'opencode', chainedPromptsPath: ['p/more'] },
  { id: 'b', name: 'B', promptPath: 'p/b.md', engine: 'claude' },
];`,
      "cfg/modules.js": `module.exports = [{ id: 'gate', name: 'Gate', promptPath: 'p/gate.md', engine: 'codex', behavior: { type: 'loop', action: 'stepBack', steps: 2, maxIterations: 3 } }];`,
      "cfg/placeholders.js": `module.exports = { userDir: { spec: 'docs/spec.md' }, packageDir: { style: 'p/style.md' } };`,
      "flows/one.workflow.js": `export default { name: 'Eight', steps: [resolveStep('a'), separator('Loop'), resolveStep('b'), resolveModule('gate')] };`,
      "flows/two.workflow.js": `export default { name: 'Other', steps: [resolveStep('b')] };`,
      "p/a1.md": "first part {spec}",
      "p/a2.md": "second part {style} on {date}",
      "p/more/01-next.md": "then do more",
      "p/b.md": "b",
      "p/gate.md": "gate",
      "p/style.md": "be terse",
    });
    expect(() => importCodemachine(dir, { repoDir: dir })).toThrow(
      /several workflows, pick one with --workflow: one, two/,
    );
    const { spec, files } = imp(dir, { workflow: "one" });
    expect(files["prompts/a.md"]).toBe(
      "first part {{spec}}\n\nsecond part {{style}} on {{date}}\n\n---\n\n## Follow-up 1 (01-next.md)\n\nthen do more",
    );
    expect(files["codemachine/package/p/style.md"]).toBe("be terse");
    expect(spec.placeholders).toEqual({
      spec: { file: "docs/spec.md", from: "workspace" },
      style: { file: "codemachine/package/p/style.md", from: "protocol" },
    });
    // 0.8 does not count the separator: gate is module step 2, 2 back is step 0 (a)
    expect(spec.steps[2]!.policies).toEqual([
      expect.objectContaining({ target_step: "a", max_iterations: 3 }),
    ]);
    expect(spec.metadata.codemachine).toMatchObject({ dialect: "0.8", package: "eight", version: "1.2.0" });
  });

  it("imports the legacy .codemachine/config layout: main agents in order", () => {
    const dir = pkg({
      ".codemachine/config/main.agents.js": `module.exports = [{ "id": "one", "name": "One", "promptPath": "prompts/one.md", "engine": "codex" }, { "id": "two", "name": "Two", "promptPath": "prompts/two.md" }];`,
      ".codemachine/prompts/one.md": "one",
      ".codemachine/prompts/two.md": "two",
    });
    expect(imp(dir).spec.steps.map((s) => s.id)).toEqual(["one", "two"]);
  });

  const broken = (files: Record<string, string>) => () =>
    importCodemachine(
      pkg({
        "templates/workflows/w.workflow.js": "export default { name: 'w', steps: [resolveStep('a')] };",
        "prompts/a.md": "a",
        ...files,
      }),
      { repoDir: tmpdir() },
    );

  it.each([
    [
      "a syntax error",
      { "config/main.agents.js": "module.exports = [ { id: 'a', " },
      /config\/main\.agents\.js: SyntaxError/,
    ],
    [
      "a missing prompt file",
      {
        "config/main.agents.js": "module.exports = [{ id: 'a', name: 'A', promptPath: 'prompts/nope.md' }];",
      },
      /agent a\): promptPath "prompts\/nope\.md" not found/,
    ],
    [
      "an unknown agent id",
      { "config/main.agents.js": "module.exports = [{ id: 'b', name: 'B', promptPath: 'prompts/a.md' }];" },
      /w\.workflow\.js: Error: resolveStep\('a'\): no agent "a" in config\/main\.agents\.js \(known: b\)/,
    ],
    [
      "an endless loop",
      { "config/main.agents.js": "while (true) {}" },
      /main\.agents\.js: did not finish within 2 s/,
    ],
    [
      "require('child_process')",
      { "config/main.agents.js": "require('child_process').execSync('touch /tmp/x'); module.exports = [];" },
      /require\('child_process'\) is not allowed/,
    ],
    [
      "fs.writeFileSync",
      { "config/main.agents.js": "require('fs').writeFileSync('/tmp/pwned', 'x'); module.exports = [];" },
      /require\('fs'\) is not allowed/,
    ],
    [
      "process.env",
      { "config/main.agents.js": "module.exports = [{ id: process.env.HOME }];" },
      /process is not defined/,
    ],
    [
      "a wrong shape",
      { "config/main.agents.js": "module.exports = [{ name: 'no id' }];" },
      /main\.agents\.js: module\.exports\[0\]\.id:/,
    ],
  ])("refuses %s, naming the file", (_what, files, message) => {
    expect(broken(files)).toThrow(CodeMachineImportError);
    expect(broken(files)).toThrow(message);
  });
});
