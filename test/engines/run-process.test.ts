import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { identify, killOrphan } from "../../src/engines/process/process-identity.js";
import {
  BinaryNotFoundError,
  findBinary,
  runProcess,
  startProcess,
} from "../../src/engines/process/run-process.js";
import { waitGone } from "../support/processes.js";

const cwd = mkdtempSync(join(tmpdir(), "tgz-proc-"));
const bash = (script: string, extra: Partial<Parameters<typeof runProcess>[0]> = {}) =>
  runProcess({
    command: "bash",
    args: ["-c", script],
    cwd,
    timeoutMs: 10_000,
    maxOutputBytes: 1 << 20,
    ...extra,
  });

describe("runProcess", () => {
  it("captures stdout, stderr and the exit code, in the given directory with the given env", async () => {
    const r = await bash('echo "out $PWD $X"; echo err >&2; exit 4', { env: { X: "42" } });
    expect(r).toMatchObject({
      exitCode: 4,
      stdout: `out ${cwd} 42\n`,
      stderr: "err\n",
      timedOut: false,
      truncatedBytes: 0,
    });
  });

  it("closes stdin unless text is given, so readers never hang", async () => {
    expect((await bash("cat; echo done", { timeoutMs: 5000 })).stdout).toBe("done\n");
    expect((await bash("tr a-z A-Z", { stdin: "hello" })).stdout).toBe("HELLO");
  });

  it("kills the whole process group at the timeout, grandchildren included", async () => {
    const pidFile = join(cwd, "grandchild.pid");
    const r = await bash(`sleep 60 & echo $! > ${pidFile}; wait`, { timeoutMs: 500, killGraceMs: 500 });
    expect(r.timedOut).toBe(true);
    expect(r.durationMs).toBeLessThan(5000);
    expect(await waitGone(Number(readFileSync(pidFile, "utf8")))).toBe(true);
  });

  it.each(["timeout", "abort"] as const)(
    "kills, on %s, what runs below the process in a process group of its own",
    async (how) => {
      // setsid: a tool command in a group (and session) of its own, as opencode and Gemini start them
      const pidFile = join(cwd, `own-group-${how}.pid`);
      const controller = new AbortController();
      const r = bash(`setsid bash -c 'echo $$ > ${pidFile}; exec sleep 60' >/dev/null 2>&1 & wait`, {
        timeoutMs: how === "timeout" ? 1000 : 10_000,
        killGraceMs: 500,
        signal: controller.signal,
      });
      while (!existsSync(pidFile) || !readFileSync(pidFile, "utf8").trim())
        await new Promise((res) => setTimeout(res, 20));
      const pid = Number(readFileSync(pidFile, "utf8"));
      if (how === "abort") controller.abort();
      expect(await r).toMatchObject({ timedOut: how === "timeout", aborted: how === "abort" });
      expect(await waitGone(pid)).toBe(true);
    },
  );

  it("escalates to SIGKILL when SIGTERM is ignored", async () => {
    const r = await bash("trap '' TERM; while :; do sleep 0.1; done", { timeoutMs: 300, killGraceMs: 300 });
    expect(r).toMatchObject({ timedOut: true, signal: "SIGKILL" });
  });

  it("stops on abort", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const r = await bash("sleep 30", { signal: controller.signal });
    expect(r).toMatchObject({ aborted: true, timedOut: false });
  });

  it("keeps the start and the end of capped output and counts what it dropped", async () => {
    const r = await bash("printf 'BEGIN'; head -c 5000 /dev/zero | tr '\\0' x; printf 'END'", {
      maxOutputBytes: 1000,
    });
    // a quarter of the cap for the head and a quarter for the tail of each stream
    expect(r.stdout).toMatch(/^BEGINx{245}\n\[… 4508 bytes dropped …\]\nx{247}END$/);
    expect(r.truncatedBytes).toBe(4508);
    const both = await bash("head -c 3000 /dev/zero | tr '\\0' o; head -c 3000 /dev/zero | tr '\\0' e >&2", {
      maxOutputBytes: 1000,
    });
    expect(both.truncatedBytes).toBe(2 * 2500);
    expect(both.stderr).toMatch(/^e{250}\n\[… 2500 bytes dropped …\]\ne{250}$/);
  });

  it("passes on a line longer than the output cap whole", async () => {
    const p = startProcess({
      command: "bash",
      args: ["-c", "printf '%s\\nend\\n' \"$(head -c 5000 /dev/zero | tr '\\0' x)\""],
      cwd,
      timeoutMs: 5000,
      maxOutputBytes: 1000,
    });
    const seen: string[] = [];
    for await (const line of p.lines()) seen.push(line);
    expect(seen).toEqual(["x".repeat(5000), "end"]);
    expect(await p.result).toMatchObject({ droppedLines: 0 });
  });

  it("streams every stdout line past the cap, the last one included", async () => {
    const p = startProcess({
      command: "bash",
      args: ["-c", 'for i in $(seq 1 2000); do echo "line $i of the stream"; done; printf \'{"last":true}\''],
      cwd,
      timeoutMs: 5000,
      maxOutputBytes: 1000,
    });
    const seen: string[] = [];
    for await (const line of p.lines()) seen.push(line);
    expect(seen).toHaveLength(2001);
    expect(seen.at(-1)).toBe('{"last":true}');
    expect((await p.result).truncatedBytes).toBeGreaterThan(40_000);
  });

  it.each([
    ["in pieces", "echo short; head -c 5000 /dev/zero | tr '\\0' x; echo; echo after"],
    // pieces each under the limit, the line past twice the limit: still one line dropped
    [
      "in small pieces",
      "echo short; for i in 1 2 3 4 5 6; do head -c 800 /dev/zero | tr '\\0' x; sleep 0.05; done; echo; echo after",
    ],
    // one write: the whole line arrives in a single chunk
    ["at once", "printf 'short\\n%s\\nafter\\n' \"$(head -c 5000 /dev/zero | tr '\\0' x)\""],
  ])("drops a line longer than the line limit that arrives %s, and counts it", async (_how, script) => {
    const p = startProcess({
      command: "bash",
      args: ["-c", script],
      cwd,
      timeoutMs: 5000,
      maxOutputBytes: 1000,
      maxLineBytes: 1000,
    });
    const seen: string[] = [];
    for await (const line of p.lines()) seen.push(line);
    expect(seen).toEqual(["short", "after"]);
    expect(await p.result).toMatchObject({ droppedLines: 1, truncatedBytes: expect.any(Number) });
    expect((await p.result).truncatedBytes).toBeGreaterThan(0);
  });

  it("streams stdout lines while the process runs", async () => {
    const p = startProcess({
      command: "bash",
      args: ["-c", "echo one; sleep 0.2; printf 'two\\nthree'"],
      cwd,
      timeoutMs: 5000,
      maxOutputBytes: 1 << 20,
    });
    const seen: string[] = [];
    for await (const line of p.lines()) seen.push(line);
    expect(seen).toEqual(["one", "two", "three"]);
    expect((await p.result).exitCode).toBe(0);
  });

  it("reports a missing binary with a typed error naming it", async () => {
    await expect(
      runProcess({ command: "no-such-binary-tgz", args: [], cwd, timeoutMs: 1000, maxOutputBytes: 100 }),
    ).rejects.toThrow(BinaryNotFoundError);
    await expect(
      runProcess({ command: "no-such-binary-tgz", args: [], cwd, timeoutMs: 1000, maxOutputBytes: 100 }),
    ).rejects.toThrow(/no-such-binary-tgz/);
  });

  it("finds binaries on PATH or by path", () => {
    expect(findBinary("bash")).toMatch(/\/bash$/);
    expect(findBinary("no-such-binary-tgz")).toBeUndefined();
    expect(findBinary("/bin/sh")).toBe("/bin/sh");
    expect(findBinary("bash", "/nonexistent")).toBeUndefined();
  });
});

