/**
 * CodeMachine 0.8's onboarding choices at import: the track and conditions (chosen, saved by
 * CodeMachine, or preselected) decide which steps (and chained prompts) a run has, and loopSteps
 * counts only the visible steps; choices the onboarding would not allow are refused; fields the
 * runner cannot honour are reported, never dropped silently.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { exampleCopy, imp, importError, pkg, STOCK_08 } from "./packages.js";

const tracked = () =>
  pkg({
    "codemachine.json": JSON.stringify({ name: "tracked", version: "1.0.0" }),
    "config/main.agents.js": `module.exports = [
  { id: 'a', name: 'A', promptPath: 'prompts/a.md', chainedPromptsPath: [
    'prompts/always.md',
    { path: 'prompts/ui.md', conditions: ['has_ui'] },
    { path: 'prompts/either.md', conditionsAny: ['has_ui', 'has_api'] },
    { path: 'prompts/full.md', tracks: ['full'] },
  ] },
  { id: 'ui', name: 'UI', promptPath: 'prompts/a.md' },
  { id: 'deep', name: 'Deep', promptPath: 'prompts/a.md' },
  { id: 'b', name: 'B', promptPath: 'prompts/b.md' },
];`,
    "config/modules.js": `module.exports = [{ id: 'gate', name: 'Gate', promptPath: 'prompts/a.md', behavior: { type: 'loop', action: 'stepBack', steps: 2, maxIterations: 4 } }];`,
    "templates/workflows/w.workflow.js": `export default {
  name: 'Tracked',
  tracks: { question: 'How deep?', options: { quick: { label: 'Quick' }, full: { label: 'Full' } } },
  conditionGroups: [{ id: 'kind', question: 'What is it?', multiSelect: true,
    conditions: { has_ui: { label: 'UI' }, has_api: { label: 'API' } } }],
  steps: [
    resolveStep('a'),
    separator('Work'),
    resolveStep('ui', { conditions: ['has_ui'] }),
    resolveStep('deep', { tracks: ['full'] }),
    resolveStep('b'),
    resolveModule('gate'),
  ],
};`,
    "prompts/a.md": "a",
    "prompts/b.md": "track {selected_track}, conditions {selected_conditions}",
    "prompts/always.md": "always",
    "prompts/ui.md": "ui only",
    "prompts/either.md": "ui or api",
    "prompts/full.md": "full track only",
  });

describe("tracks and conditions", () => {
  it("takes the first track without --track, as CodeMachine's onboarding preselects it, and checks the choices", async () => {
    const dir = tracked();
    const flow = join(dir, "templates/workflows/w.workflow.js");
    const first = await imp(dir);
    expect(first.spec.metadata.codemachine.selected_track).toBe("quick");
    expect(first.spec.steps.map((s) => s.id)).toEqual(["a", "b", "gate"]);
    expect(first.warnings).toContain(
      'no track chosen: track quick, the first answer to "How deep?" (quick, full), which CodeMachine\'s onboarding preselects; choose another with --track',
    );
    expect(await importError(dir, { track: "slow" })).toBe(
      `${flow}: --track slow: not a track of the workflow (tracks: quick, full)`,
    );
    expect(await importError(dir, { track: "quick", conditions: ["has_db"] })).toBe(
      `${flow}: --condition has_db: not a condition of the workflow (conditions: has_ui, has_api)`,
    );
  });

  it("leaves out the steps the selection hides, with the reason, and counts loopSteps over visible steps", async () => {
    const { spec } = await imp(tracked(), { track: "quick" });
    expect(spec.steps.map((s) => s.id)).toEqual(["a", "b", "gate"]);
    expect(spec.metadata.codemachine.left_out).toEqual([
      { agent_id: "ui", entry: "steps[2] (resolveStep 'ui')", reason: "condition(s) not chosen: has_ui" },
      {
        agent_id: "deep",
        entry: "steps[3] (resolveStep 'deep')",
        reason: 'track "quick" is not among the step\'s tracks (full)',
      },
    ]);
    // gate is visible step 2; two back is a (counting all four steps it would be ui)
    expect(spec.steps[2]!.policies[0]).toMatchObject({ target_step: "a" });

    const full = await imp(tracked(), { track: "full", conditions: ["has_ui"] });
    expect(full.spec.steps.map((s) => s.id)).toEqual(["a", "ui", "deep", "b", "gate"]);
    expect(full.spec.steps[4]!.policies[0]).toMatchObject({ target_step: "deep" });
    expect(full.spec.metadata.codemachine).toMatchObject({
      selected_track: "full",
      selected_conditions: ["has_ui"],
    });
  });

  it("shows chained prompts as CodeMachine does: every condition, one of conditionsAny, the track", async () => {
    const text = async (track: string, conditions: string[]) =>
      (await imp(tracked(), { track, conditions })).files["prompts/a.md"]!;
    expect(await text("quick", [])).toMatch(/always/);
    expect(await text("quick", [])).not.toMatch(/ui only|ui or api|full track only/);
    expect(await text("quick", ["has_api"])).toMatch(/ui or api/);
    expect(await text("quick", ["has_api"])).not.toMatch(/ui only/);
    expect(await text("full", ["has_ui"])).toMatch(
      /always[\s\S]*ui only[\s\S]*ui or api[\s\S]*full track only/,
    );
  });

  it("provides {selected_track} and {selected_conditions} from the choices", async () => {
    const { spec, files } = await imp(tracked(), { track: "full", conditions: ["has_ui", "has_api"] });
    expect(files["prompts/b.md"]).toBe("track {{selected_track}}, conditions {{selected_conditions}}");
    expect(spec.placeholders).toEqual({ selected_track: "full", selected_conditions: "has_ui, has_api" });
  });

  it("refuses choices for a workflow that offers none", async () => {
    const dir = pkg({
      "codemachine.json": JSON.stringify({ name: "plain", version: "1" }),
      "config/main.agents.js": "module.exports = [{ id: 'a', name: 'A', promptPath: 'prompts/a.md' }];",
      "templates/workflows/w.workflow.js": "export default { name: 'w', steps: [resolveStep('a')] };",
      "prompts/a.md": "a",
    });
    expect(await importError(dir, { track: "quick" })).toMatch(
      /--track quick: the workflow offers no tracks/,
    );
    expect(await importError(dir, { conditions: ["x"] })).toMatch(
      /--condition x: the workflow offers no conditions/,
    );
  });
});

describe("the onboarding's rules and saved answers (the 0.8 stock-layout fixture)", () => {
  const flow = join(STOCK_08, "templates/workflows/ship-feature.workflow.js");
  const repo = () => pkg({});

  it("refuses conditions the onboarding would not offer together", async () => {
    expect(await importError(STOCK_08, { repoDir: repo(), track: "lean", conditions: ["prior_art"] })).toBe(
      `${flow}: --condition prior_art: the question "Look at prior art first?" (research) is asked only for track(s) thorough, not for track lean`,
    );
    expect(await importError(STOCK_08, { repoDir: repo(), track: "lean", conditions: ["rest"] })).toBe(
      `${flow}: --condition rest: the question "Which API style?" (surface.children.has_api) is asked only when condition has_api is chosen`,
    );
    expect(
      await importError(STOCK_08, {
        repoDir: repo(),
        track: "lean",
        conditions: ["has_api", "rest", "graphql"],
      }),
    ).toBe(
      `${flow}: --condition rest, graphql: the question "Which API style?" (surface.children.has_api) takes one answer (it has no multiSelect: true)`,
    );
    // a multiSelect question takes several answers, and a child question its parent's
    const ok = await imp(STOCK_08, {
      repoDir: repo(),
      track: "thorough",
      conditions: ["has_ui", "has_api", "rest"],
    });
    expect(ok.spec.metadata.codemachine.selected_conditions).toEqual(["has_ui", "has_api", "rest"]);
  });

  it("takes the track and conditions CodeMachine's onboarding saved for this workflow in the repository", async () => {
    const dir = repo();
    mkdirSync(join(dir, ".codemachine"));
    const state = join(dir, ".codemachine/template.json");
    const save = (value: unknown) => writeFileSync(state, JSON.stringify(value));
    save({
      activeTemplate: "ship-feature.workflow.js",
      selectedTrack: "thorough",
      selectedConditions: ["has_ui"],
    });
    const saved = await imp(STOCK_08, { repoDir: dir });
    expect(saved.spec.steps.map((s) => s.id)).toEqual([
      "planner",
      "ui-builder",
      "builder",
      "reviewer",
      "gate",
    ]);
    expect(saved.warnings).toContain(
      "track thorough and conditions has_ui, as chosen in CodeMachine's onboarding for this workflow (.codemachine/template.json); --track / --condition choose otherwise",
    );
    // flags win over the saved answers
    const flagged = await imp(STOCK_08, { repoDir: dir, track: "lean" });
    expect(flagged.spec.metadata.codemachine).toMatchObject({
      selected_track: "lean",
      selected_conditions: [],
    });
    // answers saved for another workflow are not this one's
    save({ activeTemplate: "other.workflow.js", selectedTrack: "thorough" });
    expect((await imp(STOCK_08, { repoDir: dir })).spec.metadata.codemachine.selected_track).toBe("lean");
    // saved answers the workflow does not offer, and a broken file, are refused with the file named
    save({ activeTemplate: "ship-feature.workflow.js", selectedTrack: "huge" });
    expect(await importError(STOCK_08, { repoDir: dir })).toBe(
      `${state}: selectedTrack huge: not a track of the workflow (tracks: lean, thorough)`,
    );
    writeFileSync(state, "{ not json");
    expect(await importError(STOCK_08, { repoDir: dir })).toMatch(
      new RegExp(
        `^${state}: is not valid JSON \\(.*\\); fix or remove it, or choose with --track / --condition$`,
      ),
    );
  });

  it("does not read saved answers for a workflow that asks nothing", async () => {
    const dir = exampleCopy();
    writeFileSync(join(dir, ".codemachine/template.json"), "{ not json");
    expect((await imp(dir)).spec.steps.map((s) => s.id)).toEqual(["plan", "build", "check"]);
  });
});

describe("step fields that cannot be decided at import", () => {
  const files = (steps: string, divider: string) => ({
    "config/main.agents.js":
      "module.exports = [{ id: 'a', name: 'A', promptPath: 'prompts/a.md' }, { id: 'a-fallback', name: 'F', promptPath: 'prompts/a.md' }];",
    "templates/workflows/w.workflow.js": `export default { name: 'w', steps: [${divider}, ${steps}] };`,
    "prompts/a.md": "a",
  });

  it("imports notCompletedFallback in a 0.7 workflow with a warning that it is not run, and reports it ignored in 0.8", async () => {
    const seven = await imp(
      pkg(files("resolveStep('a', { notCompletedFallback: 'a-fallback' })", "resolveUI('x')")),
    );
    expect(seven.spec.steps.map((s) => s.id)).toEqual(["a"]);
    expect(seven.warnings).toContain(
      "templates/workflows/w.workflow.js: steps[1] (resolveStep 'a'): notCompletedFallback 'a-fallback' is not run: after a crash the unfinished step simply runs again, with no fallback agent first",
    );
    const eight = await imp(
      pkg(files("resolveStep('a', { notCompletedFallback: 'a-fallback' })", "separator('x')")),
    );
    expect(eight.warnings).toContain(
      "templates/workflows/w.workflow.js: steps[1] (resolveStep 'a'): notCompletedFallback is ignored, as CodeMachine 0.8 ignores it",
    );
  });

  it("reports the fields that ask CodeMachine to wait for the user or a controller as having no effect", async () => {
    const dir = pkg({
      "codemachine.json": JSON.stringify({ name: "p", version: "1.0.0" }),
      "config/main.agents.js":
        "module.exports = [{ id: 'a', name: 'A', promptPath: 'prompts/a.md', engine: 'codex' }, { id: 'boss', name: 'Boss', role: 'controller', promptPath: 'prompts/a.md' }];",
      "templates/workflows/w.workflow.js": `export default { name: 'w', autonomousMode: 'never', specification: true,
  controller: controller('boss'), steps: [resolveStep('a', { interactive: true })] };`,
      "prompts/a.md": "a",
    });
    const r = await imp(dir);
    expect(r.spec.steps.map((s) => s.id)).toEqual(["a"]);
    expect(r.warnings).toEqual([
      "templates/workflows/w.workflow.js: steps[0] (resolveStep 'a'): interactive: true has no effect: the run does not wait for the user after the step",
      "templates/workflows/w.workflow.js: autonomousMode 'never' has no effect: the run does not wait for the user between steps",
      "templates/workflows/w.workflow.js: controller 'boss' is not run: no agent talks with the user before the run or drives its steps",
    ]);
  });

  it("imports the stock CodeMachine 0.7 workflow", async () => {
    const main = [
      "init",
      "principal-analyst",
      "blueprint-orchestrator",
      "plan-agent",
      "plan-fallback",
      "task-breakdown",
      "git-commit",
      "context-manager",
      "code-generation",
      "runtime-prep",
      "task-sanity-check",
    ];
    const subs = [
      "founder-architect",
      "structural-data-architect",
      "behavior-architect",
      "ui-ux-architect",
      "operational-architect",
      "file-assembler",
    ];
    const agent = (id: string) => `{ id: '${id}', name: '${id}', promptPath: 'prompts/${id}.md' }`;
    const dir = pkg({
      "config/main.agents.js": `module.exports = [${main.map(agent).join(", ")}];`,
      "config/sub.agents.js": `module.exports = [${subs.map(agent).join(", ")}];`,
      "config/modules.js": `module.exports = [{ id: 'check-task', name: 'Check', promptPath: 'prompts/check-task.md', behavior: { type: 'loop', action: 'stepBack' } }];`,
      "templates/workflows/codemachine.workflow.js": `export default {
  name: 'CodeMachine Workflow',
  steps: [
    resolveStep('init', { executeOnce: true, engine: 'codex', model: 'gpt-5', modelReasoningEffort: 'low' }),
    resolveStep('principal-analyst', { executeOnce: true, engine: 'claude' }),
    resolveUI("∴ Planning Phase ∴"),
    resolveStep('blueprint-orchestrator', { executeOnce: true }),
    resolveStep('plan-agent', { executeOnce: true, engine: 'codex', notCompletedFallback: 'plan-fallback' }),
    resolveStep('task-breakdown', { executeOnce: true, engine: 'codex' }),
    resolveStep('git-commit', { executeOnce: true, engine: 'cursor' }),
    resolveUI("⟲ Development Cycle ⟲"),
    resolveStep('context-manager', { engine: 'codex' }),
    resolveStep('code-generation', { engine: 'claude' }),
    resolveStep('runtime-prep', { executeOnce: true, engine: 'claude' }),
    resolveStep('task-sanity-check', { engine: 'codex' }),
    resolveStep('git-commit', { engine: 'cursor' }),
    resolveUI("◈◈ Iteration Gate ◈◈"),
    resolveModule('check-task', { engine: 'cursor', loopSteps: 6, loopMaxIterations: 20, loopSkip: ['runtime-prep'] }),
  ],
  subAgentIds: [${subs.map((id) => `'${id}'`).join(", ")}],
};`,
      ...Object.fromEntries([...main, ...subs, "check-task"].map((id) => [`prompts/${id}.md`, id])),
    });
    const r = await imp(dir);
    expect(r.spec.steps.map((s) => s.id)).toEqual([
      "init",
      "principal-analyst",
      "blueprint-orchestrator",
      "plan-agent",
      "task-breakdown",
      "git-commit",
      "context-manager",
      "code-generation",
      "runtime-prep",
      "task-sanity-check",
      "git-commit-2",
      "check-task",
    ]);
    // 0.7 counts the UI entries: six back from check-task is context-manager
    expect(r.spec.steps.at(-1)!.policies).toMatchObject([
      { target_step: "context-manager", max_iterations: 20, skip: ["runtime-prep"] },
    ]);
    expect(r.warnings.join("\n")).toMatch(
      /steps\[4\] \(resolveStep 'plan-agent'\): notCompletedFallback 'plan-fallback' is not run/,
    );
  });

  it("reports conditionsAny on a step: CodeMachine applies it to chained prompts only", async () => {
    const eight = await imp(pkg(files("resolveStep('a', { conditionsAny: ['x'] })", "separator('x')")));
    expect(eight.spec.steps.map((s) => s.id)).toEqual(["a"]);
    expect(eight.warnings.join("\n")).toMatch(
      /steps\[1\] \(resolveStep 'a'\): conditionsAny is ignored on steps/,
    );
  });
});
