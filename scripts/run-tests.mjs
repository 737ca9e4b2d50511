#!/usr/bin/env node
// Runs vitest with a JSON report beside the normal output, then names every skipped test on a
// "skipped: <file> > <test>" line and prints one line "N passed, N failed, N skipped" summing every
// test, and exits with vitest's own status.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { relative } from "node:path";

const report = "test-results/vitest.json";
mkdirSync("test-results", { recursive: true });
rmSync(report, { force: true });
const args = [
  "vitest",
  "run",
  "--reporter=default",
  "--reporter=json",
  `--outputFile.json=${report}`,
  ...process.argv.slice(2),
];
const result = spawnSync("npx", args, { stdio: "inherit" });

let passed = 0;
let failed = 0;
let skipped = 0;
if (existsSync(report)) {
  const json = JSON.parse(readFileSync(report, "utf8"));
  passed = json.numPassedTests ?? 0;
  failed =
    (json.numFailedTests ?? 0) +
    (json.numFailedTestSuites > 0 && json.numFailedTests === 0 ? json.numFailedTestSuites : 0);
  skipped = (json.numPendingTests ?? 0) + (json.numTodoTests ?? 0);
  for (const file of json.testResults ?? [])
    for (const test of file.assertionResults ?? [])
      if (["skipped", "pending", "todo"].includes(test.status))
        console.log(`skipped: ${relative(process.cwd(), file.name)} > ${test.fullName}`);
} else {
  failed = 1;
}
const status = result.status ?? 1;
if (status !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(status);
