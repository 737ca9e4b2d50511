/** Per-engine settings from `TASKSGODZILLA_ENGINE_<ID>_<KEY>` variables. */
import { describe, expect, it } from "vitest";
import {
  assertKnownEngineSettings,
  EngineSettingsError,
  engineSettings,
  UnknownEngineSettingsError,
  unknownEngineSettings,
} from "../../src/config/engine-settings.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";

const fromEnv = (env: NodeJS.ProcessEnv) =>
  engineSettings({}, "/repo", { TASKSGODZILLA_DATA_DIR: "/data", ...env });

describe("engine settings from the environment", () => {
  it("reads every setting, for ids with dashes too", () => {
    const s = fromEnv({
      TASKSGODZILLA_ENGINE_CODEX_BINARY: "/opt/codex",
      TASKSGODZILLA_ENGINE_CODEX_ARGS: "--foo  bar",
      TASKSGODZILLA_ENGINE_CODEX_ENV: "LOCAL_KEY=k1 RUST_LOG=warn",
      TASKSGODZILLA_ENGINE_CODEX_CONFIG_OVERRIDES:
        'model_provider=local\nmodel_providers.local={name="local", base_url="http://127.0.0.1:8000/v1", env_key="LOCAL_KEY"}\n',
      TASKSGODZILLA_ENGINE_CODEX_PROVIDER: "local",
      TASKSGODZILLA_ENGINE_CLAUDE_CODE_SEED_FROM_USER: "true",
      TASKSGODZILLA_ENGINE_CLAUDE_CODE_HOME: "user",
      TASKSGODZILLA_ENGINE_GEMINI_BASE_URL: "http://127.0.0.1:8002",
    });
    expect(s.codex).toMatchObject({
      binary: "/opt/codex",
      args: ["--foo", "bar"],
      env: { LOCAL_KEY: "k1", RUST_LOG: "warn" },
      configOverrides: [
        "model_provider=local",
        'model_providers.local={name="local", base_url="http://127.0.0.1:8000/v1", env_key="LOCAL_KEY"}',
      ],
      provider: "local",
    });
    expect(s["claude-code"]).toMatchObject({ seedFromUser: true, home: "user" });
    expect(s.gemini).toMatchObject({ baseUrl: "http://127.0.0.1:8002" });
    expect(fromEnv({ TASKSGODZILLA_ENGINE_CODEX_SEED_FROM_USER: "false" }).codex?.seedFromUser).toBe(false);
  });

  it("lets the project file win over a variable", () => {
    const s = engineSettings({ codex: { env: { A: "file" }, seed_from_user: false } }, "/repo", {
      TASKSGODZILLA_ENGINE_CODEX_ENV: "A=env B=env",
      TASKSGODZILLA_ENGINE_CODEX_SEED_FROM_USER: "true",
    });
    expect(s.codex).toMatchObject({ env: { A: "file" }, seedFromUser: false });
  });

  it.each([
    ["TASKSGODZILLA_ENGINE_CODEX_SEED_FROM_USER", "yes please", /expected one of true, false/],
    ["TASKSGODZILLA_ENGINE_CODEX_HOME", "mine", /expected one of isolated, user/],
    ["TASKSGODZILLA_ENGINE_CODEX_ENV", "A=1 oops", /"oops" is not KEY=value/],
  ])("refuses %s=%s", (key, value, message) => {
    expect(() => fromEnv({ [key]: value })).toThrow(EngineSettingsError);
    expect(() => fromEnv({ [key]: value })).toThrow(message);
  });
});

describe("settings for an engine that does not exist", () => {
  const registry = createDefaultRegistry();

  it("are found with where they were given: the config file and the environment", () => {
    const engines = engineSettings({ codx: { binary: "/opt/codex" }, codex: {} }, "/repo", {
      TASKSGODZILLA_DATA_DIR: "/data",
      // the real id is claude-code
      TASKSGODZILLA_ENGINE_CLAUDE_BINARY: "/opt/claude",
      TASKSGODZILLA_ENGINE_CLAUDE_ARGS: "--verbose",
      TASKSGODZILLA_ENGINE_GEMINI_BASE_URL: "http://127.0.0.1:8002",
    });
    expect(unknownEngineSettings({ engines }, registry)).toEqual([
      { id: "codx", sources: ["engines.codx"] },
      {
        id: "claude",
        sources: expect.arrayContaining([
          "TASKSGODZILLA_ENGINE_CLAUDE_BINARY",
          "TASKSGODZILLA_ENGINE_CLAUDE_ARGS",
        ]),
      },
    ]);
  });

  it("are refused naming them, where they were given and the known ids", () => {
    const engines = engineSettings({ codx: {} }, "/repo", {
      TASKSGODZILLA_ENGINE_CLAUDE_BINARY: "/opt/claude",
    });
    const check = () =>
      assertKnownEngineSettings({ engines, configFile: "/repo/tasksgodzilla.config.json" }, registry);
    expect(check).toThrow(UnknownEngineSettingsError);
    expect(check).toThrow(
      'settings for unknown engines "codx" (engines.codx in /repo/tasksgodzilla.config.json), "claude" (TASKSGODZILLA_ENGINE_CLAUDE_BINARY); known engines: claude-code, codex, gemini, opencode, replay, shell',
    );
    expect(() =>
      assertKnownEngineSettings({ engines: engineSettings({ codex: {} }, "/repo", {}) }, registry),
    ).not.toThrow();
  });
});
