/**
 * Packages that cannot be imported: every error names the file, the entry (step index and agent) and
 * the field, with what was expected; and no path a package names may lead outside it or the repository.
 */
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { IMPORT_LIMITS } from "../../src/codemachine/import-limits.js";
import { imp, importError, pkg, rootWith, writeTree } from "./packages.js";

const AGENTS = `module.exports = [
  { id: 'a', name: 'A', promptPath: 'prompts/a.md' },
  { id: 'b', name: 'B', promptPath: 'prompts/a.md' },
];`;
const MODULES = `module.exports = [{ id: 'check', name: 'Check', promptPath: 'prompts/a.md', behavior: { type: 'loop', action: 'stepBack', steps: 1 } }];`;
const withSteps = (steps: string) =>
  rootWith({
    "config/main.agents.js": AGENTS,
    "config/modules.js": MODULES,
    "templates/workflows/w.workflow.js": `export default { name: 'w', steps: [${steps}] };`,
  });
const WORKFLOW = "templates/workflows/w.workflow.js";

describe("wrong-shape step options", () => {
  it.each([
    [
      "resolveStep('a', { executeOnce: 'yes' })",
      `steps[0] (resolveStep 'a'): executeOnce: expected true or false, got "yes"`,
    ],
    [
      "resolveStep('a', { engine: 5 })",
      `steps[0] (resolveStep 'a'): engine: expected an engine id (not empty), got 5`,
    ],
    [
      "resolveStep('a'), resolveModule('check', { loopSteps: 'abc' })",
      `steps[1] (resolveModule 'check'): loopSteps: expected a whole number above 0, got "abc"`,
    ],
    [
      "resolveStep('a'), resolveModule('check', { loopSkip: 'a' })",
      `steps[1] (resolveModule 'check'): loopSkip: expected a list of agent ids, got "a"`,
    ],
    [
      "resolveStep('a'), resolveModule('check', { loopMaxIterations: '5' })",
      `steps[1] (resolveModule 'check'): loopMaxIterations: expected a whole number above 0, got "5"`,
    ],
    [
      "resolveStep('a', { modelReasoningEffort: 'extreme' })",
      `steps[0] (resolveStep 'a'): modelReasoningEffort: expected one of low, medium, high, got "extreme"`,
    ],
    ["resolveStep('a', 'fast')", `steps[0] (resolveStep 'a'): expected an options object, got "fast"`],
    [
      "resolveStep('a', { tracks: 'quick' })",
      `steps[0] (resolveStep 'a'): tracks: expected a list of track ids, got "quick"`,
    ],
    ["resolveStep(5)", `steps[0]: resolveStep(): the first argument must be an agent id (a string), got 5`],
    [
      "{ type: 'module', agentId: 'x', agentName: 'X' }",
      `steps[0] (agent x): promptPath: expected a prompt file path or a non-empty list of them (set promptPath on agent "x" in templates/workflows/w.workflow.js or in the step's options), got nothing`,
    ],
    ["{ type: 'module', agentId: 'x' }", `steps[0] (agent x): agentName: expected a string, got nothing`],
    ["{ type: 'module' }", `steps[0]: agentId: expected an agent id, got nothing`],
    [
      "{ type: 'module', agentId: 'x', agentName: 'X', promptPath: 'prompts/a.md', module: { behavior: { type: 'loop', action: 'stepBack', steps: 0 } } }",
      `steps[0] (agent x): module.behavior.steps: expected a whole number above 0, got 0`,
    ],
    [
      "'a'",
      `steps[0]: expected a step (resolveStep, resolveModule, resolveFolder, separator or resolveUI), got "a"`,
    ],
    [
      "resolveStep('nobody')",
      `steps[0] (resolveStep 'nobody'): no agent "nobody" in config/main.agents.js (known: a, b)`,
    ],
  ])("%s", async (steps, message) => {
    const dir = withSteps(steps);
    expect(await importError(dir)).toBe(`${join(dir, WORKFLOW)}: ${message}`);
  });

  it.each([
    [
      "modelReasoningEffort: 'extreme'",
      "{ id: 'a', name: 'A', promptPath: 'prompts/a.md', modelReasoningEffort: 'extreme' }",
      `module.exports[0] (agent a): modelReasoningEffort: expected one of low, medium, high, got "extreme"`,
    ],
    ["no id", "{ name: 'no id' }", "module.exports[0]: id: expected an agent id, got nothing"],
    [
      "a chained prompt entry without path",
      "{ id: 'a', name: 'A', promptPath: 'prompts/a.md', chainedPromptsPath: [{ conditions: ['x'] }] }",
      "module.exports[0] (agent a): chainedPromptsPath[0]: path: expected a file or folder path, got nothing",
    ],
  ])("an agent with %s", async (_what, agent, message) => {
    const dir = rootWith({ "config/main.agents.js": `module.exports = [${agent}];` });
    expect(await importError(dir)).toBe(`${join(dir, "config/main.agents.js")}: ${message}`);
  });

  it("reports a module behaviour of the wrong shape with its field", async () => {
    const dir = rootWith({
      "config/modules.js":
        "module.exports = [{ id: 'check', promptPath: 'prompts/a.md', behavior: { type: 'loop', action: 'stepBack', steps: -1 } }];",
    });
    expect(await importError(dir)).toBe(
      `${join(dir, "config/modules.js")}: module.exports[0] (agent check): behavior.steps: expected a whole number above 0, got -1`,
    );
  });

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
      /w\.workflow\.js: steps\[0\] \(resolveStep 'a'\): promptPath: "prompts\/nope\.md" not found/,
    ],
    [
      "a workflow that throws",
      { [WORKFLOW]: "throw new Error('boom');\nexport default {};" },
      /w\.workflow\.js: Error: boom/,
    ],
    [
      "a workflow without name",
      { [WORKFLOW]: "export default { steps: [] };" },
      /w\.workflow\.js: export default: name: expected a workflow name, got nothing/,
    ],
    [
      "a workflow with no steps",
      { [WORKFLOW]: "export default { name: 'w', steps: [] };" },
      /w\.workflow\.js: export default: steps: expected a non-empty list of steps/,
    ],
    [
      "named exports",
      { [WORKFLOW]: "export const x = 1; export default { name: 'w', steps: [] };" },
      /w\.workflow\.js: only `export default …` is supported/,
    ],
    [
      "main agents that are not a list",
      { "config/main.agents.js": "module.exports = { agents: [] };" },
      /main\.agents\.js: module\.exports: expected a list of agents, got an object/,
    ],
    [
      "placeholders that are not paths",
      { "config/placeholders.js": "module.exports = { userDir: { spec: 5 } };" },
      /placeholders\.js: module\.exports\.userDir: spec: expected a file path or dir\/\*\.ext \(not empty\), got 5/,
    ],
  ])("refuses %s, naming the file and field", async (_what, files, message) => {
    expect(await importError(rootWith(files))).toMatch(message);
  });
});

