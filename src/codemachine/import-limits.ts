/**
 * How much a package may bring in at import: every file it names is read through one budget, so a
 * prompt, a placeholder file, a glob or a chained-prompts folder that is too big (or too many files)
 * stops the import with an error naming the file and field, before anything large is read.
 */
import { readFileSync, statSync } from "node:fs";
import { relative } from "node:path";
import { CodeMachineImportError } from "./import-errors.js";

const MB = 1024 * 1024;

export const IMPORT_LIMITS = {
  /** Files one glob (`dir/*.md`) or one chained-prompts folder may bring in. */
  files: 500,
  /** Bytes of one file, and of all the files of one glob or folder together. */
  bytes: 8 * MB,
  /** Bytes of everything one import reads. */
  totalBytes: 64 * MB,
} as const;

/** The file and entry that named a path, for messages: `w.workflow.js`, `steps[2] (resolveStep 'a')`. */
export interface Asker {
  file: string;
  where: string;
}

export function refuse(asker: Asker, field: string, message: string): CodeMachineImportError {
  return new CodeMachineImportError(asker.file, `${asker.where}: ${field}: ${message}`);
}

const mb = (bytes: number) => `${(bytes / MB).toFixed(1)} MB`;

/** Refuses more files than one entry may bring in (checked on names, before any file is read). */
export function checkFileCount(
  count: number,
  shown: string,
  asker: Asker,
  field: string,
  what: string,
): void {
  if (count > IMPORT_LIMITS.files)
    throw refuse(
      asker,
      field,
      `"${shown}" ${what} ${count} files, more than the ${IMPORT_LIMITS.files} one entry may bring in; name fewer files`,
    );
}

/** Refuses files that together are bigger than one entry may bring in. */
export function checkFileSize(
  files: string[],
  shown: string,
  asker: Asker,
  field: string,
  what: string,
): void {
  const bytes = files.reduce((sum, f) => sum + statSync(f).size, 0);
  if (bytes > IMPORT_LIMITS.bytes)
    throw refuse(
      asker,
      field,
      `"${shown}" ${what} ${mb(bytes)} of files, more than the ${mb(IMPORT_LIMITS.bytes)} one entry may bring in`,
    );
}

/** Reads package files, each within the per-file limit and all of them within the per-import limit. */
export class ReadBudget {
  private total = 0;

  constructor(private readonly root: string) {}

  read(file: string, asker: Asker, field: string): string {
    const size = statSync(file).size;
    const shown = relative(this.root, file) || file;
    if (size > IMPORT_LIMITS.bytes)
      throw refuse(
        asker,
        field,
        `"${shown}" is ${mb(size)}, more than the ${mb(IMPORT_LIMITS.bytes)} a package file may have`,
      );
    this.total += size;
    if (this.total > IMPORT_LIMITS.totalBytes)
      throw refuse(
        asker,
        field,
        `reading "${shown}" brings the files this import reads to more than ${mb(IMPORT_LIMITS.totalBytes)}`,
      );
    return readFileSync(file, "utf8");
  }
}
