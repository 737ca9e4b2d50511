/** Process checks for tests that prove a timeout or abort left nothing running. */
import { readFileSync } from "node:fs";

/** True when `pid` no longer runs: no such process, or a zombie waiting for a (slow) reaper. */
export function processGone(pid: number): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return /^State:\s+Z/m.test(status);
  } catch {
    return true;
  }
}

/** Polls until `pid` is gone or `ms` pass; returns whether it is gone. */
export async function waitGone(pid: number, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (processGone(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return processGone(pid);
}
