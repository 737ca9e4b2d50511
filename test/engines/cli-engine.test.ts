/**
 * The shared CLI engine with the real adapters, driving small executable scripts that stand in for an
 * agent CLI: what it makes of garbage, exit codes, capped output, unknown sessions and config homes.
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { claudeCodeAdapter } from "../../src/engines/cli/claude-code-adapter.js";
import type { CliAdapter } from "../../src/engines/cli/cli-adapter.js";
import { CliEngine } from "../../src/engines/cli/cli-engine.js";
import { codexAdapter } from "../../src/engines/cli/codex-adapter.js";
import { geminiAdapter } from "../../src/engines/cli/gemini-adapter.js";
import { opencodeAdapter } from "../../src/engines/cli/opencode-adapter.js";
import type { EngineSettings } from "../../src/engines/engine-port.js";
import { driveEngine } from "../support/drive-engine.js";

const dir = () => mkdtempSync(join(tmpdir(), "tgz-cli-engine-"));

/** Writes an executable bash script standing in for a CLI; returns its path. */
function fakeCli(body: string): string {
  const file = join(dir(), "fake-cli");
  writeFileSync(file, `#!/usr/bin/env bash\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

const claudeInit = (session: string) =>
  JSON.stringify({ type: "system", subtype: "init", session_id: session, model: "m" });
const claudeResult = (session: string, text: string) =>
  JSON.stringify({
    type: "result",
    subtype: "success",
    is_error: false,
    result: text,
    session_id: session,
    usage: {
      input_tokens: 78,
      cache_read_input_tokens: 33,
      cache_creation_input_tokens: 0,
      output_tokens: 22,
    },
  });

async function run(
  adapter: CliAdapter,
  binary: string,
  extra: Partial<Parameters<typeof driveEngine>[1]> = {},
) {
  const settings: EngineSettings = { binary, homeDir: join(dir(), "home"), ...extra.settings };
  return driveEngine(new CliEngine(adapter), { cwd: dir(), prompt: "do it", ...extra, settings });
}

describe("the CLI engine with a stand-in binary", () => {
  it("fails garbage output of a zero exit as bad_output, with the CLI's last words", async () => {
    const { result, events } = await run(
      claudeCodeAdapter,
      fakeCli("echo 'Welcome to the CLI'; echo 'something went sideways'"),
    );
    expect(result).toMatchObject({ ok: false, exitCode: 0, error: { kind: "bad_output", retryable: false } });
    expect(result.error!.message).toMatch(
      /2 unreadable line\(s\).*Welcome to the CLI\nsomething went sideways/s,
    );
    expect(events.at(-1)).toEqual({ type: "error", error: result.error });
  });

  it("types a non-zero exit with garbage as a crash naming the code, stderr and the last stdout lines", async () => {
    const { result } = await run(
      claudeCodeAdapter,
      fakeCli("echo 'panic: index out of range'; echo 'goroutine 1 [running]' >&2; exit 3"),
    );
    expect(result).toMatchObject({ ok: false, exitCode: 3, error: { kind: "crash", retryable: false } });
    expect(result.error!.message).toMatch(
      /claude-code exited with code 3: goroutine 1 \[running\]\npanic: index out of range/,
    );
  });

  it("says which signal killed a CLI", async () => {
    const { result } = await run(claudeCodeAdapter, fakeCli("echo 'about to die'; kill -SEGV $$"));
    expect(result.error).toMatchObject({
      kind: "crash",
      message: expect.stringMatching(/was killed by SIGSEGV: about to die/),
    });
  });

  it("judges a failed exit by the stream's own notice before stderr warnings", async () => {
    const { result } = await run(
      codexAdapter,
      fakeCli(`echo 'WARNING: proceeding, even though we could not create PATH aliases' >&2
echo '{"type":"thread.started","thread_id":"t1"}'
echo '{"type":"error","message":"exceeded retry limit, last status: 429 Too Many Requests"}'
exit 1`),
    );
    expect(result.error).toMatchObject({ kind: "rate_limit", retryable: true });
  });

  it("lets the stream's notice decide over a cause stderr names too, and a stack trace's numbers decide nothing", async () => {
    const { result } = await run(
      codexAdapter,
      fakeCli(`echo 'note: see the rate limits page for your plan' >&2
echo '{"type":"thread.started","thread_id":"t1"}'
echo '{"type":"error","message":"We are currently experiencing high demand"}'
exit 1`),
    );
    expect(result.error).toMatchObject({ kind: "server_error", retryable: true });
    const crash = await run(
      geminiAdapter,
      fakeCli(`echo 'TypeError: x is undefined' >&2
echo '    at run (/usr/lib/node_modules/@google/gemini-cli/bundle/gemini.js:512:17)' >&2
exit 1`),
    );
    expect(crash.result.error).toMatchObject({ kind: "crash", retryable: false });
  });

  it("keeps a Codex turn that failed after the agent spoke a retryable server error", async () => {
    const { result } = await run(
      codexAdapter,
      fakeCli(`echo 'WARNING: proceeding, even though we could not create PATH aliases' >&2
echo '{"type":"thread.started","thread_id":"t1"}'
echo '{"type":"item.completed","item":{"type":"agent_message","text":"Running it."}}'
echo '{"type":"error","message":"We are currently experiencing high demand"}'
echo '{"type":"turn.failed","error":{"message":"We are currently experiencing high demand"}}'
exit 1`),
    );
    expect(result.error).toMatchObject({ kind: "server_error", retryable: true });
  });

  it("takes Codex's final message from its -o file, not from the stream", async () => {
    const args = join(dir(), "args");
    const { result } = await run(
      codexAdapter,
      fakeCli(`printf '%s\\n' "$@" > ${args}
out=$(printf '%s\\n' "$@" | grep -A1 '^-o$' | tail -1)
printf 'from the file' > "$out"
echo '{"type":"thread.started","thread_id":"t1"}'
echo '{"type":"item.completed","item":{"type":"agent_message","text":"from the stream"}}'
echo '{"type":"turn.completed","usage":{"input_tokens":5,"output_tokens":1}}'`),
    );
    expect(result).toMatchObject({ ok: true, finalMessage: "from the file" });
    expect(readFileSync(args, "utf8")).toMatch(/^-o\n\/.*\/last-message\.txt$/m);
  });

  it("keeps the final message and usage a CLI prints after more output than the cap", async () => {
    const lines = `for i in $(seq 1 3000); do echo '{"type":"assistant","message":{"content":[{"type":"text","text":"working on it, step by step"}]}}'; done`;
    const { result } = await run(
      claudeCodeAdapter,
      fakeCli(`echo '${claudeInit("s1")}'\n${lines}\necho '${claudeResult("s1", "all done")}'`),
      { maxOutputBytes: 4000 },
    );
    expect(result).toMatchObject({
      ok: true,
      finalMessage: "all done",
      usage: { input: 111, cachedInput: 33, output: 22 },
    });
    expect(result.truncatedBytes).toBeGreaterThan(200_000);
  });

  it("says so when a line was too long to hold and never reached the parser", async () => {
    const { result } = await run(
      claudeCodeAdapter,
      fakeCli(`echo '${claudeInit("s1")}'; head -c 17000000 /dev/zero | tr '\\0' x; echo`),
      { maxOutputBytes: 4000 },
    );
    expect(result).toMatchObject({ ok: false, error: { kind: "bad_output" } });
    expect(result.error!.message).toMatch(/1 line\(s\) too long to parse/);
    expect(result.truncatedBytes).toBeGreaterThan(0);
  });

  it("stalls a CLI whose stream stops, though it keeps writing retry notices to stderr, reporting its last event", async () => {
    const { result, events } = await run(
      claudeCodeAdapter,
      fakeCli(
        `echo '${claudeInit("s1")}'; printf '{"type":"assistant"'; ` +
          'for i in $(seq 1 50); do echo "retrying in 1s (attempt $i)" >&2; sleep 0.1; done',
      ),
      { idleTimeoutMs: 800, timeoutMs: 20_000 },
    );
    expect(result.error).toMatchObject({
      kind: "stalled",
      retryable: true,
      stall: { lastOutput: claudeInit("s1") },
    });
    expect(result.error!.stall!.idleMs).toBeGreaterThanOrEqual(800);
    expect(events.find((e) => e.type === "started" && e.sessionId)).toMatchObject({ sessionId: "s1" });
    expect(result.sessionId).toBe("s1");
  });

  it("runs the prompt in a fresh session when the one to resume is unknown, and says so", async () => {
    const calls = join(dir(), "calls");
    const { result, events } = await run(
      claudeCodeAdapter,
      fakeCli(`echo "$*" >> ${calls}
if [[ " $* " == *" --resume "* ]]; then
  echo 'No conversation found with session ID: old-session' >&2
  echo '{"type":"result","subtype":"error_during_execution","is_error":true,"session_id":"old-session","errors":["No conversation found with session ID: old-session"]}'
  exit 1
fi
cat > /dev/null
echo '${claudeInit("new-session")}'
echo '${claudeResult("new-session", "answered afresh")}'`),
      { resumeSessionId: "old-session" },
    );
    expect(result).toMatchObject({
      ok: true,
      finalMessage: "answered afresh",
      sessionId: "new-session",
      sessionRestarted: {
        previousSessionId: "old-session",
        reason: "No conversation found with session ID: old-session",
      },
    });
    const invocations = readFileSync(calls, "utf8").trim().split("\n");
    expect(invocations).toHaveLength(2);
    expect(invocations[0]).toMatch(/--resume old-session/);
    expect(invocations[1]).not.toMatch(/--resume/);
    expect(events.filter((e) => e.type === "started" && e.sessionId === "new-session")).toHaveLength(1);
    expect(events.filter((e) => e.type === "error")).toEqual([]);
  });

  it("says so when a CLI silently answers a resume in a session of its own", async () => {
    const { result } = await run(
      claudeCodeAdapter,
      fakeCli(`echo '${claudeInit("other-session")}'; echo '${claudeResult("other-session", "hi")}'`),
      { resumeSessionId: "old-session" },
    );
    expect(result).toMatchObject({
      ok: true,
      sessionId: "other-session",
      sessionRestarted: {
        previousSessionId: "old-session",
        reason: "claude-code started session other-session instead of continuing old-session",
      },
    });
  });

  it("does not start over when a resumed call fails for another reason", async () => {
    const calls = join(dir(), "calls");
    const { result } = await run(
      claudeCodeAdapter,
      fakeCli(`echo "$*" >> ${calls}
echo '{"type":"result","subtype":"success","is_error":true,"api_error_status":401,"result":"Failed to authenticate. API Error: 401","session_id":"old-session"}'
exit 1`),
      { resumeSessionId: "old-session" },
    );
    expect(result).toMatchObject({ ok: false, error: { kind: "auth" } });
    expect(result.sessionRestarted).toBeUndefined();
    expect(readFileSync(calls, "utf8").trim().split("\n")).toHaveLength(1);
  });

  it("refuses opencode with a base URL and no model before starting anything", async () => {
    const ran = join(dir(), "ran");
    const { result, events } = await run(opencodeAdapter, fakeCli(`touch ${ran}`), {
      settings: { baseUrl: "http://127.0.0.1:1/v1" },
    });
    expect(result.error).toMatchObject({
      kind: "unavailable",
      message: expect.stringMatching(/opencode: with base_url opencode needs a model/),
      hint: expect.stringMatching(/model/),
    });
    expect(existsSync(ran)).toBe(false);
    expect(events.some((e) => e.type === "started")).toBe(false);
  });
});

describe("preflight", () => {
  it("names a binary older than the adapter knows, with the install fix", async () => {
    const pre = await new CliEngine(codexAdapter).preflight({
      binary: fakeCli("echo 'codex-cli 0.99.7'"),
      homeDir: join(dir(), "home"),
      env: { OPENAI_API_KEY: "sk" },
    });
    expect(pre).toMatchObject({ ok: false, version: "0.99.7" });
    expect(pre.problems).toEqual([
      {
        message: "codex: version 0.99.7 is older than 0.100.0",
        fix: expect.stringMatching(/^install it .*engines\.codex\.binary/),
      },
    ]);
    const current = await new CliEngine(codexAdapter).preflight({
      binary: fakeCli("echo 'codex-cli 0.100.0'"),
      homeDir: join(dir(), "home"),
      env: { OPENAI_API_KEY: "sk" },
    });
    expect(current).toMatchObject({ ok: true, version: "0.100.0", problems: [] });
  });

  it("says when it cannot read the version, with how to look by hand", async () => {
    const binary = fakeCli("echo 'usage: cli [options]'; exit 2");
    const pre = await new CliEngine(claudeCodeAdapter).preflight({
      binary,
      homeDir: join(dir(), "home"),
      env: { ANTHROPIC_API_KEY: "sk" },
    });
    expect(pre).toMatchObject({ ok: false, version: undefined });
    expect(pre.problems).toEqual([
      {
        message: `claude-code: could not read the version of ${binary}`,
        fix: `run \`${binary} --version\` by hand`,
      },
    ]);
  });
});

