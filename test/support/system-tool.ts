/**
 * Tests that drive a Debian-packaged tool (Chromium, gh): in CI the tool must be there (`.ci/run`
 * installs it); elsewhere its absence skips those tests, said so by name.
 */
import { existsSync } from "node:fs";

export function systemToolPresent(path: string, tests: string, debianPackage: string): boolean {
  if (existsSync(path)) return true;
  if (process.env.CI === "true")
    throw new Error(`${path} is missing: ${tests} need Debian's ${debianPackage} package`);
  console.log(`skipped: ${tests} (${path} is not installed; apt-get install ${debianPackage})`);
  return false;
}
