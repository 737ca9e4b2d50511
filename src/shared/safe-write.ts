/**
 * Writing files an agent could have tampered with: the folder is created and checked, with symlinks
 * resolved, to be inside one of the allowed roots, and the file itself is opened without following a
 * symlink, so an agent cannot redirect the runner's own writes out of the worktree.
 */
import { closeSync, constants, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { TasksGodzillaError } from "./errors.js";
import { isInside } from "./paths.js";

export class UnsafePathError extends TasksGodzillaError {
  readonly code = "unsafe_path";
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`refusing to write ${path}: ${reason}`);
  }
}

export function writeFileInside(roots: readonly string[], path: string, data: string): void {
  mkdirSync(dirname(path), { recursive: true });
  if (!roots.some((root) => isInside(root, dirname(path))))
    throw new UnsafePathError(path, "its folder resolves outside the protocol folder and the worktree");
  let fd: number;
  try {
    fd = openSync(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
      0o644,
    );
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ELOOP")
      throw new UnsafePathError(path, "it is a symbolic link");
    throw err;
  }
  try {
    writeSync(fd, data);
  } finally {
    closeSync(fd);
  }
}
