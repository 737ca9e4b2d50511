/**
 * Imported CodeMachine packages run end to end on the one runner: the project's fixtures and small
 * packages, imported as `tgz import codemachine` does, their agents played by `prompt-shell` (the
 * ```sh blocks of each rendered prompt, run in the worktree). Loops, limits, triggers, pauses,
 * execute-once, crash recovery and QA, with the decisions recorded as events.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ImportOptions, importCodemachine } from "../../src/codemachine/import-codemachine.js";
import { createRunFromSpec } from "../../src/services/create-run.js";
import { RunBusyError } from "../../src/store/store-errors.js";
import { LOCAL_PACKAGE, STOCK_07, STOCK_08 } from "../codemachine/packages.js";
import {
  inspect,
  registryWithPromptShell,
  runnerFor,
  type Scenario,
  scenario,
  writeFiles,
} from "./harness.js";

const registry = registryWithPromptShell();
const sh = (script: string) => `\n\n\`\`\`sh\n${script}\n\`\`\`\n`;
const DIRECTIVE = ".codemachine/memory/directive.json";
const say = (json: string) => `mkdir -p .codemachine/memory && echo '${json}' > ${DIRECTIVE}`;
/** A counter file per name: prints the visit number (1, 2, …). */
const visit = (name: string) =>
  `n=$(cat .visits-${name} 2>/dev/null || echo 0); n=$((n+1)); echo $n > .visits-${name}`;
const log = (line: string) => `echo ${line} >> log.txt`;

let s: Scenario;
beforeEach(async () => {
  s = await scenario();
});
afterEach(() => s.close());

const logLines = () => readFileSync(join(s.repo, "log.txt"), "utf8").trim().split("\n");

/** Imports `dir` for the scenario's repository (engines played by prompt-shell) and creates the run. */
async function importRun(dir: string, opts: Partial<ImportOptions> = {}) {
  const imported = await importCodemachine(dir, {
    repoDir: s.repo,
    env: s.env,
    engines: { claude: "prompt-shell", codex: "prompt-shell" },
    knownEngines: registry.ids(),
    ...opts,
  });
  const { run, errors } = await createRunFromSpec(s.store, {
    repoDir: s.repo,
    spec: imported.spec,
    files: imported.files,
    name: imported.name,
  });
  expect(errors).toEqual([]);
  return { run, imported };
}

/** Runs the run until it stops; `resume` as `tgz run RUN` asks for it (a paused or blocked run goes on). */
async function runToStop(runId: number, resume = false) {
  const run = await runnerFor(s, registry).run(runId, { resume });
  return { run, ...(await inspect(s.store, runId)) };
}

/** A 0.8 package of main agents and one looping module, each agent's prompt a script. */
function eightPackage(opts: {
  agents: Record<string, string>;
  modules?: Record<string, { script: string; behavior: Record<string, unknown> }>;
  steps: string;
  extra?: Record<string, string>;
}): string {
  const dir = join(dirname(s.specDir), `pkg-${Math.random().toString(36).slice(2)}`);
  const agent = (id: string) =>
    `{ id: '${id}', name: '${id}', promptPath: 'prompts/${id}.md', engine: 'claude' }`;
  const files: Record<string, string> = {
    "codemachine.json": JSON.stringify({ name: "scenario", version: "1.0.0" }),
    "config/main.agents.js": `module.exports = [${Object.keys(opts.agents).map(agent).join(", ")}];`,
    "config/modules.js": `module.exports = [${Object.entries(opts.modules ?? {})
      .map(
        ([id, m]) =>
          `{ id: '${id}', name: '${id}', promptPath: 'prompts/${id}.md', engine: 'codex', behavior: ${JSON.stringify(m.behavior)} }`,
      )
      .join(", ")}];`,
    "templates/workflows/w.workflow.js": `export default { name: 'scenario', steps: [${opts.steps}] };`,
    ...opts.extra,
  };
  for (const [id, script] of Object.entries(opts.agents))
    files[`prompts/${id}.md`] = `Agent ${id}.${sh(script)}`;
  for (const [id, m] of Object.entries(opts.modules ?? {}))
    files[`prompts/${id}.md`] = `Module ${id}.${sh(m.script)}`;
  writeFiles(dir, files);
  return dir;
}

const loopBehavior = (extra: Record<string, unknown> = {}) => ({
  type: "loop",
  action: "stepBack",
  ...extra,
});

