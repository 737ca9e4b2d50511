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
    expect(() => loadConfig(repo(), { TASKSGODZILLA_IDLE_TIMEOUT_SECONDS: "-1" })).toThrow(
      /TASKSGODZILLA_IDLE_TIMEOUT_SECONDS=-1: expected a non-negative number/,
    );
    expect(() =>
      loadConfig(repo(["tasksgodzilla.config.json", '{"idle_timeout_seconds":"10m"}']), {}),
    ).toThrow(/\/idle_timeout_seconds/);
  });

  it("takes the idle limit from the file over the environment over 600 s, 0 meaning no limit", () => {
    expect(loadConfig(repo(), {}).idleTimeoutSeconds).toBe(600);
    expect(loadConfig(repo(), { TASKSGODZILLA_IDLE_TIMEOUT_SECONDS: "0" }).idleTimeoutSeconds).toBe(0);
    const c = loadConfig(repo(["tasksgodzilla.config.yaml", "idle_timeout_seconds: 90\n"]), {
      TASKSGODZILLA_IDLE_TIMEOUT_SECONDS: "30",
    });
    expect(c.idleTimeoutSeconds).toBe(90);
    expect(c.sources.idle_timeout_seconds).toBe("file");
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

describe("money budgets and prices", () => {
  it("reads money limits, the unknown-cost setting and the daily cap's time zone: file over env over defaults", () => {
    const defaults = loadConfig(repo(), {});
    expect(defaults.budgets).toMatchObject({ allowUnknownCost: false, timeZone: "UTC" });
    expect(defaults.budgets.maxUsdPerStep).toBeUndefined();
    expect(defaults.prices).toEqual({ files: [], models: {} });
    const env = {
      TASKSGODZILLA_MAX_USD_PER_STEP: "0.5",
      TASKSGODZILLA_MAX_USD_PER_PROJECT_PER_DAY: "20",
      TASKSGODZILLA_ALLOW_UNKNOWN_COST: "true",
      TASKSGODZILLA_BUDGET_TIME_ZONE: "Europe/Paris",
    };
    expect(loadConfig(repo(), env).budgets).toMatchObject({
      maxUsdPerStep: 0.5,
      maxUsdPerProjectPerDay: 20,
      allowUnknownCost: true,
      timeZone: "Europe/Paris",
    });
    const file = [
      "budgets:",
      "  mode: warn",
      "  max_usd_per_step: 1.25",
      "  max_usd_per_protocol: 10",
      "  max_usd_per_project: 500",
      "  max_usd_per_project_per_day: 40",
      "  allow_unknown_cost: false",
      "  time_zone: America/New_York",
    ].join("\n");
    const c = loadConfig(repo(["tasksgodzilla.config.yaml", file]), env);
    expect(c.budgets).toMatchObject({
      mode: "warn",
      maxUsdPerStep: 1.25,
      maxUsdPerProtocol: 10,
      maxUsdPerProject: 500,
      maxUsdPerProjectPerDay: 40,
      allowUnknownCost: false,
      timeZone: "America/New_York",
    });
    expect(c.sources).toMatchObject({
      "budgets.max_usd_per_step": "file",
      "budgets.allow_unknown_cost": "file",
    });
  });

  it("lays the user's price file, then the project's (relative to the repository), then inline prices", () => {
    const dir = repo([
      "tasksgodzilla.config.yaml",
      "prices:\n  file: prices/team.json\n  models:\n    local-coder: { input: 0, output: 0, aliases: [coder] }\n",
    ]);
    const c = loadConfig(dir, { TASKSGODZILLA_PRICES_FILE: "/etc/tgz/prices.json" });
    expect(c.prices).toEqual({
      files: ["/etc/tgz/prices.json", join(dir, "prices", "team.json")],
      models: { "local-coder": { input: 0, output: 0, aliases: ["coder"] } },
    });
  });

  it("rejects bad money and price settings with the field that is wrong", () => {
    const bad = (yaml: string) => () => loadConfig(repo(["tasksgodzilla.config.yaml", yaml]), {});
    expect(bad("budgets:\n  max_usd_per_step: -1\n")).toThrow(/\/budgets\/max_usd_per_step: .*>0/);
    expect(bad("budgets:\n  time_zone: Mars/Olympus\n")).toThrow(
      /\/budgets\/time_zone: not a time zone name \(e\.g\. UTC, Europe\/Paris\)/,
    );
    expect(bad("prices:\n  models:\n    x: { input: -2, output: 1 }\n")).toThrow(
      /\/prices\/models\/x\/input: .*>=0/,
    );
    expect(bad("prices:\n  models:\n    x: { input: 1 }\n")).toThrow(/\/prices\/models\/x\/output/);
    expect(bad("prices:\n  models:\n    x: { input: 1, output: 2, cached: 1 }\n")).toThrow(
      /\/prices\/models\/x: .*"cached"/,
    );
    expect(bad("prices:\n  table: x.json\n")).toThrow(/\/prices: .*"table"/);
    expect(() => loadConfig(repo(), { TASKSGODZILLA_MAX_USD_PER_PROTOCOL: "free" })).toThrow(
      /TASKSGODZILLA_MAX_USD_PER_PROTOCOL=free: expected a positive number/,
    );
    expect(() => loadConfig(repo(), { TASKSGODZILLA_BUDGET_TIME_ZONE: "Nowhere" })).toThrow(
      /TASKSGODZILLA_BUDGET_TIME_ZONE=Nowhere: not a time zone name/,
    );
    expect(() => loadConfig(repo(), { TASKSGODZILLA_ALLOW_UNKNOWN_COST: "sometimes" })).toThrow(
      /TASKSGODZILLA_ALLOW_UNKNOWN_COST=sometimes: expected true or false/,
    );
  });
});

describe("telemetry", () => {
  it("takes the file's telemetry section over the OTEL_* variables, and refuses an endpoint that is not http(s)", () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" };
    expect(loadConfig(repo(), env).telemetry).toEqual({
      tracesUrl: "http://127.0.0.1:4318/v1/traces",
      headers: {},
      serviceName: "tasksgodzilla",
    });
    const c = loadConfig(
      repo([
        "tasksgodzilla.config.yaml",
        "telemetry:\n  endpoint: https://otel.example.com\n  service_name: tgz-ci\n",
      ]),
      env,
    );
    expect(c.telemetry).toMatchObject({
      tracesUrl: "https://otel.example.com/v1/traces",
      serviceName: "tgz-ci",
    });
    expect(
      loadConfig(repo(["tasksgodzilla.config.yaml", "telemetry:\n  enabled: false\n"]), env).telemetry
        .tracesUrl,
    ).toBeUndefined();
    expect(() =>
      loadConfig(repo(["tasksgodzilla.config.yaml", "telemetry:\n  endpoint: grpc://c:4317\n"]), {}),
    ).toThrow(/\/telemetry\/endpoint/);
  });
});
