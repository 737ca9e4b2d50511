/** The agent catalog of a package: main agents, sub-agents, modules and placeholders, from config/*.js. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { PackageLocation } from "./find-package.js";
import { CodeMachineImportError } from "./import-errors.js";
import { evalConfigFile } from "./sandbox-eval.js";

const promptPath = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

export const Agent = z.looseObject({
  id: z.string().min(1),
  name: z.string().optional(),
  description: z.string().optional(),
  promptPath: promptPath.optional(),
  mirrorPath: z.string().optional(),
  chainedPromptsPath: z.array(z.union([z.string(), z.looseObject({ path: z.string() })])).optional(),
  engine: z.string().optional(),
  model: z.string().optional(),
  modelReasoningEffort: z.string().optional(),
  type: z.string().optional(),
  behavior: z
    .looseObject({
      type: z.string(),
      action: z.string().optional(),
      steps: z.number().int().optional(),
      maxIterations: z.number().int().optional(),
      skip: z.array(z.string()).optional(),
    })
    .optional(),
});
export type Agent = z.infer<typeof Agent>;

const Placeholders = z.union([
  z.object({
    userDir: z.record(z.string(), z.string()).optional(),
    packageDir: z.record(z.string(), z.string()).optional(),
  }),
  z.record(z.string(), z.string()),
]);

export interface Catalog {
  main: Agent[];
  sub: Agent[];
  modules: Agent[];
  placeholders: { userDir: Record<string, string>; packageDir: Record<string, string> };
}

function load<T>(file: string, schema: z.ZodType<T>, fallback: T): T {
  if (!existsSync(file)) return fallback;
  const value = evalConfigFile(file);
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const at = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
    throw new CodeMachineImportError(file, `module.exports${at}: ${issue.message}`);
  }
  return parsed.data;
}

export function loadCatalog(pkg: PackageLocation): Catalog {
  const agents = z.array(Agent);
  const raw = load(join(pkg.configDir, "placeholders.js"), Placeholders, {});
  const placeholders =
    "userDir" in raw || "packageDir" in raw
      ? {
          userDir: (raw.userDir ?? {}) as Record<string, string>,
          packageDir: (raw.packageDir ?? {}) as Record<string, string>,
        }
      : { userDir: raw as Record<string, string>, packageDir: {} };
  return {
    main: load(join(pkg.configDir, "main.agents.js"), agents, []),
    sub: load(join(pkg.configDir, "sub.agents.js"), agents, []),
    modules: load(join(pkg.configDir, "modules.js"), agents, []),
    placeholders,
  };
}
