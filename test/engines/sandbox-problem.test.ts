/** A step may ask only for a sandbox mode its engine enforces itself. */
import { describe, expect, it } from "vitest";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import { sandboxProblem } from "../../src/engines/sandbox-problem.js";

const registry = createDefaultRegistry();

describe("sandboxProblem", () => {
  it("accepts every mode the agent CLIs enforce, and no mode asked for", () => {
    for (const id of ["codex", "claude-code", "gemini"])
      for (const mode of ["read-only", "workspace-write", "full-access"] as const)
        expect(sandboxProblem(registry.get(id), mode)).toBeNull();
    expect(sandboxProblem(registry.get("shell"), undefined)).toBeNull();
  });

  it("refuses workspace-write for opencode, which does not confine commands to the worktree", () => {
    expect(sandboxProblem(registry.get("opencode"), "read-only")).toBeNull();
    expect(sandboxProblem(registry.get("opencode"), "full-access")).toBeNull();
    expect(sandboxProblem(registry.get("opencode"), "workspace-write")).toBe(
      'engine "opencode" does not enforce sandbox "workspace-write" (it enforces "read-only", "full-access")',
    );
  });

  it("refuses any mode for an engine without a sandbox", () => {
    expect(sandboxProblem(registry.get("shell"), "read-only")).toBe(
      'engine "shell" has no sandbox: it cannot run with sandbox "read-only"; leave sandbox unset for it',
    );
    expect(sandboxProblem(registry.get("replay"), "workspace-write")).toMatch(/"replay" has no sandbox/);
  });
});
