import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  BUILT_IN_DEFAULTS,
  ConfigError,
  loadConfig,
  withProjectDefaults,
} from "../../src/config/load-config.js";

const repo = (file?: [string, string]) => {
  const dir = mkdtempSync(join(tmpdir(), "tgz-config-"));
  if (file) writeFileSync(join(dir, file[0]), file[1]);
  return dir;
};

describe("config precedence: project file > env > built-in", () => {
  it("uses built-in defaults with nothing set", () => {
    const c = loadConfig(repo(), {});
    expect(c.engine).toBe(BUILT_IN_DEFAULTS.engine);
    expect(c.qa.policy).toBe("light");
    expect(c.budgets.mode).toBe("strict");
    expect(c.timeoutSeconds).toBe(1200);
    expect(c.maxInlineTriggerDepth).toBe(3);
    expect(c.sources.engine).toBe("default");
  });

  it("env overrides built-ins", () => {
    const c = loadConfig(repo(), {
      TASKSGODZILLA_DEFAULT_ENGINE: "shell",
      TASKSGODZILLA_MAX_TOKENS_PER_STEP: "100",
      TASKSGODZILLA_QA_POLICY: "skip",
      TASKSGODZILLA_EXEC_MODEL: "m-env",
    });
    expect(c.engine).toBe("shell");
    expect(c.budgets.maxTokensPerStep).toBe(100);
    expect(c.qa.policy).toBe("skip");
    expect(c.models.exec).toBe("m-env");
    expect(c.sources.engine).toBe("env");
  });

  it("the project file overrides env (YAML and JSON)", () => {
    const env = {
      TASKSGODZILLA_DEFAULT_ENGINE: "shell",
      TASKSGODZILLA_EXEC_MODEL: "m-env",
      TASKSGODZILLA_QA_MODEL: "qa-env",
    };
    const y = loadConfig(
      repo([
        "tasksgodzilla.config.yaml",
        "engine: replay\nmodels:\n  exec: m-file\nbudgets:\n  mode: warn\n  max_tokens_per_protocol: 999\n",
      ]),
      env,
    );
    expect(y.engine).toBe("replay");
    expect(y.models.exec).toBe("m-file");
    expect(y.models.qa).toBe("qa-env");
    expect(y.budgets).toMatchObject({ mode: "warn", maxTokensPerProtocol: 999 });
    expect(y.sources).toMatchObject({ engine: "file", "models.qa": "env" });
    const j = loadConfig(
      repo(["tasksgodzilla.config.json", JSON.stringify({ qa: { policy: "full", checks: ["true"] } })]),
      {},
    );
    expect(j.qa).toMatchObject({ policy: "full", checks: ["true"] });
  });

  it("lets a project's stored models fill what its config file leaves open, over the environment", () => {
    const env = { TASKSGODZILLA_EXEC_MODEL: "m-env", TASKSGODZILLA_QA_MODEL: "qa-env" };
    const c = loadConfig(repo(["tasksgodzilla.config.yaml", "models:\n  exec: m-file\n"]), env);
    const merged = withProjectDefaults(c, { exec: "m-stored", qa: "qa-stored", plan: 5 });
    expect(merged.models).toEqual({ plan: undefined, exec: "m-file", qa: "qa-stored" });
    expect(merged.sources).toMatchObject({ "models.exec": "file", "models.qa": "project" });
  });

  it("rejects a bad file or env value with a specific message", () => {
    expect(() => loadConfig(repo(["tasksgodzilla.config.json", '{"qa":{"policy":"always"}}']), {})).toThrow(
      /\/qa\/policy/,
    );
    expect(() => loadConfig(repo(["tasksgodzilla.config.yaml", "engine: [unclosed"]), {})).toThrow(
      ConfigError,
    );
    expect(() => loadConfig(repo(), { TASKSGODZILLA_TOKEN_BUDGET_MODE: "loose" })).toThrow(
      /TASKSGODZILLA_TOKEN_BUDGET_MODE=loose: expected one of strict, warn, off/,
    );
    expect(() => loadConfig(repo(), { TASKSGODZILLA_MAX_TOKENS_PER_STEP: "lots" })).toThrow(
      /TASKSGODZILLA_MAX_TOKENS_PER_STEP=lots: expected a positive whole number/,
    );
    // the environment is held to the config file's rules
    expect(() => loadConfig(repo(), { TASKSGODZILLA_TIMEOUT_SECONDS: "0" })).toThrow(
      /expected a positive number/,
    );
    expect(() => loadConfig(repo(), { TASKSGODZILLA_MAX_OUTPUT_BYTES: "0" })).toThrow(
      /positive whole number/,
    );
    expect(() => loadConfig(repo(), { TASKSGODZILLA_MAX_INLINE_TRIGGER_DEPTH: "1.5" })).toThrow(
      /non-negative whole number/,
    );
    expect(() => loadConfig(repo(), { TASKSGODZILLA_LOOP_RESTORE: "rewind" })).toThrow(
      /expected one of restore, keep/,
    );
  });
});

describe("engine settings", () => {
  it("takes the project file over TASKSGODZILLA_ENGINE_* variables, with a per-project isolated home", () => {
    const repo = mkdtempSync(join(tmpdir(), "tgz-cfg-"));
    writeFileSync(
      join(repo, "tasksgodzilla.config.json"),
      JSON.stringify({ engines: { codex: { binary: "/opt/codex", config_overrides: ["a=1"] } } }),
    );
    const env = {
      TASKSGODZILLA_DATA_DIR: "/data",
      TASKSGODZILLA_ENGINE_CODEX_BINARY: "/env/codex",
      TASKSGODZILLA_ENGINE_CLAUDE_CODE_BASE_URL: "http://127.0.0.1:9",
    };
    const config = loadConfig(repo, env);
    expect(config.engines.codex).toMatchObject({
      binary: "/opt/codex",
      configOverrides: ["a=1"],
      homeDir: expect.stringMatching(/^\/data\/engine-homes\/tgz-cfg-.*-[0-9a-f]{8}\/codex$/),
    });
    expect(config.engines["claude-code"]).toMatchObject({ baseUrl: "http://127.0.0.1:9" });
    expect(loadConfig(mkdtempSync(join(tmpdir(), "tgz-other-")), env).engineHomeRoot).not.toBe(
      config.engineHomeRoot,
    );
  });
});
