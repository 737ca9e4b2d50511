/**
 * Package code runs isolated: no way out to process, files, processes or the network (also not through
 * the constructor of anything handed in), and a time limit that also covers promise jobs and getters.
 */
import { existsSync, mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { CodeMachineImportError } from "../../src/codemachine/import-errors.js";
import { evaluatePackageFiles } from "../../src/codemachine/sandbox-eval.js";
import { imp, importError, pkg, rootWith } from "./packages.js";

const marker = () => join(mkdtempSync(join(tmpdir(), "tgz-cm-escape-")), "written");

/** Package code that reaches for process through the function `expr`, then writes `file` and reads the environment. */
const escapeThrough = (expr: string, file: string) =>
  `const P = (${expr}).constructor('return process')();
   const fs = P.getBuiltinModule ? P.getBuiltinModule('fs') : P.mainModule.require('fs');
   fs.writeFileSync(${JSON.stringify(file)}, JSON.stringify(P.env));`;

describe("package code isolation", () => {
  it.each([
    ["require", "require"],
    ["module", "module.constructor"],
    ["exports", "exports.constructor"],
    ["console.log", "console.log"],
    ["path.join", "require('node:path').join"],
    ["the global object", "this.constructor"],
    ["an async function", "(async () => {})"],
  ])("config files cannot reach process through %s", async (_what, expr) => {
    const file = marker();
    const dir = rootWith({
      "config/main.agents.js": `${escapeThrough(expr, file)}\nmodule.exports = [{ id: 'a', name: 'A', promptPath: 'prompts/a.md' }];`,
    });
    const message = await importError(dir);
    expect(message).toContain(join(dir, "config/main.agents.js"));
    expect(message).toMatch(/EvalError: Code generation from strings disallowed/);
    expect(existsSync(file)).toBe(false);
  });

  it.each([
    ["resolveStep", "resolveStep"],
    ["resolveModule", "resolveModule"],
    ["separator", "separator"],
    ["a step resolveStep returned", "resolveStep('a').constructor"],
    ["the folder steps resolveFolder returned", "resolveFolder('a').constructor"],
  ])("workflow files cannot reach process through %s", async (_what, expr) => {
    const file = marker();
    const dir = rootWith({
      "templates/workflows/w.workflow.js": `${escapeThrough(expr, file)}\nexport default { name: 'w', steps: [resolveStep('a')] };`,
    });
    const message = await importError(dir);
    expect(message).toContain(join(dir, "templates/workflows/w.workflow.js"));
    expect(message).toMatch(/EvalError: Code generation from strings disallowed/);
    expect(existsSync(file)).toBe(false);
  });

  it.each([
    ["process.env", "module.exports = [{ id: process.env.HOME }];", /ReferenceError: process is not defined/],
    [
      "fs.writeFileSync",
      "require('fs').writeFileSync('/tmp/tgz-cm-pwned', 'x'); module.exports = [];",
      /require\('fs'\) is not allowed: package files may only require node:path/,
    ],
    [
      "child_process",
      "require('child_process').execSync('touch /tmp/tgz-cm-pwned'); module.exports = [];",
      /require\('child_process'\) is not allowed/,
    ],
    [
      "a dynamic import, also one the file catches",
      "module.exports = []; import('node:fs').catch(() => undefined);",
      /: import\('node:fs'\) is not allowed: package files may only require node:path$/,
    ],
  ])("refuses %s, naming the file", async (_what, source, message) => {
    const dir = rootWith({ "config/main.agents.js": source });
    const text = await importError(dir);
    expect(text).toContain(join(dir, "config/main.agents.js"));
    expect(text).toMatch(message);
    expect(existsSync("/tmp/tgz-cm-pwned")).toBe(false);
  });

  describe("through what import() hands back (its promise, its refusal)", () => {
    /** Package code that takes process from the constructor of import()'s promise or refusal, then runs `use(P)`. */
    const viaImport = (use: string) =>
      `module.exports = [{ id: 'a', name: 'A', promptPath: 'prompts/a.md' }];
const go = (F) => { const P = F('return process')(); ${use} };
const p = import('x');
try { go(p.constructor.constructor); } catch {}
p.catch((e) => go(e.constructor.constructor));`;
    const refused = async (use: string) => {
      const dir = rootWith({ "config/main.agents.js": viaImport(use) });
      expect(await importError(dir)).toBe(
        `${join(dir, "config/main.agents.js")}: import('x') is not allowed: package files may only require node:path`,
      );
    };

    it("writes no file", async () => {
      const file = marker();
      await refused(`P.getBuiltinModule('fs').writeFileSync(${JSON.stringify(file)}, 'x');`);
      expect(existsSync(file)).toBe(false);
    });

    it("opens no socket to a listener on 127.0.0.1", async () => {
      let connections = 0;
      const server = createServer((socket) => {
        connections++;
        socket.destroy();
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      try {
        const port = (server.address() as { port: number }).port;
        await refused(`P.getBuiltinModule('net').connect(${port}, '127.0.0.1');`);
        await sleep(300);
        expect(connections).toBe(0);
      } finally {
        server.close();
      }
    });

    it("sends no signal to the importing process", async () => {
      let signals = 0;
      const count = () => signals++;
      process.on("SIGURG", count);
      try {
        await refused("P.kill(P.ppid, 'SIGURG');");
        await sleep(300);
        expect(signals).toBe(0);
      } finally {
        process.off("SIGURG", count);
      }
    });

    it("writes nothing to the evaluator's output", async () => {
      await refused("P.stdout.write('not a message\\n');");
    });
  });

  it("hands package code nothing of the evaluator's realm (errors, descriptors, stack frames)", async () => {
    const dir = pkg({
      "c.js": `const F = Function;
const leaks = [];
const check = (what, v) => {
  if (v !== null && (typeof v === 'object' || typeof v === 'function') && v.constructor && v.constructor.constructor !== F) leaks.push(what);
};
function deep() { deep(); }
try { deep(); } catch (e) { check('a stack overflow', e); }
try { null.x; } catch (e) { check('a TypeError', e); }
try { require('fs'); } catch (e) { check('a refused require', e); }
try { Object.defineProperty(globalThis, '__tgz', { value: 1 }); } catch (e) { check('redefining the realm', e); }
check('a global descriptor', Object.getOwnPropertyDescriptor(globalThis, '__filename'));
check('the global prototype', Object.getPrototypeOf(globalThis));
Error.prepareStackTrace = (err, frames) => {
  check('the stack frames', frames);
  for (const f of frames) { check('a stack frame', f); check('a frame receiver', f.getThis()); check('a frame function', f.getFunction()); }
  return '';
};
new Error('x').stack;
module.exports = [leaks, typeof setTimeout, typeof structuredClone, typeof queueMicrotask, typeof process];`,
    });
    const values = await evaluatePackageFiles([{ file: join(dir, "c.js"), kind: "config" }], dir);
    expect(values.get(join(dir, "c.js"))).toEqual([[], "undefined", "undefined", "undefined", "undefined"]);
  });

  it("opens no network connection (net.connect and fetch to 127.0.0.1)", async () => {
    let connections = 0;
    const server = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    try {
      const viaNet = await importError(
        rootWith({
          "config/main.agents.js": `require('net').connect(${port}, '127.0.0.1'); module.exports = [];`,
        }),
      );
      expect(viaNet).toMatch(/require\('net'\) is not allowed/);
      const viaFetch = await importError(
        rootWith({ "config/main.agents.js": `fetch('http://127.0.0.1:${port}/'); module.exports = [];` }),
      );
      expect(viaFetch).toMatch(/fetch is not defined/);
      await new Promise((r) => setTimeout(r, 200));
      expect(connections).toBe(0);
    } finally {
      server.close();
    }
  });

  it.each([
    ["an endless loop", "config/main.agents.js", "while (true) {}"],
    ["an endless promise chain", "config/main.agents.js", "(function f(){ Promise.resolve().then(f) })();"],
    [
      "a promise job that loops",
      "config/main.agents.js",
      "Promise.resolve().then(() => { while (true) {} });",
    ],
    ["an async function that loops", "config/modules.js", "(async () => { await 0; while (true) {} })();"],
    [
      "a getter read while exports are checked",
      "config/main.agents.js",
      "module.exports = [{ get id() { while (true) {} } }];",
    ],
    [
      "a workflow getter",
      "templates/workflows/w.workflow.js",
      "export default { name: 'w', get steps() { while (true) {} } };",
    ],
    ["a toJSON that loops", "config/placeholders.js", "module.exports = { toJSON() { for (;;) {} } };"],
  ])("stops %s after the time limit, naming the file", async (_what, file, source) => {
    const started = Date.now();
    const dir = rootWith({ [file]: source });
    const message = await importError(dir);
    expect(message).toBe(
      `${join(dir, file)}: did not finish within 2 s (an endless loop, or a promise chain that never ends?)`,
    );
    expect(Date.now() - started).toBeLessThan(8_000);
  });

  it("stops a file that eats memory, naming the file", async () => {
    const dir = rootWith({
      "config/main.agents.js": "const a = []; while (true) a.push(new Array(1e6).fill(1.5));",
    });
    expect(await importError(dir)).toBe(
      `${join(dir, "config/main.agents.js")}: used more than 256 MB of memory`,
    );
  });

  it("stops a file that fills ArrayBuffers (which the heap limit does not bound), naming the file", async () => {
    const dir = rootWith({
      "config/main.agents.js":
        "const a = []; while (true) a.push(new Uint8Array(256 * 1024 * 1024).fill(1));",
    });
    expect(await importError(dir)).toBe(
      `${join(dir, "config/main.agents.js")}: RangeError: Array buffer allocation failed`,
    );
  });

  it("stops a file whose exports are more than 16 MB, naming the file", async () => {
    const dir = pkg({ "c.js": "module.exports = 'x'.repeat(20 * 1024 * 1024);" });
    const err = await evaluatePackageFiles([{ file: join(dir, "c.js"), kind: "config" }], dir).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(CodeMachineImportError);
    expect(err.message).toBe(
      `${join(dir, "c.js")}: the package evaluator sent more than 16 MB (exports that large are not supported)`,
    );
  });

  it("gives package code a node:path that behaves as Node's posix path", async () => {
    const cases: [string, unknown[]][] = [
      ["join", ["/a/b", "../c", "./d.md"]],
      ["join", ["a", "", "b/"]],
      ["join", []],
      ["join", ["..", "x", "../../y"]],
      ["resolve", ["/pkg", "prompts", "../x.md"]],
      ["resolve", ["/a/", "/b", "c/"]],
      ["normalize", ["a//b/../c/."]],
      ["normalize", ["/../a/"]],
      ["normalize", [""]],
      ["dirname", ["/a/b/c.md"]],
      ["dirname", ["a"]],
      ["dirname", ["/a"]],
      ["dirname", ["/a/b/"]],
      ["basename", ["/a/b/c.md"]],
      ["basename", ["/a/b/c.md", ".md"]],
      ["basename", ["/a/b/"]],
      ["extname", ["x/.env"]],
      ["extname", ["x/a.b.md"]],
      ["extname", ["index."]],
      ["relative", ["/a/b/c", "/a/d"]],
      ["relative", ["/a", "/a"]],
      ["isAbsolute", ["/x"]],
      ["isAbsolute", ["x"]],
      ["parse", ["/home/u/file.txt"]],
      ["format", [{ dir: "/a", base: "b.md" }]],
    ];
    const dir = pkg({
      "config/cases.js": `const path = require('node:path');
module.exports = ${JSON.stringify(cases)}.map(([fn, args]) => path[fn](...args));`,
    });
    const values = await evaluatePackageFiles([{ file: join(dir, "config/cases.js"), kind: "config" }], dir);
    const expected = cases.map(([fn, args]) => (posix as any)[fn](...args));
    expect(values.get(join(dir, "config/cases.js"))).toEqual(expected);
    // path.resolve starts from the package root
    const cwd = pkg({ "c.js": "module.exports = require('path').resolve('prompts/a.md');" });
    const resolved = await evaluatePackageFiles([{ file: join(cwd, "c.js"), kind: "config" }], cwd);
    expect(resolved.get(join(cwd, "c.js"))).toBe(join(cwd, "prompts/a.md"));
  });

  it("reports values that are not data by what they are", async () => {
    const dir = rootWith({
      "config/main.agents.js": "module.exports = [{ id: 'a', name: 'A', promptPath: () => 'prompts/a.md' }];",
    });
    expect(await importError(dir)).toMatch(
      /main\.agents\.js: module\.exports\[0\] \(agent a\): promptPath: expected a prompt file path or a non-empty list of them, got a function/,
    );
    const ok = await imp(
      rootWith({
        "config/main.agents.js": "module.exports = [{ id: 'a', name: 'A', promptPath: 'prompts/a.md' }];",
      }),
    );
    expect(ok.spec.steps.map((s) => s.id)).toEqual(["a"]);
  });
});
