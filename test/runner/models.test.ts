import { describe, expect, it } from "vitest";
import { modelFor } from "../../src/runner/models.js";

const config = {
  engine: "codex",
  models: { exec: "gpt-5.1-codex", qa: "claude-sonnet-4-5" },
  qa: { policy: "full" as const, engine: "claude-code", checks: [], requireChanges: false },
};

describe("model choice", () => {
  it("takes the spec's model first", () => {
    expect(modelFor(config, "exec", "gemini", "gemini-2.5-pro")).toBe("gemini-2.5-pro");
  });

  it("gives the project's models only to the engines they are meant for", () => {
    expect(modelFor(config, "exec", "codex", null)).toBe("gpt-5.1-codex");
    expect(modelFor(config, "exec", "claude-code", null)).toBeNull();
    expect(modelFor(config, "qa", "claude-code", undefined)).toBe("claude-sonnet-4-5");
    expect(modelFor(config, "qa", "codex", undefined)).toBeNull();
    expect(modelFor({ ...config, qa: { ...config.qa, engine: undefined } }, "qa", "codex", null)).toBe(
      "claude-sonnet-4-5",
    );
  });
});
