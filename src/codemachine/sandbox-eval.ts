/**
 * Runs a package's JavaScript (CommonJS config files, ES-module workflow files) in a node:vm context
 * that holds only what CodeMachine gives them: `node:path`, `__dirname`, and the workflow helpers.
 * No process, environment, fs, network or other modules, and a time limit. This guards against
 * accidents in package code (a stray require, an endless loop); it is not a security boundary.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import vm from "node:vm";
import { CodeMachineImportError } from "./import-errors.js";

const TIME_LIMIT_MS = 2_000;
const ALLOWED_MODULES = new Set(["path", "node:path"]);

function run(file: string, code: string, globals: Record<string, unknown>): unknown {
  const module = { exports: {} as unknown };
  const require = (name: string) => {
    if (ALLOWED_MODULES.has(name)) return path;
    throw new Error(`require('${name}') is not allowed: package files may only require node:path`);
  };
  const context = vm.createContext(
    {
      ...globals,
      module,
      exports: module.exports,
      require,
      __dirname: path.dirname(file),
      __filename: file,
      console: { log() {}, warn() {}, error() {} },
    },
    { codeGeneration: { strings: false, wasm: false } },
  );
  try {
    vm.runInContext(code, context, { filename: file, timeout: TIME_LIMIT_MS });
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code === "ERR_SCRIPT_EXECUTION_TIMEOUT")
      throw new CodeMachineImportError(
        file,
        `did not finish within ${TIME_LIMIT_MS / 1000} s (an endless loop?)`,
      );
    throw new CodeMachineImportError(file, `${e.name ?? "Error"}: ${e.message}`);
  }
  return module.exports;
}

/** A CommonJS config file (`module.exports = …`). */
export function evalConfigFile(file: string): unknown {
  return run(file, readFileSync(file, "utf8"), {});
}

/** A `*.workflow.js` ES module with one `export default`, evaluated with the helpers as globals. */
export function evalWorkflowFile(file: string, helpers: Record<string, unknown>): unknown {
  const source = readFileSync(file, "utf8");
  if (/^\s*(import\s|export\s+(?!default\b))/m.test(source)) {
    throw new CodeMachineImportError(
      file,
      "only `export default { … }` is supported in a workflow file (no imports or named exports)",
    );
  }
  if (!/^\s*export\s+default\b/m.test(source))
    throw new CodeMachineImportError(file, "has no `export default`");
  return run(file, source.replace(/^(\s*)export\s+default\b/m, "$1module.exports ="), helpers);
}