describe("paths stay inside the package or the repository", () => {
  const manifest = (paths: unknown) => ({
    "codemachine.json": JSON.stringify({ name: "p", version: "1", paths }),
    "config/main.agents.js": AGENTS,
    "templates/workflows/w.workflow.js": "export default { name: 'w', steps: [resolveStep('a')] };",
    "prompts/a.md": "a",
  });

  it("refuses manifest paths of the wrong type", async () => {
    const dir = pkg(manifest({ config: 5 }));
    expect(await importError(dir)).toBe(
      `${join(dir, "codemachine.json")}: manifest: paths.config: expected a folder inside the package (not empty), got 5`,
    );
    const list = pkg(manifest(["config"]));
    expect(await importError(list)).toBe(
      `${join(list, "codemachine.json")}: manifest: paths: expected an object, got a list`,
    );
  });

  it("refuses manifest paths that lead outside the package, also through a symlink", async () => {
    const dir = pkg(manifest({ config: "../../../etc" }));
    expect(await importError(dir)).toMatch(
      /codemachine\.json: paths\.config: "\.\.\/\.\.\/\.\.\/etc" is outside the package folder .*; package paths must stay inside it/,
    );
    const outside = pkg({ "main.agents.js": AGENTS });
    const linked = pkg(manifest({ config: "cfg" }));
    symlinkSync(outside, join(linked, "cfg"));
    expect(await importError(linked)).toMatch(/paths\.config: "cfg" is outside the package folder/);
  });

  it.each([
    ["an absolute promptPath elsewhere", "/etc/hostname"],
    ["a relative promptPath that climbs out", "../../../../../../etc/hostname"],
  ])("refuses %s", async (_what, promptPath) => {
    const dir = rootWith({
      "config/main.agents.js": `module.exports = [{ id: 'a', name: 'A', promptPath: ${JSON.stringify(promptPath)} }];`,
    });
    expect(await importError(dir, { repoDir: join(dir, "prompts") })).toBe(
      `${join(dir, WORKFLOW)}: steps[0] (resolveStep 'a'): promptPath: "${promptPath}" is outside the package and the repository; package files may only read inside them`,
    );
  });

  it("refuses a prompt reached through a symlink that leads outside", async () => {
    const outside = pkg({ "secret.md": "secret" });
    const dir = rootWith({
      "config/main.agents.js": AGENTS.replace("prompts/a.md", "prompts/linked/secret.md"),
    });
    symlinkSync(outside, join(dir, "prompts/linked"));
    const repo = pkg({});
    expect(await importError(dir, { repoDir: repo })).toMatch(
      /promptPath: "prompts\/linked\/secret\.md" is outside the package and the repository/,
    );
  });

  it("refuses a file in a chained-prompts folder that a symlink leads outside", async () => {
    const outside = pkg({ "secret.md": "secret" });
    const dir = rootWith({
      "config/main.agents.js":
        "module.exports = [{ id: 'a', name: 'A', promptPath: 'prompts/a.md', chainedPromptsPath: ['prompts/chain'] }];",
      "prompts/chain/0.md": "first",
    });
    symlinkSync(join(outside, "secret.md"), join(dir, "prompts/chain/1.md"));
    expect(await importError(dir, { repoDir: pkg({}) })).toBe(
      `${join(dir, WORKFLOW)}: steps[0] (resolveStep 'a'): chainedPromptsPath: "prompts/chain/1.md" is outside the package and the repository; package files may only read inside them`,
    );
  });

  it("refuses a packageDir glob match that a symlink leads outside", async () => {
    const outside = pkg({ "secret.md": "secret" });
    const dir = rootWith({
      "config/placeholders.js": "module.exports = { packageDir: { notes: 'extra/*.md' } };",
      "extra/0.md": "fine",
      "prompts/a.md": "{notes}",
    });
    symlinkSync(join(outside, "secret.md"), join(dir, "extra/1.md"));
    expect(await importError(dir)).toBe(
      `${join(dir, "config/placeholders.js")}: module.exports.packageDir: notes: "extra/1.md" is outside the package (through a symlink)`,
    );
  });

  it("refuses package code that a symlink leads outside, before running it", async () => {
    const outside = pkg({ "secret.js": "module.exports = [];" });
    const dir = rootWith({});
    symlinkSync(join(outside, "secret.js"), join(dir, "config/placeholders.js"));
    expect(await importError(dir)).toBe(
      `${join(dir, "config/placeholders.js")}: leads outside the package (a symlink?); package code is only read from inside it`,
    );
  });

  it("refuses package placeholder files and sub-agent mirrors outside the package", async () => {
    const dir = rootWith({
      "config/placeholders.js": "module.exports = { packageDir: { style: '../../style.md' } };",
      "prompts/a.md": "{style}",
    });
    expect(await importError(dir)).toMatch(
      /placeholders\.js: module\.exports\.packageDir: style: "\.\.\/\.\.\/style\.md" is outside the package/,
    );
    const sub = rootWith({
      "config/sub.agents.js": "module.exports = [{ id: 'h', name: 'H', mirrorPath: '/etc/hostname' }];",
      [WORKFLOW]: "export default { name: 'w', subAgentIds: ['h'], steps: [resolveStep('a')] };",
    });
    expect(await importError(sub)).toMatch(
      /sub\.agents\.js: module\.exports\[0\] \(agent h\): mirrorPath: "\/etc\/hostname" is outside the package/,
    );
  });

  it("refuses a resolveFolder id that climbs out of prompts/templates", async () => {
    const dir = rootWith({
      "config/main.agents.js": "module.exports = [{ id: '../../..', type: 'folder' }];",
      [WORKFLOW]: "export default { name: 'w', steps: [...resolveFolder('../../..')] };",
    });
    mkdirSync(join(dir, "prompts/templates"), { recursive: true });
    expect(await importError(dir)).toMatch(
      /resolveFolder '\.\.\/\.\.\/\.\.'\): folder prompts\/templates\/\.\.\/\.\.\/\.\.\/ not found in the package/,
    );
  });
});