/** The local-package fixture in the repository, its prompts given the scripts their prose describes. */
function localPackageInRepo(): string {
  cpSync(LOCAL_PACKAGE, s.repo, { recursive: true });
  const prompts = join(s.repo, ".codemachine/prompts");
  const append = (file: string, script: string) =>
    writeFileSync(join(prompts, file), readFileSync(join(prompts, file), "utf8") + sh(script));
  append(
    "plan.md",
    [
      "cat > spec-seen.md <<'SPEC'",
      "{specifications}",
      "SPEC",
      "mkdir -p .codemachine/artifacts",
      "printf -- '- [ ] one\\n- [ ] two\\n- [ ] three\\n' > .codemachine/artifacts/plan.md",
      log("plan"),
    ].join("\n"),
  );
  append(
    "build.md",
    [`sed -i '0,/- \\[ \\]/s//- [x]/' .codemachine/artifacts/plan.md`, log("build")].join("\n"),
  );
  append(
    "check.md",
    [
      log("check"),
      "if grep -q -- '- \\[ \\]' .codemachine/artifacts/plan.md",
      `then ${say('{"action":"loop","reason":"tasks left"}')}`,
      `else ${say('{"action":"stop","reason":"all tasks complete"}')}`,
      "fi",
    ].join("\n"),
  );
  return s.repo;
}

