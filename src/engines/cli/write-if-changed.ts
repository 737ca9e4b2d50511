/**
 * Files in a config home that every run of a project shares: written through a temporary file
 * renamed into place, so a CLI starting in another run never reads half a file.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

function intoPlace(file: string, write: (temp: string) => void): void {
  mkdirSync(dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.${Date.now()}.tmp`;
  write(temp);
  renameSync(temp, file);
}

/** Writes `text` when it differs from what the file holds. */
export function writeIfChanged(file: string, text: string): void {
  if (existsSync(file) && readFileSync(file, "utf8") === text) return;
  intoPlace(file, (temp) => writeFileSync(temp, text));
}

/** Copies `from` over `file`, keeping the source's mode (credentials stay private). */
export function copyIntoPlace(from: string, file: string): void {
  intoPlace(file, (temp) => copyFileSync(from, temp));
}