describe("placeholder files are contained and bounded at import, whether a prompt uses them or not", () => {
  const PLACEHOLDERS = "config/placeholders.js";
  const withPlaceholders = (value: string, files: Record<string, string> = {}) =>
    rootWith({ [PLACEHOLDERS]: `module.exports = ${value};`, ...files });
  const refused = async (dir: string, message: string, repoDir = pkg({})) =>
    expect(await importError(dir, { repoDir })).toBe(`${join(dir, PLACEHOLDERS)}: ${message}`);

  it("refuses a userDir file by absolute path, by .. and through a symlink in the repository", async () => {
    await refused(
      withPlaceholders("{ userDir: { spec: '/etc/passwd' } }"),
      `module.exports.userDir: spec: "/etc/passwd" is an absolute path; userDir files are read in the run's worktree, so name them relative to the repository`,
    );
    await refused(
      withPlaceholders("{ userDir: { spec: '../../../etc/passwd' } }"),
      `module.exports.userDir: spec: "../../../etc/passwd" is outside the repository`,
    );
    const repo = pkg({ "docs/ok.md": "fine" });
    symlinkSync("/etc", join(repo, "docs/etc"));
    await refused(
      withPlaceholders("{ userDir: { spec: 'docs/etc/passwd' } }"),
      `module.exports.userDir: spec: "docs/etc/passwd" is outside the repository (through a symlink)`,
      repo,
    );
    // a glob's folder, and one file of it, leading out
    await refused(
      withPlaceholders("{ userDir: { notes: 'docs/etc/*.conf' } }"),
      `module.exports.userDir: notes: "docs/etc/*.conf" is outside the repository (through a symlink)`,
      repo,
    );
    symlinkSync("/etc/hostname", join(repo, "docs/host.md"));
    await refused(
      withPlaceholders("{ userDir: { notes: 'docs/*.md' } }"),
      `module.exports.userDir: notes: "docs/host.md" is outside the repository (through a symlink)`,
      repo,
    );
  });

  it("refuses a packageDir file by absolute path and through a symlink", async () => {
    await refused(
      withPlaceholders("{ packageDir: { style: '/etc/passwd' } }"),
      `module.exports.packageDir: style: "/etc/passwd" is outside the package`,
    );
    const dir = withPlaceholders("{ packageDir: { style: 'common/style.md' } }");
    mkdirSync(join(dir, "common"));
    symlinkSync("/etc/hostname", join(dir, "common/style.md"));
    await refused(
      dir,
      `module.exports.packageDir: style: "common/style.md" is outside the package (through a symlink)`,
    );
  });

  it("refuses a glob that matches more files than one entry may bring in, before reading them", async () => {
    const many = Object.fromEntries(
      Array.from({ length: IMPORT_LIMITS.files + 1 }, (_, i) => [`notes/${i}.md`, "x"]),
    );
    await refused(
      withPlaceholders("{ packageDir: { notes: 'notes/*.md' } }", many),
      `module.exports.packageDir: notes: "notes/*.md" matches ${IMPORT_LIMITS.files + 1} files, more than the ${IMPORT_LIMITS.files} one entry may bring in; name fewer files`,
    );
    await refused(
      withPlaceholders("{ userDir: { notes: 'notes/*.md' } }"),
      `module.exports.userDir: notes: "notes/*.md" matches ${IMPORT_LIMITS.files + 1} files, more than the ${IMPORT_LIMITS.files} one entry may bring in; name fewer files`,
      writeTree(pkg({}), many),
    );
    // the limit itself is fine
    const enough = Object.fromEntries(
      Array.from({ length: IMPORT_LIMITS.files }, (_, i) => [`notes/${i}.md`, "x"]),
    );
    const { files } = await imp(
      withPlaceholders("{ packageDir: { notes: 'notes/*.md' } }", { ...enough, "prompts/a.md": "{notes}" }),
    );
    expect(Object.keys(files).filter((f) => f.startsWith("codemachine/package/notes/"))).toHaveLength(
      IMPORT_LIMITS.files,
    );
  });

  it("refuses a glob whose files are bigger together than one entry may bring in", async () => {
    const third = Math.ceil(IMPORT_LIMITS.bytes / 3) + 1;
    const dir = withPlaceholders("{ packageDir: { notes: 'notes/*.md' } }");
    mkdirSync(join(dir, "notes"));
    for (const n of [1, 2, 3]) writeFileSync(join(dir, `notes/${n}.md`), Buffer.alloc(third, 97));
    await refused(
      dir,
      `module.exports.packageDir: notes: "notes/*.md" matches ${((3 * third) / 1024 / 1024).toFixed(1)} MB of files, more than the 8.0 MB one entry may bring in`,
    );
  });

  it("refuses a glob it cannot read as CodeMachine and the runner do (dir/*.ext)", async () => {
    await refused(
      withPlaceholders("{ packageDir: { briefs: 'briefs/brief-*.md' } }"),
      `module.exports.packageDir: briefs: "briefs/brief-*.md": only "dir/*.ext" globs are supported (every file of one folder whose name ends in .ext)`,
    );
  });
});

