/**
 * The JavaScript that evaluates package files, as source text: it runs in a separate Node process
 * (see sandbox-eval.ts), so it cannot share code with this one.
 *
 * REALM_SOURCE runs first inside each file's vm context and builds everything the package code may
 * touch — `module`, `exports`, `require` (node:path only), `console`, `path` and the workflow
 * helpers — out of that context's own objects. No object of the host is handed in (the context's
 * global is a null-prototype object holding strings only), so no `.constructor` chain leads to the
 * host's `Function` and from there to `process`.
 *
 * The workflow helpers only record their calls ({$helper, args}); the calls are resolved against the
 * catalog by the importer, after the file's value has left the process as JSON.
 */

export const REALM_SOURCE = String.raw`
(function (g) {
  "use strict";
  const stringify = JSON.stringify;
  const isFinite = Number.isFinite;
  const fail = (message) => { throw new TypeError(message); };
  const str = (name, v) => (typeof v === "string" ? v : fail("The \"" + name + "\" argument must be of type string"));
  const parts = (p, aboveRoot) => {
    const out = [];
    for (const seg of p.split("/")) {
      if (seg === "" || seg === ".") continue;
      if (seg === "..") {
        if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
        else if (aboveRoot) out.push("..");
      } else out.push(seg);
    }
    return out;
  };
  const trimEnd = (p) => { let e = p.length; while (e > 1 && p[e - 1] === "/") e--; return p.slice(0, e); };
  const path = {
    sep: "/",
    delimiter: ":",
    isAbsolute: (p) => str("path", p).startsWith("/"),
    normalize(p) {
      str("path", p);
      if (p === "") return ".";
      const abs = p.startsWith("/");
      let s = parts(p, !abs).join("/");
      if (s === "" && !abs) s = ".";
      if (s !== "" && p.endsWith("/")) s += "/";
      return (abs ? "/" : "") + s;
    },
    join(...args) {
      for (const a of args) str("path", a);
      const joined = args.filter((a) => a !== "").join("/");
      return joined === "" ? "." : path.normalize(joined);
    },
    resolve(...args) {
      let resolved = "";
      for (let i = args.length - 1; i >= -1 && !resolved.startsWith("/"); i--) {
        const p = i >= 0 ? str("paths[" + i + "]", args[i]) : g.__tgz_cwd;
        if (p !== "") resolved = resolved === "" ? p : p + "/" + resolved;
      }
      return "/" + parts(resolved, false).join("/");
    },
    relative(from, to) {
      const a = parts(path.resolve(from), false);
      const b = parts(path.resolve(to), false);
      let i = 0;
      while (i < a.length && i < b.length && a[i] === b[i]) i++;
      return a.slice(i).map(() => "..").concat(b.slice(i)).join("/");
    },
    dirname(p) {
      str("path", p);
      if (p === "") return ".";
      const t = trimEnd(p);
      const i = t.lastIndexOf("/");
      if (i < 0) return ".";
      if (i === 0) return "/";
      return trimEnd(t.slice(0, i));
    },
    basename(p, ext) {
      str("path", p);
      const t = trimEnd(p);
      const base = t === "/" ? "" : t.slice(t.lastIndexOf("/") + 1);
      return typeof ext === "string" && ext !== base && base.endsWith(ext) ? base.slice(0, base.length - ext.length) : base;
    },
    extname(p) {
      const base = path.basename(p);
      const i = base.lastIndexOf(".");
      return i <= 0 ? "" : base.slice(i);
    },
    parse(p) {
      const root = str("path", p).startsWith("/") ? "/" : "";
      const base = path.basename(p);
      const ext = path.extname(p);
      const dir = p.includes("/") ? path.dirname(p) : "";
      return { root, dir, base, ext, name: base.slice(0, base.length - ext.length) };
    },
    format(o) {
      const base = o.base || (o.name || "") + (o.ext || "");
      const dir = o.dir || o.root || "";
      return dir === "" ? base : dir === o.root ? dir + base : dir + "/" + base;
    },
    toNamespacedPath: (p) => p,
  };
  path.posix = path;

  const module = { exports: {} };
  g.module = module;
  g.exports = module.exports;
  g.require = function require(name) {
    if (name === "path" || name === "node:path" || name === "path/posix" || name === "node:path/posix") return path;
    throw new Error("require('" + String(name) + "') is not allowed: package files may only require node:path");
  };
  const quiet = () => undefined;
  g.console = { log: quiet, info: quiet, warn: quiet, error: quiet, debug: quiet, trace: quiet };

  if (g.__tgz_workflow) {
    const call = (helper, fields) => function (...args) { return Object.assign({ $helper: helper, args }, fields(...args)); };
    g.resolveStep = call("resolveStep", (id) => ({ type: "module", agentId: id }));
    g.resolveModule = call("resolveModule", (id) => ({ type: "module", agentId: id }));
    g.resolveUI = call("resolveUI", (text) => ({ type: "ui", text }));
    g.separator = call("separator", (text) => ({ type: "separator", text }));
    g.controller = call("controller", (id) => ({ type: "controller", agentId: id }));
    // spread into steps (...resolveFolder(id)); the importer expands it into the folder's steps
    g.resolveFolder = function resolveFolder(...args) { return [{ $helper: "resolveFolder", args }]; };
  }

  const unsupported = (v) => {
    if (typeof v === "function") return { $unsupported: "a function" };
    if (typeof v === "symbol") return { $unsupported: "a symbol" };
    if (typeof v === "bigint") return { $unsupported: "a bigint" };
    if (typeof v === "number" && !isFinite(v)) return { $unsupported: String(v) };
    return v;
  };
  const ContextError = Error;
  Object.defineProperty(g, "__tgz", {
    value: Object.freeze({
      // the evaluator's refusals reach package code as this context's errors, never as its own
      error: (message) => new ContextError(message),
      finish: () => stringify({ value: module.exports }, (_key, v) => unsupported(v)),
      describe(e) {
        if (e !== null && typeof e === "object" && typeof e.message === "string")
          return (typeof e.name === "string" ? e.name : "Error") + ": " + e.message;
        return "threw " + String(e);
      },
    }),
  });
})(globalThis);
`;

