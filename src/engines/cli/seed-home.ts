/**
 * `seed_from_user`: copies the user's own CLI config and credentials into an isolated config home.
 * A file is copied when the home has no copy yet or when the user's file changed since it was last
 * copied (a new login, an edited config). A copy the CLI rewrote itself (refreshed tokens) stays as
 * long as the user's file is unchanged. Digests of what was copied are kept in `seeded.json`.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { copyIntoPlace, writeIfChanged } from "./write-if-changed.js";

export interface SeedFile {
  /** Path under the user's home folder. */
  from: string;
  /** Path under the isolated home. */
  to: string;
}

function readRecord(file: string): Record<string, string> {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as Record<string, string>;
  } catch {
    return {}; // no record yet (or an unreadable one): every file counts as changed
  }
}

/** Returns the isolated-home paths it copied. */
export function seedHome(home: string, stateDir: string, userHome: string, files: SeedFile[]): string[] {
  const recordFile = join(stateDir, "seeded.json");
  const record = readRecord(recordFile);
  const copied: string[] = [];
  for (const f of files) {
    const from = join(userHome, f.from);
    if (!existsSync(from)) continue;
    const to = join(home, f.to);
    const digest = createHash("sha256").update(readFileSync(from)).digest("hex");
    if (existsSync(to) && record[f.to] === digest) continue;
    copyIntoPlace(from, to);
    record[f.to] = digest;
    copied.push(f.to);
  }
  if (copied.length > 0) writeIfChanged(recordFile, `${JSON.stringify(record, null, 2)}\n`);
  return copied;
}
