import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCheckCommand } from "../../src/runner/check-command.js";

const cwd = mkdtempSync(join(tmpdir(), "tgz-check-"));
writeFileSync(join(cwd, "present.txt"), "x");

describe("QA check commands", () => {
  it("pass on exit 0 in the worktree, fail otherwise with the output", async () => {
    expect(await runCheckCommand("test -f present.txt", cwd, 5000, 10_000, {})).toMatchObject({
      ok: true,
      exitCode: 0,
    });
    const failed = await runCheckCommand("echo missing >&2; test -f absent.txt", cwd, 5000, 10_000, {});
    expect(failed).toMatchObject({ ok: false, exitCode: 1, output: "missing\n" });
  });

  it("fail at their timeout and say so", async () => {
    const r = await runCheckCommand("sleep 10", cwd, 200, 10_000, {});
    expect(r).toMatchObject({
      ok: false,
      timedOut: true,
      output: expect.stringMatching(/timed out after 200 ms/),
    });
  });

  it("never throw, even when the directory is gone", async () => {
    const r = await runCheckCommand("true", join(cwd, "missing-dir"), 1000, 10_000, {});
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/working directory .*missing-dir does not exist/);
  });
});
