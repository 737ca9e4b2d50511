/** Where the embedded database lives: flag > TASKSGODZILLA_DB_URL > TASKSGODZILLA_DB_PATH > per-user data dir. */
import { homedir } from "node:os";
import { join } from "node:path";

export interface StoreLocation {
  url?: string;
  sqlitePath?: string;
}

export function dataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TASKSGODZILLA_DATA_DIR) return env.TASKSGODZILLA_DATA_DIR;
  const base = env.XDG_DATA_HOME || join(homedir(), ".local", "share");
  return join(base, "tasksgodzilla");
}

export function storeLocation(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): StoreLocation {
  const value = flag ?? env.TASKSGODZILLA_DB_URL ?? env.TASKSGODZILLA_DB_PATH;
  if (value && /^postgres(ql)?:\/\//.test(value)) return { url: value };
  if (value) return { sqlitePath: value };
  return { sqlitePath: join(dataDir(env), "tasksgodzilla.db") };
}