describe("runProcess idle limit", () => {
  it("kills the whole process group after the idle limit without output, with the silence and the last line", async () => {
    const pidFile = join(cwd, "stalled-grandchild.pid");
    const r = await bash(`echo first; echo 'second line'; sleep 60 & echo $! > ${pidFile}; wait`, {
      idleTimeoutMs: 500,
      killGraceMs: 500,
    });
    expect(r).toMatchObject({
      timedOut: false,
      aborted: false,
      stall: { idleMs: expect.any(Number), lastOutput: "second line" },
    });
    expect(r.stall!.idleMs).toBeGreaterThanOrEqual(500);
    expect(await waitGone(Number(readFileSync(pidFile, "utf8")))).toBe(true);
  });

  it("reports a process that never printed as silent from its start", async () => {
    const r = await bash("sleep 30", { idleTimeoutMs: 300, killGraceMs: 300 });
    expect(r.stall).toEqual({ idleMs: expect.any(Number), lastOutput: undefined });
  });

  it("does not stall a process that keeps printing past the idle limit, on stdout or stderr", async () => {
    const r = await bash(
      "for i in $(seq 1 12); do echo out $i; sleep 0.1; echo err $i >&2; sleep 0.1; done; echo done",
      { idleTimeoutMs: 600 },
    );
    expect(r).toMatchObject({ exitCode: 0, timedOut: false, stall: undefined });
    expect(r.stdout).toMatch(/done\n$/);
  });

  it("with stdout-lines, counts only complete stdout lines: stderr chatter and a half-written line are silence", async () => {
    const chatter = await bash("for i in $(seq 1 30); do echo retrying >&2; sleep 0.1; done", {
      idleTimeoutMs: 600,
      activity: "stdout-lines",
      killGraceMs: 300,
    });
    expect(chatter.stall).toEqual({ idleMs: expect.any(Number), lastOutput: undefined });
    const half = await bash(`echo '{"type":"turn.started"}'; printf '{"type":"item'; sleep 30`, {
      idleTimeoutMs: 600,
      activity: "stdout-lines",
      killGraceMs: 300,
    });
    expect(half.stall?.lastOutput).toBe('{"type":"turn.started"}');
    const lines = await bash("for i in $(seq 1 10); do echo '{}'; sleep 0.15; done", {
      idleTimeoutMs: 600,
      activity: "stdout-lines",
    });
    expect(lines).toMatchObject({ exitCode: 0, stall: undefined });
  });

  it("cuts a long last line short in the report", async () => {
    const r = await bash("head -c 3000 /dev/zero | tr '\\0' y; echo; sleep 30", {
      idleTimeoutMs: 400,
      killGraceMs: 300,
    });
    expect(r.stall?.lastOutput).toBe(`${"y".repeat(500)}…`);
    // an event line keeps its start, which names the event
    const event = await bash(
      `printf '{"type":"system","tools":"%s"}\\n' "$(head -c 3000 /dev/zero | tr '\\0' t)"; sleep 30`,
      { idleTimeoutMs: 400, killGraceMs: 300, activity: "stdout-lines" },
    );
    expect(event.stall?.lastOutput).toBe(`{"type":"system","tools":"${"t".repeat(474)}…`);
  });

  it("reports the timeout, not a stall, when the timeout passes first", async () => {
    const r = await bash("sleep 30", { timeoutMs: 300, idleTimeoutMs: 5000, killGraceMs: 300 });
    expect(r).toMatchObject({ timedOut: true, stall: undefined });
  });
});

describe("killOrphan", () => {
  it("kills a recorded engine process's group and what runs below it in a group of its own", async () => {
    const pidFile = join(cwd, "orphan-tool.pid");
    const engine = spawn(
      "bash",
      ["-c", `setsid bash -c 'echo $$ > ${pidFile}; exec sleep 60' >/dev/null 2>&1 & sleep 60`],
      { detached: true, stdio: "ignore" },
    );
    while (!existsSync(pidFile) || !readFileSync(pidFile, "utf8").trim())
      await new Promise((res) => setTimeout(res, 20));
    const tool = Number(readFileSync(pidFile, "utf8"));
    expect(killOrphan(identify(engine.pid!)!)).toBe(true);
    expect(await waitGone(engine.pid!)).toBe(true);
    expect(await waitGone(tool)).toBe(true);
  });

  it("leaves a process alone that is not the one recorded", () => {
    const self = identify(process.pid)!;
    expect(killOrphan({ ...self, startTime: "0" })).toBe(false);
    expect(killOrphan({ ...self, host: "another-host" })).toBe(false);
  });
});
