import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
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

  it("caps captured output and counts what it dropped", async () => {
    const r = await bash("head -c 5000 /dev/zero | tr '\\0' x", { maxOutputBytes: 1000 });
    expect(r.stdout).toHaveLength(1000);
    expect(r.truncatedBytes).toBe(4000);
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
