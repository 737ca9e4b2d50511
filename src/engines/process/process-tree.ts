/**
 * The processes below an engine process, read from /proc. Killing the engine's process group is not
 * enough: some CLIs (opencode, Gemini in yolo mode) start their tool commands in process groups of
 * their own, and those would outlive the CLI, reparented to init. They are found by parentage while
 * the CLI still lives. Elsewhere than Linux nothing is found, and only the group is killed.
 */
import { readdirSync, readFileSync } from "node:fs";

export interface ProcessStat {
  pid: number;
  ppid: number;
  pgid: number;
  /** Clock ticks since boot: tells a process apart from a later one that reused its pid. */
  startTime: string;
  zombie: boolean;
}

export function statOf(pid: number): ProcessStat | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // the command name (field 2) may hold spaces and parentheses: fields are counted after its last ")"
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { pid, ppid: Number(f[1]), pgid: Number(f[2]), startTime: f[19] ?? "", zombie: f[0] === "Z" };
  } catch {
    return null;
  }
}

function allProcesses(): ProcessStat[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    const s = /^\d+$/.test(e) ? statOf(Number(e)) : null;
    return s && !s.zombie ? [s] : [];
  });
}

/**
 * Every live process below `root`. Read again until two readings agree, so a child forked while the
 * table was read is not missed.
 */
export function descendants(root: number): ProcessStat[] {
  let found = new Map<number, ProcessStat>();
  for (let pass = 0; pass < 5; pass++) {
    const children = new Map<number, ProcessStat[]>();
    for (const p of allProcesses()) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
    const next = new Map<number, ProcessStat>();
    const queue = [root];
    while (queue.length > 0) {
      for (const c of children.get(queue.shift()!) ?? []) {
        if (next.has(c.pid)) continue;
        next.set(c.pid, c);
        queue.push(c.pid);
      }
    }
    const stable = next.size === found.size && [...next.keys()].every((pid) => found.has(pid));
    found = next;
    if (stable) break;
  }
  return [...found.values()];
}

/** This process's own group, never to be signalled. */
const OWN_GROUP = statOf(process.pid)?.pgid;

/**
 * Signals each process of `tree` that is still the very process recorded, and the process group it
 * leads when it leads one of its own (what it started since goes too).
 */
export function signalTree(tree: ProcessStat[], signal: NodeJS.Signals): void {
  for (const p of tree) {
    if (statOf(p.pid)?.startTime !== p.startTime) continue;
    try {
      if (p.pgid === p.pid && p.pgid !== OWN_GROUP) process.kill(-p.pgid, signal);
      else process.kill(p.pid, signal);
    } catch {
      // it ended in the meantime
    }
  }
}
