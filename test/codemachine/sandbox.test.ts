/**
 * Package code runs isolated: no way out to process, files, processes or the network (also not through
 * the constructor of anything handed in), and a time limit that also covers promise jobs and getters.
 */
import { existsSync, mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { describe, expect, it } from "vitest";
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
      "a dynamic import",
      "module.exports = [{ id: typeof import('node:fs').then }]; fetch('x');",
      /ReferenceError: fetch is not defined/,
    ],
  ])("refuses %s, naming the file", async (_what, source, message) => {
    const dir = rootWith({ "config/main.agents.js": source });
    const text = await importError(dir);
    expect(text).toContain(join(dir, "config/main.agents.js"));
    expect(text).toMatch(message);
    expect(existsSync("/tmp/tgz-cm-pwned")).toBe(false);
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
