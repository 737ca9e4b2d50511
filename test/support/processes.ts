/** Process checks for tests that prove a timeout or abort left nothing running. */
import { readdirSync, readFileSync } from "node:fs";

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

/** Live (non-zombie) processes whose process group is `pgid`. */
export function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(pgrp) === pgid && state !== "Z") members.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return members;
}

/** Polls until no live process is left in group `pgid`. */
export async function waitGroupGone(pgid: number, ms = 5000): Promise<number[]> {
  const end = Date.now() + ms;
  while (Date.now() < end && groupMembers(pgid).length > 0) await new Promise((r) => setTimeout(r, 100));
  return groupMembers(pgid);
}