describe("config homes", () => {
  /** A stand-in CLI that writes its environment to a file and exits. */
  const envDump = () => {
    const out = join(dir(), "env.json");
    return {
      out,
      binary: fakeCli(`node -e 'require("fs").writeFileSync("${out}", JSON.stringify(process.env))'; exit 1`),
    };
  };

  it.each([
    [codexAdapter.id, codexAdapter, (h: string) => ({ CODEX_HOME: h })],
    [claudeCodeAdapter.id, claudeCodeAdapter, (h: string) => ({ CLAUDE_CONFIG_DIR: h })],
    [geminiAdapter.id, geminiAdapter, (h: string) => ({ GEMINI_CLI_HOME: h })],
    [
      opencodeAdapter.id,
      opencodeAdapter,
      (h: string) => ({
        XDG_CONFIG_HOME: `${h}/config`,
        XDG_DATA_HOME: `${h}/data`,
        XDG_CACHE_HOME: `${h}/cache`,
        XDG_STATE_HOME: `${h}/state`,
      }),
    ],
  ])(
    "gives %s its isolated home in its own variables, in calls and in preflight",
    async (_id, adapter, vars) => {
      const home = join(dir(), "home");
      const { out, binary } = envDump();
      await driveEngine(new CliEngine(adapter), {
        cwd: dir(),
        model: "p/m",
        settings: { binary, homeDir: home },
      });
      expect(JSON.parse(readFileSync(out, "utf8"))).toMatchObject({ ...vars(home), HOME: process.env.HOME });
      await new CliEngine(adapter).preflight({ binary, homeDir: home });
      expect(JSON.parse(readFileSync(out, "utf8"))).toMatchObject({ ...vars(home), HOME: process.env.HOME });
    },
  );

  it("leaves the home variables alone with home: user", async () => {
    const { out, binary } = envDump();
    await driveEngine(new CliEngine(codexAdapter), { cwd: dir(), settings: { binary, home: "user" } });
    expect(JSON.parse(readFileSync(out, "utf8")).CODEX_HOME).toBe(process.env.CODEX_HOME);
  });
});

