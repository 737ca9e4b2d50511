// `npm run build`, before tsc compiles the modules into dist/console/static: a fresh dist/console
// (no module left from an older build) with the page and its stylesheet.
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const src = import.meta.dirname;
const out = join(src, "../dist/console");
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "static"), { recursive: true });
copyFileSync(join(src, "index.html"), join(out, "index.html"));
copyFileSync(join(src, "console.css"), join(out, "static/console.css"));
