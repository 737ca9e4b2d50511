/** What each adapter's preflight accepts as credentials, and how provider settings reach the CLI. */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { CallContext, CliAdapter } from "../../src/engines/cli/cli-adapter.js";
import { codexAdapter } from "../../src/engines/cli/codex-adapter.js";
import { opencodeAdapter } from "../../src/engines/cli/opencode-adapter.js";
import type { EngineRequest, EngineSettings } from "../../src/engines/engine-port.js";

function context(settings: EngineSettings, files: Record<string, string> = {}): Omit<CallContext, "scratch"> {
  const home = mkdtempSync(join(tmpdir(), "tgz-cred-"));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(home, name, ".."), { recursive: true });
    writeFileSync(join(home, name), text);
  }
  return { settings, home, userHome: mkdtempSync(join(tmpdir(), "tgz-user-")), stateDir: home };
}

const check = (adapter: CliAdapter, env: NodeJS.ProcessEnv, ctx: Omit<CallContext, "scratch">) =>
  adapter.credentials(env, ctx).map((p) => p.message);

describe("Codex credentials", () => {
  it("wants an OpenAI key or a login for the default provider", () => {
    expect(check(codexAdapter, {}, context({}))).toEqual([expect.stringMatching(/no credentials/)]);
    expect(check(codexAdapter, { OPENAI_API_KEY: "k" }, context({}))).toEqual([]);
    expect(check(codexAdapter, {}, context({}, { "auth.json": "{}" }))).toEqual([]);
  });

  it("checks the env_key of a provider given in config_overrides", () => {
    const ctx = context({
      configOverrides: [
        "model_provider=local",
        'model_providers.local={name="local",base_url="http://127.0.0.1:8000/v1",env_key="LOCAL_KEY"}',
      ],
    });
    expect(check(codexAdapter, {}, ctx)).toEqual([expect.stringMatching(/LOCAL_KEY is not set .*"local"/)]);
    expect(check(codexAdapter, { LOCAL_KEY: "k" }, ctx)).toEqual([]);
  });

  it("checks the env_key of a provider the config.toml defines and selects", () => {
    const toml = [
      'model = "gpt-5.5"',
      'model_provider = "corp" # our gateway',
      "",
      "[model_providers.corp]",
      'name = "corp"',
      'base_url = "https://llm.example.com/v1"',
      'env_key = "CORP_KEY"',
      "",
      "[model_providers.other]",
      'env_key = "OTHER_KEY"',
    ].join("\n");
    const ctx = context({}, { "config.toml": toml });
    expect(check(codexAdapter, { OTHER_KEY: "k" }, ctx)).toEqual([
      expect.stringMatching(/CORP_KEY is not set/),
    ]);
    expect(check(codexAdapter, { CORP_KEY: "k" }, ctx)).toEqual([]);
  });

  it("needs no key for a provider without env_key or a keyless built-in one", () => {
    const toml = '[model_providers.llama]\nname = "llama"\nbase_url = "http://127.0.0.1:8080/v1"\n';
    expect(check(codexAdapter, {}, context({ provider: "llama" }, { "config.toml": toml }))).toEqual([]);
    expect(check(codexAdapter, {}, context({ provider: "ollama" }))).toEqual([]);
  });

  it("reads the user's own config.toml with home: user", () => {
    const ctx = { ...context({ home: "user" }), home: undefined };
    mkdirSync(join(ctx.userHome, ".codex"));
    writeFileSync(
      join(ctx.userHome, ".codex", "config.toml"),
      'model_provider = "corp"\n[model_providers.corp]\nenv_key = "CORP_KEY"\n',
    );
    expect(check(codexAdapter, {}, ctx)).toEqual([expect.stringMatching(/CORP_KEY is not set/)]);
  });

  it("wants OPENAI_API_KEY for a base_url server", () => {
    const ctx = context({ baseUrl: "http://127.0.0.1:8000/v1" });
    expect(codexAdapter.credentials({}, ctx)).toEqual([
      {
        message: expect.stringMatching(/OPENAI_API_KEY is not set/),
        fix: expect.stringMatching(/any value for a server that takes none/),
      },
    ]);
    expect(check(codexAdapter, { OPENAI_API_KEY: "k" }, ctx)).toEqual([]);
  });

  it("selects a provider by name alone, without a base URL", () => {
    const ctx = { ...context({ provider: "ollama" }), scratch: mkdtempSync(join(tmpdir(), "tgz-scratch-")) };
    const request = { role: "exec", prompt: "p", cwd: "/w", inputs: {}, env: {} } as unknown as EngineRequest;
    const { args } = codexAdapter.invocation(request, ctx);
    expect(args.join(" ")).toContain("-c model_provider=ollama");
    expect(args.join(" ")).not.toContain("model_providers.");
  });
});

describe("opencode credentials", () => {
  it("wants OPENAI_API_KEY for a base_url server", () => {
    const ctx = context({ baseUrl: "http://127.0.0.1:8000/v1" });
    expect(check(opencodeAdapter, { ANTHROPIC_API_KEY: "k" }, ctx)).toEqual([
      expect.stringMatching(/OPENAI_API_KEY is not set/),
    ]);
    expect(check(opencodeAdapter, { OPENAI_API_KEY: "k" }, ctx)).toEqual([]);
  });

  it("accepts a login in its auth store, its own config or a provider key variable", () => {
    expect(check(opencodeAdapter, {}, context({}))).toEqual([expect.stringMatching(/no credentials/)]);
    expect(
      check(opencodeAdapter, {}, context({}, { "data/opencode/auth.json": '{"anthropic":{"type":"api"}}' })),
    ).toEqual([]);
    expect(check(opencodeAdapter, {}, context({}, { "config/opencode/opencode.json": "{}" }))).toEqual([]);
    expect(check(opencodeAdapter, { OPENROUTER_API_KEY: "k" }, context({}))).toEqual([]);
    expect(check(opencodeAdapter, {}, context({}, { "data/opencode/auth.json": "{}" }))).toEqual([
      expect.stringMatching(/no credentials/),
    ]);
  });
});
