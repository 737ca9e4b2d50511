/** `tgz plan` through the service layer with a replayed planner, on temp git repositories. */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import { BaseBranchMissingError, NotAGitRepositoryError } from "../../src/git/git-command.js";
import { planProtocol } from "../../src/planning/plan-protocol.js";
import { openStore } from "../../src/store/open-store.js";
import { gitRepo, inspect } from "../scenario/harness.js";

const PLAN = {
  title: "Greeter",
  summary: "Scan, then write the greeter.",
  context: "A scratch repository with a README.",
  steps: [
    { slug: "Repo Scan", title: "Scan the repository", kind: "setup", prompt: "List the files." },
    {
      slug: "write greeter",
      title: "Write the greeter",
      kind: "work",
      prompt: "Create greet.sh.",
      engine: "codex",
      model: "gpt-5.5",
    },
    { slug: "test it", title: "Test the greeter", kind: "work", prompt: "Run it.", qa: "full" },
  ],
};

async function setup() {
  const data = mkdtempSync(join(tmpdir(), "tgz-plan-data-"));
  const env = { TASKSGODZILLA_DATA_DIR: data };
  const store = await openStore({ sqlitePath: join(data, "db.sqlite") });
  const deps = { store, registry: createDefaultRegistry(), configFor: (dir: string) => loadConfig(dir, env) };
  const plan = (repoDir: string, final: string, extra: Record<string, unknown> = {}) =>
    planProtocol(deps, {
      task: "Add a greeter script that says hello",
      repoDir,
      engine: "replay",
      inputs: { final },
      env,
      ...extra,
    });
  return { store, plan, data };
}

describe("planning", () => {
  it("plans into branch and worktree NNNN-<name> with artifacts, a frozen spec and step rows", async () => {
    const { store, plan } = await setup();
    const repo = gitRepo();
    writeFileSync(join(repo, "README.md"), "dirty main checkout\n");
    const run = await plan(repo, `Here is the plan:\n\`\`\`json\n${JSON.stringify(PLAN)}\n\`\`\``);
    expect(run).toMatchObject({ status: "planned", protocolName: "0001-add-a-greeter-script-that" });
    const wt = run.worktreePath!;
    expect(execFileSync("git", ["branch", "--show-current"], { cwd: wt, encoding: "utf8" }).trim()).toBe(
      "0001-add-a-greeter-script-that",
    );
    const folder = join(wt, ".protocols", run.protocolName);
    for (const f of [
      "plan.md",
      "context.md",
      "log.md",
      "01-repo-scan.md",
      "02-write-greeter.md",
      "03-test-it.md",
      "protocol-spec.json",
    ]) {
      expect(existsSync(join(folder, f)), f).toBe(true);
    }
    expect(readFileSync(join(folder, "plan.md"), "utf8")).toContain("Add a greeter script that says hello");
    const spec = run.templateConfig.protocol_spec as { steps: Record<string, unknown>[] };
    expect(
      spec.steps.map((s) => [
        s.id,
        s.prompt_ref,
        (s.outputs as { protocol: string }).protocol,
        (s.qa as { policy: string }).policy,
      ]),
    ).toEqual([
      ["01-repo-scan", "01-repo-scan.md", "outputs/01-repo-scan.md", "skip"],
      ["02-write-greeter", "02-write-greeter.md", "outputs/02-write-greeter.md", "light"],
      ["03-test-it", "03-test-it.md", "outputs/03-test-it.md", "full"],
    ]);
    expect(spec.steps[1]).toMatchObject({
      engine_id: "codex",
      model: "gpt-5.5",
      timeout_seconds: 1200,
      policies: [{ behavior: "loop", step_back: 0 }],
    });
    expect((await store.listStepRuns(run.id)).map((s) => [s.stepName, s.stepType])).toEqual([
      ["01-repo-scan", "setup"],
      ["02-write-greeter", "work"],
      ["03-test-it", "work"],
    ]);
    const { of } = await inspect(store, run.id);
    expect(of("planning_completed")[0]!.metadata).toMatchObject({
      engine_id: "replay",
      prompt_versions: { plan: expect.stringMatching(/^protocol-new\.prompt\.md@[0-9a-f]{12}$/) },
      usage: { calls: 1 },
    });
    expect(execFileSync("git", ["log", "-1", "--format=%s"], { cwd: wt, encoding: "utf8" }).trim()).toBe(
      `${run.protocolName}: plan (3 steps)`,
    );
    expect(readFileSync(join(repo, "README.md"), "utf8")).toBe("dirty main checkout\n");
    expect(execFileSync("git", ["branch", "--show-current"], { cwd: repo, encoding: "utf8" }).trim()).toBe(
      "main",
    );

    const second = await plan(repo, JSON.stringify(PLAN), { name: "Second One!" });
    expect(second.protocolName).toBe("0002-second-one");
    await store.close();
  });

  it("blocks the run with the reason and writes no plan when the answer is not a valid plan", async () => {
    const { store, plan } = await setup();
    const run = await plan(gitRepo(), JSON.stringify({ title: "x", steps: [] }));
    expect(run.status).toBe("blocked");
    const { of } = await inspect(store, run.id);
    expect(of("planning_failed")[0]!.metadata).toMatchObject({ reason: "invalid_plan", usage: { calls: 2 } });
    expect(existsSync(join(run.protocolRoot!, "plan.md"))).toBe(false);
    expect(await store.listStepRuns(run.id)).toEqual([]);
    await store.close();
  });

  it("blocks on an unknown planning engine, and refuses a missing base branch or a folder outside git", async () => {
    const { store, plan } = await setup();
    const run = await plan(gitRepo(), "{}", { engine: "nope" });
    expect(run.status).toBe("blocked");
    expect((await inspect(store, run.id)).of("planning_failed")[0]!.message).toMatch(
      /unknown engine "nope" \(known: .*replay/,
    );
    await expect(plan(gitRepo(), "{}", { base: "develop" })).rejects.toThrow(BaseBranchMissingError);
    await expect(plan(mkdtempSync(join(tmpdir(), "plain-")), "{}")).rejects.toThrow(NotAGitRepositoryError);
    await store.close();
  });
});