/**
 * The evaluator process: reads {cwd, limitMs, realm, files: [{file, kind, source}]} as JSON on stdin
 * and writes one JSON line per event: {start: file} before a file runs, then {file, json} or
 * {file, error} or {file, timeout: true}. Each file gets a fresh context and `limitMs` in all
 * (its code, the promise jobs it queues, and reading its exports, getters included).
 *
 * `import()` is answered by the scripts' own callback with an error made inside the context (the
 * default answer is an error of this process's realm, whose constructor is this realm's Function),
 * and the file fails even if it catches the refusal.
 */
export const EVALUATOR_SOURCE = String.raw`
"use strict";
const vm = require("node:vm");
const { dirname } = require("node:path");
const { types } = require("node:util");
const stdout = process.stdout;
const emit = (msg) => stdout.write(JSON.stringify(msg) + "\n");
const isTimeout = (e) =>
  !types.isProxy(e) && types.isNativeError(e) &&
  (Object.getOwnPropertyDescriptor(e, "code") || {}).value === "ERR_SCRIPT_EXECUTION_TIMEOUT";
const importRefused = (specifier) =>
  "import('" + specifier + "') is not allowed: package files may only require node:path";

/** Whether v belongs to this process's realm (such a value is never handed into a context). */
function ownRealm(v) {
  if (v === null || (typeof v !== "object" && typeof v !== "function")) return false;
  for (let o = v; o !== null; o = Object.getPrototypeOf(o)) {
    if (types.isProxy(o)) return false;
    if (o === Object.prototype) return true;
  }
  return false;
}

function evaluateFile(input, f, onImport) {
  const started = Date.now();
  const left = () => Math.max(1, input.limitMs - (Date.now() - started));
  const global = Object.create(null);
  global.__filename = f.file;
  global.__dirname = dirname(f.file);
  global.__tgz_cwd = input.cwd;
  global.__tgz_workflow = f.kind === "workflow";
  const context = vm.createContext(global, {
    codeGeneration: { strings: false, wasm: false },
    microtaskMode: "afterEvaluate",
  });
  let refusal;
  const importModuleDynamically = (specifier) => {
    onImport(specifier);
    throw refusal(importRefused(specifier));
  };
  const compile = (source, filename) => new vm.Script(source, { filename, importModuleDynamically });
  compile(input.realm, "realm.js").runInContext(context, { timeout: left() });
  refusal = compile("__tgz.error", "realm.js").runInContext(context);
  let script;
  try {
    script = compile(f.source, f.file);
  } catch (e) {
    return { file: f.file, error: e.name + ": " + e.message };
  }
  const failed = (e, prefix) => {
    if (isTimeout(e)) return { file: f.file, timeout: true };
    if (ownRealm(e))
      return { file: f.file, error: prefix + (types.isNativeError(e) ? e.name + ": " + e.message : "threw a value that cannot be shown") };
    global.__tgz_thrown = e;
    let text;
    try {
      text = compile("__tgz.describe(__tgz_thrown)", "realm.js").runInContext(context, { timeout: left() });
    } catch (e2) {
      if (isTimeout(e2)) return { file: f.file, timeout: true };
    }
    return { file: f.file, error: prefix + (typeof text === "string" ? text : "threw a value that cannot be shown") };
  };
  try {
    script.runInContext(context, { timeout: left() });
  } catch (e) {
    return failed(e, "");
  }
  try {
    const json = compile("__tgz.finish()", "realm.js").runInContext(context, { timeout: left() });
    return typeof json === "string" ? { file: f.file, json } : { file: f.file, error: "its exports cannot be read as data" };
  } catch (e) {
    return failed(e, "its exports cannot be read as data: ");
  }
}

function evaluate(input, f) {
  let refused;
  const result = evaluateFile(input, f, (specifier) => {
    if (refused === undefined) refused = specifier;
  });
  return refused === undefined ? result : { file: f.file, error: importRefused(refused) };
}

/**
 * Should package code ever reach this realm despite the contexts and the flags this process runs
 * with, it finds no module loader, no signals and no bindings to native code (Node 20's permission
 * model does not cover the network or signals).
 */
function lockDown() {
  for (const name of ["require", "module", "exports", "__filename", "__dirname"]) delete globalThis[name];
  for (const name of ["kill", "_kill", "binding", "_linkedBinding", "dlopen", "getBuiltinModule", "mainModule"])
    Object.defineProperty(process, name, { value: undefined, writable: false, configurable: false });
}

// a package's stray promise must not end the evaluator
process.on("unhandledRejection", () => undefined);
let text = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { text += chunk; });
process.stdin.on("end", () => {
  const input = JSON.parse(text);
  lockDown();
  for (const f of input.files) {
    emit({ start: f.file });
    emit(evaluate(input, f));
  }
});
`;
