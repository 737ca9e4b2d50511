/**
 * Telling a process apart from a later one that reused its pid: Linux records each process's start
 * time (clock ticks since boot) in /proc/<pid>/stat. Elsewhere nothing is known, and nothing is killed.
 */
import { hostname } from "node:os";
import { descendants, signalTree, statOf } from "./process-tree.js";

/** Where an engine process ran, recorded so a runner that takes over can stop what a dead one left. */
export interface ProcessIdentity {
  host: string;
  pid: number;
  startTime: string;
}

export function identify(pid: number): ProcessIdentity | null {
  const s = statOf(pid);
  return s === null ? null : { host: hostname(), pid, startTime: s.startTime };
}

/**
 * Kills the process group an engine ran in, and the processes below it in groups of their own, when
 * it is still alive on this host and is the very process that was recorded. Returns whether it did.
 */
export function killOrphan(identity: ProcessIdentity): boolean {
  if (identity.host !== hostname() || statOf(identity.pid)?.startTime !== identity.startTime) return false;
  const tree = descendants(identity.pid);
  try {
    process.kill(-identity.pid, "SIGKILL");
  } catch {
    return false;
  }
  signalTree(tree, "SIGKILL");
  return true;
}
