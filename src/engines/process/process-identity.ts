/**
 * Telling a process apart from a later one that reused its pid: Linux records each process's start
 * time (clock ticks since boot) in /proc/<pid>/stat. Elsewhere nothing is known, and nothing is killed.
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";

/** Where an engine process ran, recorded so a runner that takes over can stop what a dead one left. */
export interface ProcessIdentity {
  host: string;
  pid: number;
  startTime: string;
}

function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // the command name (field 2) may hold spaces and parentheses: fields are counted after its last ")"
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

export function identify(pid: number): ProcessIdentity | null {
  const t = startTime(pid);
  return t === null ? null : { host: hostname(), pid, startTime: t };
}

/**
 * Kills the process group an engine ran in when it is still alive on this host and is the very
 * process that was recorded. Returns whether it did.
 */
export function killOrphan(identity: ProcessIdentity): boolean {
  if (identity.host !== hostname() || startTime(identity.pid) !== identity.startTime) return false;
  try {
    process.kill(-identity.pid, "SIGKILL");
    return true;
  } catch {
    return false;
  }
}