describe("imported CodeMachine workflows on the runner", () => {
  it("a 0.8 local package: plan → build → check loops twice, then stops; plan runs once", async () => {
    const { run } = await importRun(localPackageInRepo());
    const r = await runToStop(run.id);
    expect(r.run.status).toBe("completed");
    expect(logLines()).toEqual(["plan", "build", "check", "build", "check", "build", "check"]);
    // the specification arrived through {specifications}
    expect(readFileSync(join(s.repo, "spec-seen.md"), "utf8")).toBe(
      `${readFileSync(join(LOCAL_PACKAGE, ".codemachine/inputs/specifications.md"), "utf8")}\n`,
    );
    const loops = r.of("loop_decision");
    expect(
      loops.map((e) => [e.metadata.decision, (e.metadata.directive as { action: string }).action]),
    ).toEqual([
      ["loop", "loop"],
      ["loop", "loop"],
      ["stop", "stop"],
    ]);
    expect(loops.slice(0, 2).map((e) => [e.metadata.iterations, e.metadata.target_step])).toEqual([
      [1, "build"],
      [2, "build"],
    ]);
    // outputs where planned protocols put them, plus the CodeMachine copy per step
    expect(existsSync(join(run.protocolRoot!, "aux/codemachine/check.md"))).toBe(true);
    expect(existsSync(join(run.protocolRoot!, "codemachine/agents/tester.md"))).toBe(true);
  });

  it("the legacy layout of the local package loops through the module twin", async () => {
    localPackageInRepo();
    rmSync(join(s.repo, ".codemachine/.codemachine.json"));
    rmSync(join(s.repo, ".codemachine/templates"), { recursive: true });
    const { run } = await importRun(s.repo);
    const r = await runToStop(run.id);
    expect(r.run.status).toBe("completed");
    expect(logLines()).toEqual(["plan", "build", "check", "build", "check", "build", "check"]);
    expect(r.of("loop_decision").map((e) => e.metadata.decision)).toEqual(["loop", "loop", "stop"]);
  });

  it("a checker that always loops stops exactly at loopMaxIterations, and stays stopped when resumed", async () => {
    const dir = eightPackage({
      agents: { build: log("build") },
      modules: { check: { script: say('{"action":"loop"}'), behavior: loopBehavior({ steps: 1 }) } },
      steps: "resolveStep('build'), resolveModule('check', { loopMaxIterations: 2 })",
    });
    const { run } = await importRun(dir);
    const r = await runToStop(run.id);
    expect(r.run.status).toBe("blocked");
    expect(logLines()).toEqual(["build", "build", "build"]);
    expect(r.of("loop_decision")).toHaveLength(2);
    const limit = r.of("loop_limit_reached");
    expect(limit).toHaveLength(1);
    expect(limit[0]!.metadata).toMatchObject({
      iterations: 2,
      max_iterations: 2,
      directive: { action: "loop" },
    });

    const resumed = await runToStop(run.id, true);
    expect(logLines()).toEqual(["build", "build", "build"]);
    // the checker runs again and asks to loop again: the limit still holds
    expect(resumed.of("loop_decision")).toHaveLength(2);
    expect(resumed.of("loop_limit_reached")).toHaveLength(2);
    expect(resumed.run.status).toBe("blocked");
  });

  it("writes the package's missing loop limit on the spec, and the run stops there", async () => {
    const dir = eightPackage({
      agents: { build: log("build") },
      modules: { check: { script: say('{"action":"loop"}'), behavior: loopBehavior({ steps: 1 }) } },
      steps: "resolveStep('build'), resolveModule('check')",
    });
    const { run } = await importRun(dir);
    const r = await runToStop(run.id);
    expect(r.run.status).toBe("blocked");
    expect(logLines()).toEqual(["build", "build", "build", "build"]);
    expect(r.of("loop_limit_reached")[0]!.metadata).toMatchObject({ max_iterations: 3 });
  });

  it("uses behavior.steps when loopSteps is absent", async () => {
    const dir = eightPackage({
      agents: { a: log("a"), b: log("b") },
      modules: {
        gate: {
          script: `${visit("gate")}; ${log("gate")}; if [ $n -eq 1 ]; then ${say('{"action":"loop"}')}; fi`,
          behavior: loopBehavior({ steps: 2, maxIterations: 4 }),
        },
      },
      steps: "resolveStep('a'), separator('x'), resolveStep('b'), resolveModule('gate')",
    });
    const { run } = await importRun(dir);
    const r = await runToStop(run.id);
    expect(r.run.status).toBe("completed");
    expect(logLines()).toEqual(["a", "b", "gate", "a", "b", "gate"]);
  });

  it("skips every step of a repeated agent named in loopSkip while looping", async () => {
    const dir = eightPackage({
      agents: { build: log("build"), "git-commit": log("commit"), test: log("test") },
      modules: {
        check: {
          script: `${visit("check")}; ${log("check")}; if [ $n -eq 1 ]; then ${say('{"action":"loop"}')}; fi`,
          behavior: loopBehavior({ steps: 4, maxIterations: 3 }),
        },
      },
      steps:
        "resolveStep('build'), resolveStep('git-commit'), resolveStep('test'), resolveStep('git-commit'), resolveModule('check', { loopSkip: ['git-commit'] })",
    });
    const { run } = await importRun(dir);
    const r = await runToStop(run.id);
    expect(r.run.status).toBe("completed");
    expect(logLines()).toEqual(["build", "commit", "test", "commit", "check", "build", "test", "check"]);
    expect(r.of("loop_decision")[0]!.metadata.skipped_steps).toEqual(["git-commit", "git-commit-2"]);
  });

  it("runs the agent a trigger directive names inline, also one that is no workflow step", async () => {
    const dir = eightPackage({
      agents: {
        work: `${log("work")}; ${say('{"action":"trigger","triggerAgentId":"git-commit"}')}`,
        after: log("after"),
        "git-commit": log("commit"),
      },
      steps: "resolveStep('work'), resolveStep('after')",
    });
    const { run, imported } = await importRun(dir);
    expect(
      (imported.spec.steps as { id: string; trigger_only?: boolean }[]).map((x) => [
        x.id,
        x.trigger_only ?? false,
      ]),
    ).toEqual([
      ["work", false],
      ["after", false],
      ["git-commit", true],
    ]);
    const r = await runToStop(run.id);
    expect(r.run.status).toBe("completed");
    expect(logLines()).toEqual(["work", "commit", "after"]);
    expect(r.of("trigger_decision")[0]!.metadata).toMatchObject({
      reason: "directive:trigger",
      target_step_id: "git-commit",
      directive: { action: "trigger", triggerStep: "git-commit" },
    });
  });

  it("runs a later workflow step a trigger names inline, once: in sequence it is then done", async () => {
    const dir = eightPackage({
      agents: {
        work: `${log("work")}; ${say('{"action":"trigger","triggerAgentId":"commit"}')}`,
        middle: log("middle"),
        commit: log("commit"),
      },
      steps: "resolveStep('work'), resolveStep('middle'), resolveStep('commit')",
    });
    const { run, imported } = await importRun(dir);
    expect((imported.spec.steps as { id: string }[]).map((x) => x.id)).toEqual(["work", "middle", "commit"]);
    const r = await runToStop(run.id);
    expect(r.run.status).toBe("completed");
    expect(logLines()).toEqual(["work", "commit", "middle"]);
  });

  it("completes without a trigger-only step that nothing triggers", async () => {
    const dir = eightPackage({
      agents: { work: log("work"), "git-commit": log("commit") },
      steps: "resolveStep('work')",
    });
    writeFileSync(
      join(dir, "prompts/work.md"),
      `Trigger {"triggerAgentId": "git-commit"} only when asked.${sh(log("work"))}`,
    );
    const { run } = await importRun(dir);
    const r = await runToStop(run.id);
    expect(r.run.status).toBe("completed");
    expect(logLines()).toEqual(["work"]);
  });

  it("pauses on checkpoint and on pause, and resumes at the next step", async () => {
    const dir = eightPackage({
      agents: {
        review: `${log("review")}; ${say('{"action":"checkpoint","reason":"look at it"}')}`,
        hold: `${log("hold")}; ${say('{"action":"pause","reason":"wait"}')}`,
        next: log("next"),
      },
      steps: "resolveStep('review'), resolveStep('hold'), resolveStep('next')",
    });
    const { run } = await importRun(dir);
    const first = await runToStop(run.id);
    expect(first.run.status).toBe("paused");
    expect(first.of("paused")[0]!.message).toMatch(/checkpoint: look at it/);
    const second = await runToStop(run.id, true);
    expect(second.run.status).toBe("paused");
    expect(second.of("paused")[1]!.message).toMatch(/pause: wait/);
    const third = await runToStop(run.id, true);
    expect(third.run.status).toBe("completed");
    expect(logLines()).toEqual(["review", "hold", "next"]);
  });

  it("does not run an executeOnce step again on a loop or a resume", async () => {
    const dir = eightPackage({
      agents: { plan: log("plan"), build: log("build"), after: log("after") },
      modules: {
        check: {
          script: `${visit("check")}; ${log("check")}; if [ $n -eq 1 ]; then ${say('{"action":"loop"}')}; else ${say('{"action":"checkpoint"}')}; fi`,
          behavior: loopBehavior({ steps: 2, maxIterations: 3 }),
        },
      },
      steps:
        "resolveStep('plan', { executeOnce: true }), resolveStep('build'), resolveModule('check'), resolveStep('after')",
    });
    const { run } = await importRun(dir);
    const first = await runToStop(run.id);
    expect(first.run.status).toBe("paused");
    expect(first.of("loop_decision")[0]!.metadata).toMatchObject({
      target_step: "plan",
      execute_once_kept: ["plan"],
    });
    const resumed = await runToStop(run.id, true);
    expect(resumed.run.status).toBe("completed");
    expect(logLines()).toEqual(["plan", "build", "check", "build", "check", "after"]);
  });

  it("resets a loop's count once the step lets the run go on", async () => {
    const dir = eightPackage({
      agents: { build: log("build") },
      modules: {
        check: {
          // loops on odd visits, lets the run go on on even ones
          script: `${visit("check")}; ${log("check")}; if [ $((n % 2)) -eq 1 ]; then ${say('{"action":"loop"}')}; fi`,
          behavior: loopBehavior({ steps: 1, maxIterations: 1 }),
        },
        gate: {
          script: `${visit("gate")}; ${log("gate")}; if [ $n -eq 1 ]; then ${say('{"action":"loop"}')}; fi`,
          behavior: loopBehavior({ steps: 2, maxIterations: 2 }),
        },
      },
      steps: "resolveStep('build'), resolveModule('check'), resolveModule('gate')",
    });
    const { run } = await importRun(dir);
    const r = await runToStop(run.id);
    expect(r.run.status).toBe("completed");
    expect(logLines()).toEqual([
      "build",
      "check",
      "build",
      "check",
      "gate",
      "build",
      "check",
      "build",
      "check",
      "gate",
    ]);
    const checkLoops = r
      .of("loop_decision")
      .filter((e) => (e.metadata.policy as { id: string }).id === "check");
    expect(
      checkLoops.filter((e) => e.metadata.decision === "loop").map((e) => e.metadata.iterations),
    ).toEqual([1, 1]);
  });
});