describe("seed_from_user", () => {
  const version = () => fakeCli("echo 'codex-cli 0.169.0'");

  it("copies a login made after the home exists, keeps the CLI's own rewrite, and takes a new login", async () => {
    const user = dir();
    const home = join(dir(), "home");
    const engine = new CliEngine(codexAdapter, () => user);
    // no key in the environment: only a login counts
    const env = { OPENAI_API_KEY: "", CODEX_API_KEY: "" };
    const settings: EngineSettings = { binary: version(), homeDir: home, seedFromUser: true, env };
    const before = await engine.preflight(settings);
    expect(before.problems.map((p) => p.fix)).toContainEqual(
      expect.stringMatching(/seed_from_user: true after `codex login`/),
    );
    expect(existsSync(home)).toBe(true);

    mkdirSync(join(user, ".codex"));
    writeFileSync(join(user, ".codex", "auth.json"), '{"tokens":"first"}', { mode: 0o600 });
    const after = await engine.preflight(settings);
    expect(after.problems).toEqual([]);
    expect(readFileSync(join(home, "auth.json"), "utf8")).toBe('{"tokens":"first"}');
    expect(statSync(join(home, "auth.json")).mode & 0o777).toBe(0o600);

    // the CLI refreshed its tokens in the isolated home: the unchanged user copy does not undo that
    writeFileSync(join(home, "auth.json"), '{"tokens":"refreshed"}');
    await engine.preflight(settings);
    expect(readFileSync(join(home, "auth.json"), "utf8")).toBe('{"tokens":"refreshed"}');

    writeFileSync(join(user, ".codex", "auth.json"), '{"tokens":"second login"}');
    await engine.preflight(settings);
    expect(readFileSync(join(home, "auth.json"), "utf8")).toBe('{"tokens":"second login"}');
  });

  it("merges Gemini's required settings into the user's seeded settings, comments and all, and copies the Google login", async () => {
    const user = dir();
    const home = join(dir(), "home");
    mkdirSync(join(user, ".gemini"));
    const mine =
      '{ // mine\n "privacy": { "usageStatisticsEnabled": true }, /* the look */ "ui": { "theme": "Dracula // dark" },' +
      ' "general": { "maxAttempts": 5 } }';
    writeFileSync(join(user, ".gemini", "settings.json"), mine);
    writeFileSync(join(user, ".gemini", "oauth_creds.json"), '{"refresh_token":"r"}', { mode: 0o600 });
    const engine = new CliEngine(geminiAdapter, () => user);
    const settings: EngineSettings = { binary: fakeCli("echo 0.61.0"), homeDir: home, seedFromUser: true };
    expect((await engine.preflight(settings)).problems).toEqual([]);
    const copy = join(home, ".gemini", "settings.json");
    expect(JSON.parse(readFileSync(copy, "utf8"))).toEqual({
      privacy: { usageStatisticsEnabled: false },
      ui: { theme: "Dracula // dark" },
      security: { auth: { selectedType: "gemini-api-key" } },
      // Gemini's own retries off, whatever the user's interactive settings chose: the runner retries
      general: { disableAutoUpdate: true, disableUpdateNag: true, maxAttempts: 1 },
    });
    expect(readFileSync(join(user, ".gemini", "settings.json"), "utf8")).toBe(mine);
    expect(readFileSync(join(home, ".gemini", "oauth_creds.json"), "utf8")).toBe('{"refresh_token":"r"}');
    // every run of the project shares the home: a file the merge does not change is not written again
    const written = statSync(copy).mtimeMs;
    await new Promise((r) => setTimeout(r, 20));
    await engine.preflight(settings);
    expect(statSync(copy).mtimeMs).toBe(written);
  });

  it("reports a seeded Gemini settings file that is not JSON, with a fix that works with seeding", async () => {
    const user = dir();
    mkdirSync(join(user, ".gemini"));
    writeFileSync(join(user, ".gemini", "settings.json"), '{ "ui": { "theme": } }');
    const engine = new CliEngine(geminiAdapter, () => user);
    const settings: EngineSettings = {
      binary: fakeCli("echo 0.61.0"),
      homeDir: join(dir(), "home"),
      seedFromUser: true,
      env: { GEMINI_API_KEY: "k" },
    };
    const pre = await engine.preflight(settings);
    expect(pre.ok).toBe(false);
    expect(pre.problems).toEqual([
      {
        message: expect.stringMatching(/^gemini: .*settings\.json is not valid JSON/),
        fix: expect.stringMatching(
          /copy of ~\/\.gemini\/settings\.json: correct that one, and it is copied again/,
        ),
      },
    ]);
    // following the fix is enough: the corrected file replaces the copy
    writeFileSync(join(user, ".gemini", "settings.json"), '{ "ui": { "theme": "Dracula" } }');
    expect((await engine.preflight(settings)).problems).toEqual([]);
  });
});
