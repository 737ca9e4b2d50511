// `npm run build:console`: bundles the console (Preact, diff2html and our modules) into one module and
// one stylesheet in a fresh dist/console/static, beside its page. Everything the page loads is served
// by `tgz server`: nothing comes from another host.
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";

const src = import.meta.dirname;
const out = join(src, "../dist/console");
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "static"), { recursive: true });
copyFileSync(join(src, "index.html"), join(out, "index.html"));
await build({
  entryPoints: { main: join(src, "src/main.tsx"), console: join(src, "console.css") },
  outdir: join(out, "static"),
  bundle: true,
  format: "esm",
  // what a current Chromium, Firefox or Safari runs
  target: ["es2022", "chrome110", "firefox110", "safari16"],
  jsx: "automatic",
  jsxImportSource: "preact",
  minify: true,
  sourcemap: false,
  legalComments: "eof",
  logLevel: "warning",
});
