/** Importing real-shaped CodeMachine packages (0.7 root, 0.8 package, legacy layout) into one ProtocolSpec. */
import { readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { importCodemachine } from "../../src/codemachine/import-codemachine.js";
import { exampleCopy, imp, importError, pkg, writeTree } from "./packages.js";

describe("CodeMachine import", () => {
  it("imports a 0.8 local package: steps, engines, loop, placeholders, directive, sub-agents", async () => {
    const repo = exampleCopy();
    const { spec, files, warnings } = await imp(repo, { qa: "full" });
    expect(warnings).toEqual([]);
    expect(
      spec.steps.map((s) => [
        s.id,
        s.agent_id,
        s.engine_id,
        s.model ?? null,
        s.qa.policy,
        s.trigger_only ?? false,
      ]),
    ).toEqual([
      ["plan", "plan", "claude-code", "sonnet", "full", false],
      ["build", "build", "codex", "gpt-5.1-codex", "full", false],
      ["check", "check", "claude-code", null, "full", false],
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
      dialect_reason: expect.stringMatching(
        /^uses what only CodeMachine 0\.8 has: a codemachine\.json manifest, /,
      ),
      layout: "package",
      sub_agents: [{ id: "tester", name: "Test Runner" }],
    });
  });

  it("mirrors only the workflow's subAgentIds into the protocol folder and names them in each prompt", async () => {
    const repo = exampleCopy();
    const { files, spec } = await imp(repo);
    expect(files["codemachine/agents/tester.md"]).toBe(
      // the mirrorPath file, as CodeMachine copies it to .codemachine/agents/tester.md
      readFileSync(join(repo, ".codemachine/prompts/tester.md"), "utf8"),
    );
    expect(JSON.parse(files["codemachine/agents/agents-config.json"]!)).toEqual([
      { id: "tester", name: "Test Runner", description: "Runs the project's tests and lists what fails" },
    ]);
    expect(files["prompts/build.md"]).toMatch(
      /## Sub-agents\n\n.*\n\n- `tester` \(Test Runner\): Runs the project's tests.*Prompt: \{\{protocol_dir\}\}\/codemachine\/agents\/tester\.md\n$/s,
    );
    expect(spec.steps[1]!.metadata.codemachine.sub_agents).toEqual(["tester"]);

    // without subAgentIds no sub-agent reaches a prompt
    const flow = join(repo, ".codemachine/templates/workflows/plan-build-check.workflow.js");
    const text = readFileSync(flow, "utf8");
    expect(text).toContain('subAgentIds: ["tester"],');
    writeFileSync(flow, text.replace('subAgentIds: ["tester"],', ""));
    const none = await imp(repo);
    expect(none.files["codemachine/agents/tester.md"]).toBeUndefined();
    expect(none.files["prompts/build.md"]).not.toContain("Sub-agents");
    expect(none.spec.metadata.codemachine.sub_agents).toEqual([]);
  });

  it("gives each step only the sub-agents its agent-coordination targets name", async () => {
    const dir = pkg({
      "codemachine.json": JSON.stringify({ name: "subs", version: "1.0.0" }),
      "config/main.agents.js": `module.exports = [
  { id: 'lead', name: 'Lead', promptPath: 'prompts/lead.md', mcp: [{ server: 'agent-coordination', targets: ['writer'] }] },
  { id: 'solo', name: 'Solo', promptPath: 'prompts/solo.md' },
];`,
      "config/sub.agents.js": `module.exports = [
  { id: 'writer', name: 'Writer', description: 'writes docs', mirrorPath: 'prompts/writer.md' },
  { id: 'tester', name: 'Tester', description: 'runs tests' },
];`,
      "templates/workflows/w.workflow.js": `export default { name: 'w', subAgentIds: ['writer', 'tester'], steps: [resolveStep('lead'), resolveStep('solo')] };`,
      "prompts/lead.md": "lead",
      "prompts/solo.md": "solo",
      "prompts/writer.md": "You write docs.",
    });
    const { files, spec } = await imp(dir);
    expect(files["codemachine/agents/writer.md"]).toBe("You write docs.");
    // a sub-agent without mirrorPath starts empty: a main agent writes its prompt ("dynamic")
    expect(files["codemachine/agents/tester.md"]).toBe("");
    expect(spec.steps.map((s) => s.metadata.codemachine.sub_agents)).toEqual([
      ["writer"],
      ["writer", "tester"],
    ]);
    expect(files["prompts/lead.md"]).not.toContain("tester");
    expect(files["prompts/solo.md"]).toContain(
      "`tester` (Tester): runs tests. Prompt: {{protocol_dir}}/codemachine/agents/tester.md (empty until you write it)",
    );
  });

  it("imports a 0.7 root: CommonJS with require('node:path') and __dirname, resolveUI, resolveFolder, loopSkip", async () => {
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
    const { spec, warnings } = await imp(dir);
    expect(spec.steps.map((s) => [s.id, s.engine_id])).toEqual([
      ["init", "codex"],
      ["code", "codex"],
      ["prep", "cursor"],
      ["readme", "gemini"],
      ["api", "gemini"],
      ["check", "codex"],
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
    expect(warnings).toContain(
      'step prep: engine "cursor" has no TasksGodzilla engine, so preflight blocks the whole run before any step runs; map it with --engine cursor=<engine> (engines: claude-code, codex, gemini, opencode, replay, shell)',
    );
    expect(warnings).toContain(
      'step check: agent "check" names no engine (nor does the step); it runs on codex, the project\'s default engine (CodeMachine would take its first authenticated engine)',
    );
    expect(warnings).toContain(
      "templates/workflows/main.workflow.js: steps[2] (resolveStep 'code'): placeholder {!notes} is not defined in config/placeholders.js; it becomes empty, as CodeMachine 0.7 empties an undefined placeholder",
    );
  });

  it("maps a CodeMachine engine with --engine and warns about none", async () => {
    const dir = pkg({
      "config/main.agents.js":
        "module.exports = [{ id: 'a', name: 'A', promptPath: 'prompts/a.md', engine: 'cursor' }];",
      "templates/workflows/w.workflow.js": "export default { name: 'w', steps: [resolveStep('a')] };",
      "prompts/a.md": "a",
    });
    const { spec, warnings } = await imp(dir, { engines: { cursor: "claude-code" } });
    expect(spec.steps[0]!.engine_id).toBe("claude-code");
    expect(warnings).toEqual([]);
  });

  it("imports a 0.8 package with paths, separator, array promptPath and chained prompts", async () => {
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
    expect(await importError(dir)).toMatch(/several workflows, pick one with --workflow: one, two/);
    const { spec, files } = await imp(dir, { workflow: "one" });
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

  it("skips every step of a repeated agent named in loopSkip, and gives each its own output file", async () => {
    const dir = pkg({
      "config/main.agents.js": `module.exports = [
  { id: 'code', name: 'Code', promptPath: 'prompts/code.md' },
  { id: 'git-commit', name: 'Commit', promptPath: 'prompts/commit.md' },
];`,
      "config/modules.js": `module.exports = [{ id: 'check', name: 'Check', promptPath: 'prompts/check.md', behavior: { type: 'loop', action: 'stepBack', steps: 4, maxIterations: 2 } }];`,
      "templates/workflows/w.workflow.js": `export default { name: 'w', steps: [
  resolveStep('git-commit', { executeOnce: true }),
  resolveStep('code'),
  resolveStep('git-commit'),
  resolveModule('check', { loopSkip: ['git-commit'] }),
] };`,
      "prompts/code.md": "code",
      "prompts/commit.md": "commit",
      "prompts/check.md": "check",
    });
    const { spec } = await imp(dir);
    expect(spec.steps.map((s) => [s.id, s.agent_id, s.outputs.aux.codemachine])).toEqual([
      ["git-commit", "git-commit", "aux/codemachine/git-commit.md"],
      ["code", "code", "aux/codemachine/code.md"],
      ["git-commit-2", "git-commit", "aux/codemachine/git-commit-2.md"],
      ["check", "check", "aux/codemachine/check.md"],
    ]);
    expect(spec.steps[3]!.policies[0]).toMatchObject({
      target_step: "git-commit",
      skip: ["git-commit", "git-commit-2"],
    });
  });

  it("writes the loop limit on the spec when the package sets none (behavior.steps used without loopSteps)", async () => {
    const dir = pkg({
      "config/main.agents.js":
        "module.exports = [{ id: 'a', name: 'A', promptPath: 'prompts/a.md' }, { id: 'b', name: 'B', promptPath: 'prompts/a.md' }];",
      "config/modules.js": `module.exports = [{ id: 'gate', name: 'Gate', promptPath: 'prompts/a.md', behavior: { type: 'loop', action: 'stepBack', steps: 2 } }];`,
      "templates/workflows/w.workflow.js":
        "export default { name: 'w', steps: [resolveStep('a'), resolveStep('b'), resolveModule('gate')] };",
      "prompts/a.md": "a",
    });
    const { spec, warnings } = await imp(dir);
    expect(spec.steps[2]!.policies[0]).toMatchObject({ target_step: "a", max_iterations: 3 });
    expect(warnings).toContain(
      "step gate: no loop limit (loopMaxIterations / behavior.maxIterations); the loop stops after 3 iterations",
    );
  });

  it("takes QA from --qa, else from the project's config, and writes it on every step", async () => {
    const repo = exampleCopy();
    const policies = async (opts: { qa?: "skip" | "light" | "full"; env?: NodeJS.ProcessEnv } = {}) =>
      (await imp(repo, opts)).spec.steps.map((s) => s.qa.policy);
    expect(await policies()).toEqual(["light", "light", "light"]);
    writeFileSync(join(repo, "tasksgodzilla.config.json"), JSON.stringify({ qa: { policy: "skip" } }));
    expect(await policies()).toEqual(["skip", "skip", "skip"]);
    writeFileSync(join(repo, "tasksgodzilla.config.json"), JSON.stringify({ qa: { policy: "full" } }));
    expect(await policies()).toEqual(["full", "full", "full"]);
    expect(await policies({ qa: "light" })).toEqual(["light", "light", "light"]);
    unlinkSync(join(repo, "tasksgodzilla.config.json"));
    expect(await policies({ env: { TASKSGODZILLA_QA_POLICY: "full" } })).toEqual(["full", "full", "full"]);
    expect((await imp(repo)).spec.metadata.codemachine.qa).toBe("light");
  });

  it("imports the local package in the legacy layout (no manifest, no workflow): the module twin loops, engineId is read", async () => {
    const repo = exampleCopy();
    rmSync(join(repo, ".codemachine/.codemachine.json"));
    rmSync(join(repo, ".codemachine/templates"), { recursive: true });
    // the Python-era files named the engine engineId only
    const agents = join(repo, ".codemachine/config/main.agents.js");
    const text = readFileSync(agents, "utf8");
    expect(text).toMatch(/^\s*engine: "codex",\n/m);
    writeFileSync(agents, text.replace(/^\s*engine: "codex",\n/m, ""));
    const { spec } = await imp(repo);
    expect(spec.metadata.codemachine).toMatchObject({
      layout: "legacy",
      dialect: "0.7",
      dialect_reason:
        "the .codemachine/config layout of the Python-era tools, with nothing only CodeMachine 0.8 has",
    });
    expect(spec.steps.map((s) => [s.id, s.engine_id])).toEqual([
      ["plan", "claude-code"],
      ["build", "codex"],
      ["check", "claude-code"],
    ]);
    expect(spec.steps[2]!.policies).toEqual([
      expect.objectContaining({
        id: "check",
        target_step: "build",
        max_iterations: 5,
        conditions: ["directive:loop"],
      }),
    ]);
  });

  it("reads Python-era `export default [...]` config files, skip lists of step indices and stepBack", async () => {
    const dir = pkg({
      ".codemachine/config/main.agents.js": `export default [
  { "id": "one", "name": "One", "promptPath": "prompts/one.md", "engineId": "codex" },
  { "id": "two", "name": "Two", "promptPath": "prompts/two.md" },
  { "id": "gate", "name": "Gate", "promptPath": "prompts/two.md", "moduleId": "gate" }
];`,
      ".codemachine/config/modules.js": `export default [{ "id": "gate", "behavior": { "type": "loop", "stepBack": 2, "maxIterations": 4, "skip": [0] } }];`,
      ".codemachine/prompts/one.md": "one",
      ".codemachine/prompts/two.md": "two",
    });
    const { spec } = await imp(dir);
    expect(spec.steps.map((s) => [s.id, s.engine_id])).toEqual([
      ["one", "codex"],
      ["two", "codex"],
      ["gate", "codex"],
    ]);
    expect(spec.steps[2]!.policies[0]).toMatchObject({
      target_step: "one",
      max_iterations: 4,
      skip: ["one"],
    });
  });

  it("adds the catalog agents a trigger can name as trigger-only steps", async () => {
    const dir = pkg({
      "codemachine.json": JSON.stringify({ name: "t", version: "1.0.0" }),
      "config/main.agents.js": `module.exports = [
  { id: 'code', name: 'Code', promptPath: 'prompts/code.md', engine: 'codex' },
  { id: 'git-commit', name: 'Commit', promptPath: 'prompts/commit.md', engine: 'claude' },
  { id: 'unused', name: 'Unused', promptPath: 'prompts/missing.md' },
];`,
      "config/modules.js": `module.exports = [
  { id: 'release', name: 'Release', promptPath: 'prompts/code.md', engine: 'codex', behavior: { type: 'trigger', action: 'mainAgentCall', triggerAgentId: 'notify' } },
  { id: 'announce', name: 'Announce', promptPath: 'prompts/code.md', engine: 'codex', behavior: { type: 'trigger', action: 'mainAgentCall', triggerAgentId: 'ghost' } },
];`,
      "config/sub.agents.js": `module.exports = [{ id: 'notify', name: 'Notify', mirrorPath: 'prompts/notify.md', engine: 'claude' }];`,
      "templates/workflows/w.workflow.js":
        "export default { name: 'w', steps: [resolveStep('code'), resolveModule('release'), resolveModule('announce')] };",
      "prompts/code.md":
        'When done write {"action": "trigger", "triggerAgentId": "git-commit"} to .codemachine/memory/directive.json. A trigger looks like {"action": "trigger", "triggerAgentId": "sub-agent-id"}.',
      "prompts/commit.md": "commit",
      "prompts/notify.md": "notify",
    });
    const { spec, files, warnings } = await imp(dir);
    expect(spec.steps.map((s) => [s.id, s.agent_id, s.trigger_only ?? false, s.engine_id])).toEqual([
      ["code", "code", false, "codex"],
      ["release", "release", false, "codex"],
      ["announce", "announce", false, "codex"],
      ["notify", "notify", true, "claude-code"],
      ["git-commit", "git-commit", true, "claude-code"],
    ]);
    expect(files["prompts/git-commit.md"]).toBe("commit");
    // configuration naming an unknown agent is reported; a prompt's example name is not a trigger
    expect(warnings).toEqual([
      'a trigger names agent "ghost", which is not in the catalog; a trigger directive naming it blocks the run',
    ]);
  });

  it("keeps userDir placeholders whose names the runner also uses, and the 0.8 built-ins by dialect", async () => {
    const files = {
      "config/main.agents.js":
        "module.exports = [{ id: 'a', name: 'A', promptPath: 'prompts/a.md', engine: 'codex' }];",
      "config/placeholders.js":
        "module.exports = { userDir: { workspace: 'notes/ws.md', project_name: 'notes/name.md', date: 'notes/date.md' } };",
    };
    const eight = await imp(
      pkg({
        ...files,
        "codemachine.json": JSON.stringify({ name: "e", version: "1" }),
        "templates/workflows/w.workflow.js": "export default { name: 'w', steps: [resolveStep('a')] };",
        "prompts/a.md": "{workspace} {project_name} {date} {user_name} {selected_track}",
      }),
    );
    // {selected_track} has no value (no tracks) and is not defined: 0.8 leaves it as written
    expect(eight.files["prompts/a.md"]).toBe(
      "{{workspace}} {{project_name}} {{date}} {{user_name}} {selected_track}",
    );
    // the files' contents, not the worktree path or the project name; {date} stays CodeMachine's built-in
    expect(eight.spec.placeholders).toEqual({
      workspace: { file: "notes/ws.md", from: "workspace" },
      project_name: { file: "notes/name.md", from: "workspace" },
    });
    expect(eight.warnings).toEqual([
      "config/placeholders.js: date is shadowed by CodeMachine 0.8's built-in {date}, as in CodeMachine",
      "templates/workflows/w.workflow.js: steps[0] (resolveStep 'a'): placeholder {selected_track} has no value: the workflow offers no tracks; it stays as written, as CodeMachine 0.8 leaves a placeholder it cannot resolve",
    ]);

    const seven = await imp(
      pkg({
        ...files,
        "templates/workflows/w.workflow.js":
          "export default { name: 'w', steps: [resolveUI('x'), resolveStep('a')] };",
        "prompts/a.md": "{workspace} {project_name} {date} {!later}",
      }),
    );
    // 0.7 has no built-ins: date comes from placeholders.js, and an undefined name becomes empty
    expect(seven.spec.metadata.codemachine.dialect).toBe("0.7");
    expect(seven.files["prompts/a.md"]).toBe("{{workspace}} {{project_name}} {{date}} ");
    expect(seven.spec.placeholders).toMatchObject({ date: { file: "notes/date.md", from: "workspace" } });
  });

  it("imports a package whose prompts live in the repository it runs in", async () => {
    const repo = pkg({ "docs/a.md": "from the repo" });
    const dir = writeTree(pkg({}), {
      "config/main.agents.js": "module.exports = [{ id: 'a', name: 'A', promptPath: 'docs/a.md' }];",
      "templates/workflows/w.workflow.js": "export default { name: 'w', steps: [resolveStep('a')] };",
    });
    const r = await importCodemachine(dir, { repoDir: repo, env: {} });
    expect(r.files["prompts/a.md"]).toBe("from the repo");
  });
});