/**
 * A fixture package copied next to the scenario, the ```sh script of each named prompt file appended
 * to it; the repository gets `repoFiles`.
 */
function fixtureWithScripts(
  fixture: string,
  scripts: Record<string, string>,
  repoFiles: Record<string, string>,
) {
  const dir = join(dirname(s.specDir), `pkg-${Math.random().toString(36).slice(2)}`);
  cpSync(fixture, dir, { recursive: true });
  for (const [file, script] of Object.entries(scripts))
    writeFileSync(join(dir, file), readFileSync(join(dir, file), "utf8") + sh(script));
  writeFiles(s.repo, repoFiles);
  return dir;
}

/** Every file the run's directive events were read from. */
const directiveFiles = (r: Awaited<ReturnType<typeof runToStop>>) => [
  ...new Set(
    r.of("directive").map((e) => (e.metadata.directive as { file: string }).file.slice(s.repo.length + 1)),
  ),
];

describe("CodeMachine's own kinds of workflow on the runner", () => {
  const markDone = `sed -i '0,/- \\[ \\]/s//- [x]/' .codemachine/artifacts/plan.md`;
  /** The 0.8 stock-layout fixture, its agents given scripts; the reviewer names no engine. */
  const stock08 = () =>
    fixtureWithScripts(
      STOCK_08,
      {
        "prompts/scout.md": log("scout"),
        "prompts/planner/task.md": [
          "cat > planner-saw.txt <<'X'",
          "{project_name}|{selected_track}|{selected_conditions}|{date}|{workflow_name}",
          "X",
          "mkdir -p .codemachine/artifacts",
          "printf -- '- [ ] one\\n- [ ] two\\n' > .codemachine/artifacts/plan.md",
          log("planner"),
        ].join("\n"),
        "prompts/ui-builder.md": log("ui-builder"),
        "prompts/builder.md": [markDone, log("builder")].join("\n"),
        "prompts/reviewer.md": log("reviewer"),
        "prompts/gate.md": [
          log("gate"),
          "if grep -q -- '- \\[ \\]' .codemachine/artifacts/plan.md",
          `then ${say('{"action":"loop","reason":"items open"}')}`,
          `else ${say('{"action":"stop","reason":"plan done"}')}`,
          "fi",
        ].join("\n"),
      },
      { ".codemachine/inputs/brief.md": "Add dark mode." },
    );
  const defaultEngine = () => ({ env: { ...s.env, TASKSGODZILLA_DEFAULT_ENGINE: "prompt-shell" } });

  it("a 0.8 stock-layout workflow without --track runs the first track's steps, fills built-ins, keeps an undefined placeholder, loops on directive.json", async () => {
    const { run, imported } = await importRun(stock08(), defaultEngine());
    expect(imported.spec.metadata).toMatchObject({ codemachine: { dialect: "0.8", selected_track: "lean" } });
    const r = await runToStop(run.id);
    expect(r.run.status).toBe("completed");
    // the loop goes two visible steps back, to the planner, which ran once (executeOnce)
    expect(logLines()).toEqual(["planner", "builder", "gate", "builder", "gate"]);
    expect(readFileSync(join(s.repo, "planner-saw.txt"), "utf8")).toMatch(
      /^[^{|]+\|lean\|\{selected_conditions\}\|\d{4}-\d\d-\d\d\|\{workflow_name\}\n$/,
    );
    expect(r.of("loop_decision").map((e) => [e.metadata.decision, e.metadata.target_step])).toEqual([
      ["loop", "planner"],
      ["stop", undefined],
    ]);
    expect(directiveFiles(r)).toEqual([".codemachine/memory/directive.json"]);
  });

  it("a 0.8 stock-layout workflow on the track and conditions chosen runs their steps, the reviewer on the default engine", async () => {
    const { run, imported } = await importRun(stock08(), {
      ...defaultEngine(),
      track: "thorough",
      conditions: ["has_ui", "prior_art"],
    });
    expect(imported.warnings).toContain(
      'step reviewer: agent "reviewer" names no engine (nor does the step); it runs on prompt-shell, the project\'s default engine (CodeMachine would take its first authenticated engine)',
    );
    const r = await runToStop(run.id);
    expect(r.run.status).toBe("completed");
    expect(logLines()).toEqual([
      "scout",
      "planner",
      "ui-builder",
      "builder",
      "reviewer",
      "gate",
      "builder",
      "reviewer",
      "gate",
    ]);
    expect(readFileSync(join(s.repo, "planner-saw.txt"), "utf8")).toMatch(/\|thorough\|has_ui, prior_art\|/);
  });

  it("a 0.7 root empties an undefined placeholder, counts dividers for loopSteps, and loops on behavior.json", async () => {
    const dir = fixtureWithScripts(
      STOCK_07,
      {
        "prompts/init.md": log("init"),
        "prompts/architect.md": [
          "cat > architect-saw.txt <<'X'",
          "[{release_codename}]",
          "X",
          "mkdir -p .codemachine/artifacts",
          "echo 'one module' > .codemachine/artifacts/architecture.md",
          "printf -- '- [ ] one\\n- [ ] two\\n' > .codemachine/artifacts/plan.md",
          log("architect"),
        ].join("\n"),
        "prompts/coder.md": [markDone, log("coder")].join("\n"),
        "prompts/runtime-prep.md": log("runtime-prep"),
        "prompts/templates/docs/1-readme.md": log("readme"),
        "prompts/templates/docs/2-changelog.md": log("changelog"),
        "prompts/git-commit.md": log("git-commit"),
        "prompts/task-check.md": [
          log("task-check"),
          "mkdir -p .codemachine/memory",
          "if grep -q -- '- \\[ \\]' .codemachine/artifacts/plan.md",
          `then echo '{"action":"loop"}' > .codemachine/memory/behavior.json`,
          `else echo '{"action":"stop"}' > .codemachine/memory/behavior.json`,
          "fi",
        ].join("\n"),
      },
      { ".codemachine/inputs/specifications.md": "A to-do app." },
    );
    const { run, imported } = await importRun(dir);
    expect(imported.spec.metadata).toMatchObject({ codemachine: { dialect: "0.7" } });
    const r = await runToStop(run.id);
    expect(r.run.status).toBe("completed");
    expect(readFileSync(join(s.repo, "architect-saw.txt"), "utf8")).toBe("[]\n");
    // six entries back from task-check, dividers counted, is coder; runtime-prep is skipped while looping
    expect(logLines()).toEqual([
      "init",
      "architect",
      "coder",
      "runtime-prep",
      "readme",
      "changelog",
      "git-commit",
      "task-check",
      "coder",
      "readme",
      "changelog",
      "git-commit",
      "task-check",
    ]);
    expect(directiveFiles(r)).toEqual([".codemachine/memory/behavior.json"]);
  });
});

describe("placeholders of imported prompts", () => {
  it("renders userDir placeholders named like runner values (workspace, project_name) as the files' contents", async () => {
    writeFiles(s.repo, { "notes/ws.md": "WS", "notes/name.md": "NAME" });
    const dir = eightPackage({
      agents: { a: "cat > seen.txt <<'X'\n{workspace}|{project_name}|{date}\nX" },
      steps: "resolveStep('a')",
      extra: {
        "config/placeholders.js":
          "module.exports = { userDir: { workspace: 'notes/ws.md', project_name: 'notes/name.md' } };",
      },
    });
    const { run } = await importRun(dir);
    const r = await runToStop(run.id);
    expect(r.run.status).toBe("completed");
    expect(readFileSync(join(s.repo, "seen.txt"), "utf8")).toMatch(/^WS\|NAME\|\d{4}-\d\d-\d\d\n$/);
  });
});

describe("QA on imported steps", () => {
  const verdict = (v: "pass" | "fail") => `'{"verdict":"${v}","summary":"checked","findings":[]}'`;
  /** The project's QA: full, played by prompt-shell with `script` as the QA prompt. */
  const projectQa = (script: string) => {
    writeFiles(s.repo, {
      "qa/verdict.md": `You are the quality gate for {{step_id}}.${sh(script)}`,
      "tasksgodzilla.config.json": JSON.stringify({
        qa: { policy: "full", engine: "prompt-shell", prompt: "qa/verdict.md" },
      }),
    });
  };

  it("runs full QA on every imported step when the project's default is full", async () => {
    projectQa(`echo {{step_id}} >> qa.log; echo ${verdict("pass")}`);
    const dir = eightPackage({
      agents: { a: log("a"), b: log("b") },
      steps: "resolveStep('a'), resolveStep('b')",
    });
    const { run, imported } = await importRun(dir);
    expect((imported.spec.steps as { qa: { policy: string } }[]).map((x) => x.qa.policy)).toEqual([
      "full",
      "full",
    ]);
    const r = await runToStop(run.id);
    expect(r.run.status).toBe("completed");
    expect(readFileSync(join(s.repo, "qa.log"), "utf8")).toBe("a\nb\n");
    expect(r.of("qa_verdict").map((e) => e.metadata.verdict)).toEqual(["pass", "pass"]);
  });

  it("still loops when the checker asks to although its QA failed", async () => {
    projectQa(
      `if [ "{{step_id}}" = check ] && [ ! -f .qa-failed ]; then touch .qa-failed; echo ${verdict("fail")}; else echo ${verdict("pass")}; fi`,
    );
    const dir = eightPackage({
      agents: { build: log("build") },
      modules: {
        check: {
          script: `${visit("check")}; ${log("check")}; if [ $n -eq 1 ]; then ${say('{"action":"loop"}')}; else ${say('{"action":"stop"}')}; fi`,
          behavior: loopBehavior({ steps: 1, maxIterations: 3 }),
        },
      },
      steps: "resolveStep('build'), resolveModule('check')",
    });
    const { run } = await importRun(dir);
    const r = await runToStop(run.id);
    expect(r.run.status).toBe("completed");
    expect(logLines()).toEqual(["build", "check", "build", "check"]);
    expect(r.of("loop_decision")[0]!.metadata).toMatchObject({
      decision: "loop",
      directive: { action: "loop" },
    });
  });
});

describe("a runner process killed mid-step", () => {
  let child: ChildProcess | undefined;
  afterEach(() => {
    if (child?.pid && child.exitCode === null && child.signalCode === null)
      process.kill(-child.pid, "SIGKILL");
  });

  it("resumes at the first unfinished step and keeps the loop count", async () => {
    const dir = eightPackage({
      agents: {
        // the second build sleeps the first time, long enough to be killed in
        build: `${visit("build")}; ${log("build")}; if [ $n -eq 2 ] && [ ! -f .crashed ]; then touch .crashed; sleep 60; fi`,
      },
      modules: {
        check: {
          script: `${visit("check")}; ${log("check")}; if [ $n -le 2 ]; then ${say('{"action":"loop"}')}; else ${say('{"action":"stop"}')}; fi`,
          behavior: loopBehavior({ steps: 1, maxIterations: 3 }),
        },
      },
      steps: "resolveStep('build'), resolveModule('check')",
    });
    const { run } = await importRun(dir);
    const program = join(dirname(s.specDir), "run-child.mts");
    const src = (p: string) => JSON.stringify(join(import.meta.dirname, p));
    writeFileSync(
      program,
      `import { openStore } from ${src("../../src/store/open-store.js")};
import { ProtocolRunner } from ${src("../../src/runner/protocol-runner.js")};
import { loadConfig } from ${src("../../src/config/load-config.js")};
import { registryWithPromptShell } from ${src("./harness.js")};
const store = await openStore({ sqlitePath: process.argv[2] });
await new ProtocolRunner({ store, registry: registryWithPromptShell(), configFor: (d) => loadConfig(d, {}) }).run(Number(process.argv[3]));
await store.close();
`,
    );
    const dbPath = join(dirname(s.specDir), "tgz.db");
    child = spawn(process.execPath, ["--import", "tsx", program, dbPath, String(run.id)], {
      cwd: join(import.meta.dirname, "../.."),
      detached: true,
      stdio: "ignore",
    });
    const deadline = Date.now() + 45_000;
    while (!existsSync(join(s.repo, ".crashed"))) {
      if (Date.now() > deadline) throw new Error("the runner process never reached the second build");
      await sleep(100);
    }
    process.kill(-child.pid!, "SIGKILL");
    await new Promise((r) => child!.once("exit", r));
    expect(logLines()).toEqual(["build", "check", "build"]);

    // once the dead runner's lease lapses, a new one takes the run over
    let r: Awaited<ReturnType<typeof runToStop>> | undefined;
    while (!r) {
      try {
        r = await runToStop(run.id, true);
      } catch (err) {
        if (!(err instanceof RunBusyError)) throw err;
        await sleep(err.retryAfterMs);
      }
    }
    expect(r.run.status).toBe("completed");
    expect(logLines()).toEqual(["build", "check", "build", "build", "check", "build", "check"]);
    const loops = r.of("loop_decision").filter((e) => e.metadata.decision === "loop");
    expect(loops.map((e) => e.metadata.iterations)).toEqual([1, 2]);
  }, 90_000);
});