describe("package files are bounded at import", () => {
  it("refuses a prompt file bigger than a package file may be", async () => {
    const dir = rootWith({});
    writeFileSync(join(dir, "prompts/a.md"), Buffer.alloc(IMPORT_LIMITS.bytes + 1024 * 1024, 97));
    expect(await importError(dir)).toBe(
      `${join(dir, WORKFLOW)}: steps[0] (resolveStep 'a'): promptPath: "prompts/a.md" is 9.0 MB, more than the 8.0 MB a package file may have`,
    );
  });

  it("refuses an import that reads more than it may in all", async () => {
    const steps = Math.floor(IMPORT_LIMITS.totalBytes / (IMPORT_LIMITS.bytes - 1)) + 1;
    const dir = rootWith({
      [WORKFLOW]: `export default { name: 'w', steps: [${"resolveStep('a'), ".repeat(steps)}] };`,
    });
    writeFileSync(join(dir, "prompts/a.md"), Buffer.alloc(IMPORT_LIMITS.bytes - 1, 97));
    expect(await importError(dir)).toBe(
      `${join(dir, WORKFLOW)}: steps[${steps - 1}] (resolveStep 'a'): promptPath: reading "prompts/a.md" brings the files this import reads to more than 64.0 MB`,
    );
  });

  it("refuses a chained-prompts folder holding more files than one entry may bring in", async () => {
    const dir = rootWith({
      "config/main.agents.js":
        "module.exports = [{ id: 'a', name: 'A', promptPath: 'prompts/a.md', chainedPromptsPath: ['prompts/chain'] }];",
      ...Object.fromEntries(
        Array.from({ length: IMPORT_LIMITS.files + 1 }, (_, i) => [`prompts/chain/${i}.md`, "x"]),
      ),
    });
    expect(await importError(dir)).toBe(
      `${join(dir, WORKFLOW)}: steps[0] (resolveStep 'a'): chainedPromptsPath: "prompts/chain" holds ${IMPORT_LIMITS.files + 1} files, more than the ${IMPORT_LIMITS.files} one entry may bring in; name fewer files`,
    );
  });
});
