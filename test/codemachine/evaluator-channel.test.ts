/**
 * The importer reads the evaluator's output defensively: whatever a process writes on that channel
 * ends as an error naming the file being evaluated, never as an exception of the importer (which in
 * the API server would end the server).
 */
import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { readEvaluatorOutput } from "../../src/codemachine/evaluator-channel.js";
import { CodeMachineImportError } from "../../src/codemachine/import-errors.js";

/** The output of a real process running `script` (which writes on stdout), read as the evaluator's. */
function readFrom(script: string, files = ["/p/a.js", "/p/b.js"]) {
  const child = spawn(process.execPath, ["-e", script], { stdio: ["pipe", "pipe", "pipe"] });
  child.stdin.end();
  return readEvaluatorOutput(child, files);
}

const line = (msg: unknown) => `${JSON.stringify(msg)}\n`;
const writes = (...chunks: string[]) => `process.stdout.write(${JSON.stringify(chunks.join(""))});`;

describe("reading the package evaluator's output", () => {
  it("reads each file's exports in order", async () => {
    const values = await readFrom(
      writes(
        line({ start: "/p/a.js" }),
        line({ file: "/p/a.js", json: '{"value":[1]}' }),
        line({ start: "/p/b.js" }),
        line({ file: "/p/b.js", json: '{"value":"b"}' }),
      ),
    );
    expect([...values]).toEqual([
      ["/p/a.js", [1]],
      ["/p/b.js", "b"],
    ]);
  });

  it.each([
    [
      "a line that is no JSON",
      [line({ start: "/p/a.js" }), "not json\n"],
      '/p/a.js: the package evaluator wrote a line that is not a message: "not json"',
    ],
    [
      "a message of the wrong shape",
      [line({ start: "/p/a.js" }), line({ file: "/p/a.js", json: 1 })],
      '/p/a.js: the package evaluator wrote a message of the wrong shape: "{\\"file\\":\\"/p/a.js\\",\\"json\\":1}"',
    ],
    [
      "a message about a file out of turn",
      [line({ start: "/p/b.js" })],
      '/p/a.js: the package evaluator wrote a message about another file: "{\\"start\\":\\"/p/b.js\\"}"',
    ],
    [
      "exports that are not JSON",
      [line({ start: "/p/a.js" }), line({ file: "/p/a.js", json: "{" })],
      '/p/a.js: the package evaluator sent exports that are not JSON: "{"',
    ],
  ])("turns %s into an error naming the file", async (_what, chunks, message) => {
    const err = await readFrom(writes(...chunks)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CodeMachineImportError);
    expect((err as Error).message).toBe(message);
  });

  it("stops reading a flood of output and names the file being evaluated", async () => {
    const started = Date.now();
    const err = await readFrom(
      `process.stdout.write(${JSON.stringify(line({ start: "/p/a.js" }))}); const s = 'x'.repeat(1 << 20); (function more() { process.stdout.write(s, more); })();`,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CodeMachineImportError);
    expect((err as Error).message).toBe(
      "/p/a.js: the package evaluator sent more than 16 MB (exports that large are not supported)",
    );
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
