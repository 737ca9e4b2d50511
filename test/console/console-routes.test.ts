/**
 * The console's files over real HTTP: open without the token while the API keeps needing it, their
 * content types and cache headers, nothing outside the console's folder, a clear 404 when the
 * console is not built, and the built page loading only files of this server.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONSOLE_DIR } from "../../src/server/routes/console-routes.js";
import { type Api, startApi, TOKEN } from "../server/api-harness.js";

const NOT_BUILT = "the console is not built: run npm run build";

function consoleFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), "tgz-console-files-"));
  mkdirSync(join(dir, "static"));
  writeFileSync(join(dir, "index.html"), "<!doctype html><title>console</title>");
  writeFileSync(join(dir, "static/main.js"), "export {};\n");
  writeFileSync(join(dir, "static/console.css"), "body{}\n");
  writeFileSync(join(dir, "static/notes.txt"), "not a console file type\n");
  writeFileSync(join(dir, "secret.js"), "outside static/\n");
  return dir;
}

let api: Api;
let unbuilt: { url: string; close(): Promise<void> };
let real: { url: string; close(): Promise<void> };
const open = (base: string, path: string, headers: Record<string, string> = {}) =>
  fetch(`${base}${path}`, { headers });

beforeAll(async () => {
  api = await startApi({ consoleDir: consoleFolder() });
  unbuilt = await api.server({ apiToken: TOKEN, consoleDir: mkdtempSync(join(tmpdir(), "tgz-no-console-")) });
  real = await api.server({ apiToken: TOKEN });
});
afterAll(async () => {
  await unbuilt.close();
  await real.close();
  await api.close();
});

describe("console files", () => {
  it("serves the page at / and /console without the token, while the API still needs it", async () => {
    for (const path of ["/", "/console"]) {
      const res = await open(api.base, path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(await res.text()).toBe("<!doctype html><title>console</title>");
    }
    expect((await open(api.base, "/projects")).status).toBe(401);
  });

  it("gives each file its content type, revalidation headers and a policy that keeps the page to this server", async () => {
    const js = await open(api.base, "/console/static/main.js");
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(js.headers.get("cache-control")).toBe("no-cache");
    expect(js.headers.get("x-content-type-options")).toBe("nosniff");
    expect(js.headers.get("content-security-policy")).toContain("connect-src 'self'");
    expect(js.headers.get("content-security-policy")).toContain("default-src 'none'");
    const css = await open(api.base, "/console/static/console.css");
    expect(css.headers.get("content-type")).toBe("text/css; charset=utf-8");

    const etag = js.headers.get("etag")!;
    expect(etag).toMatch(/^W\/"[0-9a-f]+-[0-9a-f]+"$/);
    const again = await open(api.base, "/console/static/main.js", { "if-none-match": etag });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");
    const page = await open(api.base, "/console");
    expect((await open(api.base, "/console", { "if-none-match": page.headers.get("etag")! })).status).toBe(
      304,
    );
  });

  it("serves nothing but the console's own files", async () => {
    for (const path of [
      "/console/static/missing.js",
      "/console/static/notes.txt",
      "/console/static/..%2Fsecret.js",
      "/console/static/%2E%2E%2Findex.html",
      "/console/static/.hidden.js",
    ]) {
      const res = await open(api.base, path);
      expect(res.status, path).toBe(404);
      expect((await res.json()).error, path).toBe("not_found");
    }
    expect((await (await open(api.base, "/console/static/missing.js")).json()).detail).toBe(
      'console file "missing.js" not found',
    );
  });

  it("says how to build the console when it is not built", async () => {
    for (const path of ["/", "/console", "/console/static/main.js"]) {
      const res = await open(unbuilt.url, path);
      expect(res.status, path).toBe(404);
      expect((await res.json()).detail, path).toBe(NOT_BUILT);
    }
  });

  it("builds a page that loads only files this server has, and holds no token", async () => {
    expect(existsSync(join(CONSOLE_DIR, "index.html")), `${CONSOLE_DIR}: run npm run build`).toBe(true);
    const html = await (await open(real.url, "/console")).text();
    expect(html).toBe(readFileSync(join(CONSOLE_DIR, "index.html"), "utf8"));
    expect(html).not.toContain(TOKEN);
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs).toEqual(expect.arrayContaining(["/console/static/main.js", "/console/static/console.css"]));
    for (const ref of refs) {
      expect(ref, "no other host").toMatch(/^\//);
      expect((await open(real.url, ref)).status, ref).toBe(200);
    }
    // the entry is one bundle (Preact, diff2html and the console): it imports nothing, from no host,
    // and its stylesheet (diff2html's bundled in) loads nothing either
    const main = await (await open(real.url, "/console/static/main.js")).text();
    expect(main).not.toMatch(/\bimport\s*\(\s*["'`]|\b(?:from|import)\s*["'](?:\.|\/|https?:)/);
    expect(main).toContain("d2h-file-name");
    const css = await (await open(real.url, "/console/static/console.css")).text();
    expect(css).not.toMatch(/@import|url\((?!data:)/);
    expect(css).toContain(".d2h-wrapper");
  });
});
