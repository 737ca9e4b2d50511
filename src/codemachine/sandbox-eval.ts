/**
 * Runs a package's JavaScript (CommonJS config files, ES-module workflow files) in a separate Node
 * process started with the permission model and an empty environment: it may not read or write any
 * file (the sources arrive on stdin), start processes or workers, or load native code; its own realm
 * may not compile strings and its built-in prototypes are frozen; its memory is capped. Inside it,
 * each file runs in a vm context whose every object was made inside that context (sandbox-programs.ts),
 * so there is no way out to `process`, `require` or the network. Values leave as JSON
 * (evaluator-channel.ts reads them). Each file has a time limit covering its code, its promise jobs
 * and the reading of its exports; a process that overruns it anyway is killed.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { HEAP_LIMIT_MB, MEMORY_LIMIT_MB, readEvaluatorOutput, TIME_LIMIT_MS } from "./evaluator-channel.js";
import { CodeMachineImportError } from "./import-errors.js";
import { EVALUATOR_SOURCE, REALM_SOURCE } from "./sandbox-programs.js";

// Node 20 spells it --experimental-permission; later versions --permission
const PERMISSION_FLAG = process.allowedNodeEnvironmentFlags.has("--permission")
  ? "--permission"
  : "--experimental-permission";
const NODE_FLAGS = [
  PERMISSION_FLAG,
  // lets the scripts answer import() themselves (sandbox-programs.ts); without it Node answers with
  // an error of the evaluator's own realm
  "--experimental-vm-modules",
  "--disallow-code-generation-from-strings",
  "--frozen-intrinsics",
  "--no-warnings",
  `--max-old-space-size=${HEAP_LIMIT_MB}`,
];
/**
 * Starts the evaluator under a data segment limit (the heap flag does not bound ArrayBuffers). When the
 * hard limit is already lower, the soft one cannot be raised to ours and the lower one holds.
 */
const LAUNCHER = `ulimit -S -d ${MEMORY_LIMIT_MB * 1024} 2>/dev/null; exec "$@"`;

export type PackageFileKind = "config" | "workflow";

export interface PackageFile {
  file: string;
  kind: PackageFileKind;
}

const EXPORT_DEFAULT = /^(\s*)export\s+default\b/m;

/** The source as the evaluator runs it: `export default` becomes `module.exports =`. */
function evaluatorSource(f: PackageFile): string {
  const source = readFileSync(f.file, "utf8");
  if (/^\s*(import\s|export\s+(?!default\b))/m.test(source)) {
    throw new CodeMachineImportError(
      f.file,
      "only `export default …` is supported (no imports or named exports)",
    );
  }
  if (f.kind === "workflow" && !EXPORT_DEFAULT.test(source))
    throw new CodeMachineImportError(f.file, "has no `export default`");
  return source.replace(EXPORT_DEFAULT, "$1module.exports =");
}

/**
 * The value each file exports, by file. `cwd` is what `path.resolve` starts from inside the files.
 * Rejects with a CodeMachineImportError naming the first file that throws, overruns or cannot be read.
 */
export function evaluatePackageFiles(files: PackageFile[], cwd: string): Promise<Map<string, unknown>> {
  const input = JSON.stringify({
    cwd,
    limitMs: TIME_LIMIT_MS,
    realm: REALM_SOURCE,
    files: files.map((f) => ({ ...f, source: evaluatorSource(f) })),
  });
  if (files.length === 0) return Promise.resolve(new Map());
  const child = spawn(
    "/bin/sh",
    ["-c", LAUNCHER, "sh", process.execPath, ...NODE_FLAGS, "-e", EVALUATOR_SOURCE],
    {
      env: {},
      cwd: tmpdir(),
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  const output = readEvaluatorOutput(
    child,
    files.map((f) => f.file),
  );
  // a child that died early closes its stdin; the output's close handler reports why
  child.stdin.on("error", () => undefined);
  child.stdin.end(input);
  return output;
}
