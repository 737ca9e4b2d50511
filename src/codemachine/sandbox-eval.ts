/**
 * Runs a package's JavaScript (CommonJS config files, ES-module workflow files) in a separate Node
 * process started with the permission model and an empty environment: it may not read or write any
 * file (the sources arrive on stdin), start processes or workers, or load native code. Inside it,
 * each file runs in a vm context whose every object was made inside that context (sandbox-programs.ts),
 * so there is no way out to `process`, `require` or the network. Values leave as JSON. Each file has
 * a time limit covering its code, its promise jobs and the reading of its exports; a process that
 * overruns it anyway is killed.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { CodeMachineImportError } from "./import-errors.js";
import { EVALUATOR_SOURCE, REALM_SOURCE } from "./sandbox-programs.js";

const TIME_LIMIT_MS = 2_000;
/** Starting a Node process is not counted against a file, but it may not take for ever either. */
const STARTUP_LIMIT_MS = 20_000;
/** Slack over a file's own limit before the process is killed (its in-process limit fires first). */
const KILL_GRACE_MS = 1_000;
const MEMORY_LIMIT_MB = 256;
// Node 20 spells it --experimental-permission; later versions --permission
const PERMISSION_FLAG = process.allowedNodeEnvironmentFlags.has("--permission")
  ? "--permission"
  : "--experimental-permission";

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

type EvaluatorMessage =
  | { start: string }
  | { file: string; json: string }
  | { file: string; error: string }
  | { file: string; timeout: true };

const overrun = (file: string) =>
  new CodeMachineImportError(
    file,
    `did not finish within ${TIME_LIMIT_MS / 1000} s (an endless loop, or a promise chain that never ends?)`,
  );

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
  const values = new Map<string, unknown>();
  if (files.length === 0) return Promise.resolve(values);
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      process.execPath,
      [PERMISSION_FLAG, "--no-warnings", `--max-old-space-size=${MEMORY_LIMIT_MB}`, "-e", EVALUATOR_SOURCE],
      { env: {}, cwd: tmpdir(), stdio: ["pipe", "pipe", "pipe"] },
    );
    let current = files[0]!.file;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    let stderr = "";
    let buffered = "";
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
      if (err) reject(err);
      else resolvePromise(values);
    };
    const arm = (ms: number, err: () => Error) => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(err()), ms);
    };
    arm(STARTUP_LIMIT_MS, () => new CodeMachineImportError(current, "the package evaluator did not start"));

    const onMessage = (msg: EvaluatorMessage) => {
      if ("start" in msg) {
        current = msg.start;
        arm(TIME_LIMIT_MS + KILL_GRACE_MS, () => overrun(msg.start));
        return;
      }
      clearTimeout(timer);
      if ("timeout" in msg) return finish(overrun(msg.file));
      if ("error" in msg) return finish(new CodeMachineImportError(msg.file, msg.error));
      values.set(msg.file, (JSON.parse(msg.json) as { value?: unknown }).value);
      if (values.size === files.length) finish();
    };
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      buffered += chunk;
      let nl = buffered.indexOf("\n");
      while (nl >= 0 && !settled) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        onMessage(JSON.parse(line) as EvaluatorMessage);
        nl = buffered.indexOf("\n");
      }
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    child.on("error", (err) =>
      finish(new CodeMachineImportError(current, `cannot start the package evaluator: ${err.message}`)),
    );
    child.on("close", (code, signal) => {
      if (settled) return;
      const why = /heap out of memory/i.test(stderr)
        ? `used more than ${MEMORY_LIMIT_MB} MB of memory`
        : `stopped the evaluator (${signal ?? `exit code ${code}`})${stderr.trim() ? `: ${stderr.trim().split("\n").at(-1)}` : ""}`;
      finish(new CodeMachineImportError(current, why));
    });
    // a child that died early closes its stdin; the close handler reports why
    child.stdin.on("error", () => undefined);
    child.stdin.end(input);
  });
}
