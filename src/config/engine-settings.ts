/**
 * Per-engine settings: the project file's `engines.<id>` over `TASKSGODZILLA_ENGINE_<ID>_<KEY>`
 * variables, with an isolated config home per project under the data dir by default.
 */
import { createHash } from "node:crypto";
import { basename, join, resolve } from "node:path";
import type { EngineSettings } from "../engines/engine-port.js";
import type { EngineRegistry } from "../engines/engine-registry.js";
import { InvalidInputError } from "../shared/errors.js";
import type { EngineSettingsFile } from "./config-schema.js";
import { dataDir } from "./data-paths.js";

const ENV_KEY =
  /^TASKSGODZILLA_ENGINE_([A-Z0-9_]+?)_(BINARY|BASE_URL|ARGS|PROVIDER|HOME|ENV|CONFIG_OVERRIDES|SEED_FROM_USER)$/;

/** A `TASKSGODZILLA_ENGINE_*` variable whose value does not fit its setting. */
export class EngineSettingsError extends InvalidInputError {}

function fromFile(f: EngineSettingsFile): EngineSettings {
  return {
    binary: f.binary,
    args: f.args,
    env: f.env,
    baseUrl: f.base_url,
    configOverrides: f.config_overrides,
    provider: f.provider,
    home: f.home,
    seedFromUser: f.seed_from_user,
  };
}

/** `KEY=value` pairs separated by whitespace (values with spaces belong in the config file). */
function envPairs(key: string, value: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of value.split(/\s+/).filter(Boolean)) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new EngineSettingsError(`${key}: "${pair}" is not KEY=value`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

function oneOf<T extends string>(key: string, value: string, allowed: readonly T[]): T {
  if (!allowed.includes(value as T))
    throw new EngineSettingsError(`${key}=${value}: expected one of ${allowed.join(", ")}`);
  return value as T;
}

function fromEnv(env: NodeJS.ProcessEnv): Record<string, EngineSettings> {
  const out: Record<string, EngineSettings> = {};
  for (const [key, value] of Object.entries(env)) {
    const m = ENV_KEY.exec(key);
    if (!m || !value) continue;
    const id = m[1]!.toLowerCase().replaceAll("_", "-");
    const s: EngineSettings = out[id] ?? { sources: [] };
    out[id] = s;
    s.sources!.push(key);
    switch (m[2]) {
      case "BINARY":
        s.binary = value;
        break;
      case "BASE_URL":
        s.baseUrl = value;
        break;
      case "PROVIDER":
        s.provider = value;
        break;
      case "HOME":
        s.home = oneOf(key, value, ["isolated", "user"] as const);
        break;
      case "ENV":
        s.env = envPairs(key, value);
        break;
      case "CONFIG_OVERRIDES":
        // one per line: TOML values hold spaces and commas
        s.configOverrides = value
          .split("\n")
          .map((l) => l.trim())
          .filter(Boolean);
        break;
      case "SEED_FROM_USER":
        s.seedFromUser = oneOf(key, value, ["true", "false"] as const) === "true";
        break;
      default:
        // space-separated; arguments with spaces belong in the config file
        s.args = value.split(/\s+/).filter(Boolean);
    }
  }
  return out;
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A readable, collision-free folder name for a repository: `<basename>-<hash of its path>`. */
export function projectKey(repoDir: string | undefined): string {
  const repo = resolve(repoDir ?? ".");
  return `${basename(repo)}-${createHash("sha256").update(repo).digest("hex").slice(0, 8)}`;
}

/** Config homes are per project: sessions and caches of one repository never leak into another. */
export function engineHomeRoot(repoDir: string | undefined, env: NodeJS.ProcessEnv): string {
  return join(dataDir(env), "engine-homes", projectKey(repoDir));
}

export function engineSettings(
  file: Record<string, EngineSettingsFile>,
  repoDir: string | undefined,
  env: NodeJS.ProcessEnv,
): Record<string, EngineSettings> {
  const root = engineHomeRoot(repoDir, env);
  const envSettings = fromEnv(env);
  const ids = new Set([...Object.keys(file), ...Object.keys(envSettings)]);
  const out: Record<string, EngineSettings> = {};
  for (const id of ids) {
    out[id] = {
      homeDir: join(root, id),
      ...defined(envSettings[id] ?? {}),
      ...defined(fromFile(file[id] ?? {})),
      sources: [...(file[id] ? [`engines.${id}`] : []), ...(envSettings[id]?.sources ?? [])],
    };
  }
  return out;
}

/** Settings given for an engine id the registry does not have: a typo that would be ignored. */
export interface UnknownEngineSettings {
  id: string;
  /** Where they were given: `engines.<id>` of the config file, `TASKSGODZILLA_ENGINE_*` variables. */
  sources: string[];
}

export function unknownEngineSettings(
  config: { engines: Record<string, EngineSettings> },
  registry: Pick<EngineRegistry, "has">,
): UnknownEngineSettings[] {
  return Object.entries(config.engines)
    .filter(([id]) => !registry.has(id))
    .map(([id, s]) => ({ id, sources: s.sources ?? [] }));
}

export class UnknownEngineSettingsError extends InvalidInputError {
  constructor(
    readonly unknown: UnknownEngineSettings[],
    known: string[],
    configFile: string | undefined,
  ) {
    const where = (u: UnknownEngineSettings) =>
      u.sources
        .map((src) => (src.startsWith("engines.") && configFile ? `${src} in ${configFile}` : src))
        .join(", ");
    super(
      `settings for unknown engine${unknown.length > 1 ? "s" : ""} ${unknown
        .map((u) => `"${u.id}" (${where(u)})`)
        .join(", ")}; known engines: ${known.join(", ")}`,
    );
  }
}

/** Refuses settings for engines that do not exist, naming where they were given and the known ids. */
export function assertKnownEngineSettings(
  config: { engines: Record<string, EngineSettings>; configFile?: string | undefined },
  registry: Pick<EngineRegistry, "has" | "ids">,
): void {
  const unknown = unknownEngineSettings(config, registry);
  if (unknown.length > 0) throw new UnknownEngineSettingsError(unknown, registry.ids(), config.configFile);
}

/** Settings for one engine, with the default home when nothing is configured for it. */
export function settingsFor(
  all: Record<string, EngineSettings>,
  id: string,
  homeRoot: string,
): EngineSettings {
  return all[id] ?? { homeDir: join(homeRoot, id) };
}
