/**
 * The last line of a (possibly large, append-only) log or session file that contains a string, read
 * from the end so a long history costs no more than its tail.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

const FIRST_WINDOW = 64 * 1024;

export function lastLineContaining(file: string, needle: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch {
    return undefined;
  }
  try {
    const size = fstatSync(fd).size;
    for (let window = FIRST_WINDOW; ; window *= 4) {
      const start = Math.max(0, size - window);
      const buf = Buffer.alloc(size - start);
      readSync(fd, buf, 0, buf.length, start);
      const lines = buf.toString("utf8").split("\n");
      // the window's first line may be cut: it is read whole with the next, larger window
      if (start > 0) lines.shift();
      for (let i = lines.length - 1; i >= 0; i--) if (lines[i]!.includes(needle)) return lines[i];
      if (start === 0) return undefined;
    }
  } finally {
    closeSync(fd);
  }
}
