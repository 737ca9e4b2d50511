/**
 * The CodeMachine dialect is decided by what a workflow uses, not by its layout alone: CodeMachine
 * 0.8 ships its workflows in 0.7's config/ + templates/workflows/ layout without a manifest. A 0.8
 * workflow gets 0.8 semantics everywhere (tracks, conditions, chained prompts, built-ins, undefined
 * placeholders left as written, directive.json); a 0.7 one 0.7's (undefined placeholders emptied,
 * dividers counted by loopSteps, behavior.json). The spec says which dialect and why.
 */
import { describe, expect, it } from "vitest";
import { imp, pkg, rootWith, STOCK_07, STOCK_08 } from "./packages.js";

const DIRECTIVE_08 = {
  file: ".codemachine/memory/directive.json",
  alt_files: [".codemachine/memory/behavior.json"],
};
const DIRECTIVE_07 = {
  file: ".codemachine/memory/behavior.json",
  alt_files: [".codemachine/memory/directive.json"],
};
const FLOW_08 = "templates/workflows/ship-feature.workflow.js";

describe("a 0.8 workflow in the stock layout (no codemachine.json)", () => {
  const repo = () => pkg({ ".codemachine/inputs/brief.md": "Add dark mode." });

  it("is read as 0.8, and the spec says why", async () => {
    const { spec } = await imp(STOCK_08, { repoDir: repo(), track: "lean" });
    expect(spec.metadata.codemachine).toMatchObject({
      layout: "root",
      dialect: "0.8",
      dialect_reason:
        "uses what only CodeMachine 0.8 has: separator(), tracks, conditionGroups, projectName, step tracks (step scout), step conditions (step scout), a list of prompt files (step planner), chainedPromptsPath (step planner)",
    });
    for (const step of spec.steps) expect(step.directive).toEqual(DIRECTIVE_08);
  });

  it("runs only the chosen track's steps, and without --track only the first track's", async () => {
    const thorough = await imp(STOCK_08, {
      repoDir: repo(),
      track: "thorough",
      conditions: ["has_ui", "prior_art"],
    });
    expect(thorough.spec.steps.map((s) => s.id)).toEqual([
      "scout",
      "planner",
      "ui-builder",
      "builder",
      "reviewer",
      "gate",
    ]);
    // loopSteps: 2 counts the visible steps only: from gate back past reviewer to builder
    expect(thorough.spec.steps[5]!.policies).toEqual([
      expect.objectContaining({ target_step: "builder", max_iterations: 3 }),
    ]);
    const lean = await imp(STOCK_08, { repoDir: repo() });
    expect(lean.spec.steps.map((s) => s.id)).toEqual(["planner", "builder", "gate"]);
    expect(lean.spec.metadata.codemachine.selected_track).toBe("lean");
    expect(lean.spec.metadata.codemachine.left_out.map((l: { agent_id: string }) => l.agent_id)).toEqual([
      "scout",
      "ui-builder",
      "reviewer",
    ]);
    // on the lean track two steps back from gate is planner (executeOnce, so the loop runs builder again)
    expect(lean.spec.steps[2]!.policies).toEqual([expect.objectContaining({ target_step: "planner" })]);
  });

  it("keeps the chained prompts the choices show, fills the built-ins, and leaves an undefined placeholder as written", async () => {
    const { files, spec, warnings } = await imp(STOCK_08, {
      repoDir: repo(),
      track: "thorough",
      conditions: ["has_api", "rest"],
    });
    const planner = files["prompts/planner.md"]!;
    expect(planner).toMatch(
      /^# Planner for \{\{project_name\}\}\n\nYou plan one feature at a time, on the \{\{selected_track\}\} track, for these surfaces:\n\{\{selected_conditions\}\}\. Today is \{\{date\}\}\./,
    );
    expect(spec.placeholders).toMatchObject({
      selected_track: "thorough",
      selected_conditions: "has_api, rest",
    });
    // both promptPath files, then the follow-ups the choices show, frontmatter removed, labelled by description
    expect(planner).toContain("\n\nRead the brief and write `.codemachine/artifacts/plan.md`");
    expect(planner).toContain("`templates/workflows/{workflow_name}.workflow.js`");
    const followUps = [...planner.matchAll(/^## Follow-up .*$/gm)].map((m) => m[0]);
    expect(followUps).toEqual([
      "## Follow-up 1 (01-risks.md): List the risks of the plan",
      "## Follow-up 2 (02-order.md)",
      "## Follow-up 3 (api-contract.md): Pin down the API contract",
      "## Follow-up 4 (deep-review.md)",
    ]);
    expect(planner).not.toContain("description:");
    expect(warnings).toContain(
      `${FLOW_08}: steps[1] (resolveStep 'planner'): placeholder {workflow_name} is not defined in config/placeholders.js; it stays as written, as CodeMachine 0.8 leaves a placeholder it cannot resolve`,
    );
    // the lean track without conditions shows neither the API nor the thorough follow-up
    const lean = (await imp(STOCK_08, { repoDir: repo() })).files["prompts/planner.md"]!;
    expect([...lean.matchAll(/^## Follow-up .*$/gm)].length).toBe(2);
  });

  it("warns about an agent that names no engine, and not about a prompt's example trigger", async () => {
    const { spec, warnings } = await imp(STOCK_08, { repoDir: repo(), track: "thorough" });
    expect(spec.steps.find((s) => s.id === "reviewer")!.engine_id).toBe("codex");
    expect(warnings).toContain(
      `step reviewer: agent "reviewer" names no engine (nor does the step); it runs on codex, the project's default engine (CodeMachine would take its first authenticated engine)`,
    );
    // gate.md shows {"action": "trigger", "triggerAgentId": "sub-agent-id"} as an example
    expect(warnings.join("\n")).not.toMatch(/trigger|sub-agent-id/);
    expect(spec.steps.some((s) => s.trigger_only)).toBe(false);
  });

  it("copies the package placeholder files a prompt uses, a glob's in CodeMachine's order", async () => {
    const { files, spec } = await imp(STOCK_08, { repoDir: repo(), track: "lean", conditions: ["has_ui"] });
    expect(files["codemachine/package/prompts/common/house-style.md"]).toMatch(/^Small commits\./);
    expect(Object.keys(files).filter((f) => f.includes("checklists"))).toEqual([
      "codemachine/package/prompts/common/checklists/accessibility.md",
      "codemachine/package/prompts/common/checklists/Layout.md",
    ]);
    expect(spec.placeholders).toMatchObject({
      checklists: { file: "codemachine/package/prompts/common/checklists/*.md", from: "protocol" },
      plan__optional: { file: ".codemachine/artifacts/plan.md", from: "workspace", optional: true },
    });
  });
});

describe("a 0.7 package root", () => {
  it("is read as 0.7: undefined placeholders emptied, dividers counted by loopSteps, behavior.json", async () => {
    const { spec, files, warnings } = await imp(STOCK_07, { repoDir: pkg({}) });
    expect(spec.metadata.codemachine).toMatchObject({
      dialect: "0.7",
      dialect_reason: "uses resolveUI() (0.7's divider) and nothing only CodeMachine 0.8 has",
    });
    expect(spec.steps.map((s) => s.id)).toEqual([
      "init",
      "architect",
      "coder",
      "runtime-prep",
      "readme",
      "changelog",
      "git-commit",
      "task-check",
    ]);
    for (const step of spec.steps) expect(step.directive).toEqual(DIRECTIVE_07);
    // six entries back from task-check, the three dividers counted, is coder
    expect(spec.steps[7]!.policies).toEqual([
      expect.objectContaining({ target_step: "coder", max_iterations: 8, skip: ["runtime-prep"] }),
    ]);
    expect(files["prompts/architect.md"]).toContain("Name the output after the , if there is one.");
    expect(warnings).toContain(
      "templates/workflows/build-app.workflow.js: steps[2] (resolveStep 'architect'): placeholder {release_codename} is not defined in config/placeholders.js; it becomes empty, as CodeMachine 0.7 empties an undefined placeholder",
    );
  });
});

describe("each 0.8-only feature makes a workflow 0.8", () => {
  const agent = (extra = "") =>
    `module.exports = [{ id: 'a', name: 'A', promptPath: 'prompts/a.md', engine: 'codex'${extra} }];`;
  const flow = (steps: string, fields = "") => `export default { name: 'w'${fields}, steps: [${steps}] };`;

  it.each([
    [
      "tracks",
      {
        "templates/workflows/w.workflow.js": flow(
          "resolveStep('a')",
          ", tracks: { question: 'q', options: { one: {} } }",
        ),
      },
      "tracks",
    ],
    [
      "conditionGroups",
      {
        "templates/workflows/w.workflow.js": flow(
          "resolveStep('a')",
          ", conditionGroups: [{ id: 'g', conditions: { x: {} } }]",
        ),
      },
      "conditionGroups",
    ],
    [
      "chainedPromptsPath",
      {
        "config/main.agents.js": agent(", chainedPromptsPath: ['prompts/more.md']"),
        "prompts/more.md": "more",
      },
      "chainedPromptsPath (step a)",
    ],
    ["a built-in placeholder", { "prompts/a.md": "Today is {date}." }, "the built-in placeholder {date}"],
    [
      "separator()",
      { "templates/workflows/w.workflow.js": flow("separator('x'), resolveStep('a')") },
      "separator()",
    ],
    [
      "interactive",
      { "templates/workflows/w.workflow.js": flow("resolveStep('a', { interactive: false })") },
      "interactive (step a)",
    ],
    [
      "a prompt file list",
      { "config/main.agents.js": agent().replace("'prompts/a.md'", "['prompts/a.md', 'prompts/a.md']") },
      "a list of prompt files (step a)",
    ],
  ])("%s", async (_what, files, feature) => {
    const { spec } = await imp(rootWith({ "config/main.agents.js": agent(), ...files }));
    expect(spec.metadata.codemachine).toMatchObject({
      dialect: "0.8",
      dialect_reason: `uses what only CodeMachine 0.8 has: ${feature}`,
    });
    expect(spec.steps[0]!.directive).toEqual(DIRECTIVE_08);
  });

  it("also with resolveUI dividers, which 0.8 then does not count", async () => {
    const dir = rootWith({
      "config/main.agents.js": `module.exports = [
  { id: 'a', name: 'A', promptPath: 'prompts/a.md', engine: 'codex' },
  { id: 'b', name: 'B', promptPath: 'prompts/a.md', engine: 'codex' },
];`,
      "config/modules.js": `module.exports = [{ id: 'gate', name: 'G', promptPath: 'prompts/a.md', engine: 'codex', behavior: { type: 'loop', action: 'stepBack', steps: 1, maxIterations: 2 } }];`,
      "templates/workflows/w.workflow.js": flow(
        "resolveStep('a', { tracks: ['one'] }), resolveStep('b'), resolveUI('gate'), resolveModule('gate')",
        ", tracks: { options: { one: {} } }",
      ),
    });
    const { spec } = await imp(dir);
    expect(spec.metadata.codemachine).toMatchObject({
      dialect: "0.8",
      dialect_reason:
        "uses what only CodeMachine 0.8 has: tracks, step tracks (step a); its resolveUI() dividers (0.7's name for separator) are not counted by loopSteps, as in 0.8",
    });
    // one step back from gate, the divider not counted, is b (0.7 would stop at the divider and run gate)
    expect(spec.steps[2]!.policies).toEqual([expect.objectContaining({ target_step: "b" })]);
  });

  it("but not a built-in name that placeholders.js defines as a file", async () => {
    const { spec } = await imp(
      rootWith({
        "config/main.agents.js": agent(),
        "config/placeholders.js": "module.exports = { userDir: { date: 'notes/date.md' } };",
        "prompts/a.md": "{date}",
      }),
    );
    expect(spec.metadata.codemachine).toMatchObject({
      dialect: "0.7",
      dialect_reason:
        "no codemachine.json manifest and nothing only CodeMachine 0.8 has (0.7 and 0.8 both use the config/ + templates/workflows/ layout)",
    });
    expect(spec.placeholders).toEqual({ date: { file: "notes/date.md", from: "workspace" } });
  });
});
