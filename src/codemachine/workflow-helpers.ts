/**
 * The globals a workflow file calls — resolveStep, resolveModule, resolveFolder, resolveUI /
 * separator, controller — resolving agents from the catalog the way CodeMachine does, and recording
 * which dialect (0.7 `resolveUI`, 0.8 `separator`) the file speaks.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { Agent, Catalog } from "./catalog.js";

export interface ModuleStep {
  type: "module";
  agentId: string;
  agentName: string;
  promptPath: string | string[] | undefined;
  chainedPromptsPath: Agent["chainedPromptsPath"];
  engine: string | undefined;
  model: string | undefined;
  modelReasoningEffort: string | undefined;
  executeOnce: boolean;
  interactive: boolean | undefined;
  /** Where the agent came from, for error messages. */
  source: string;
  loop?: { steps: number; maxIterations: number | undefined; skip: string[] } | undefined;
}

export interface Divider {
  type: "ui" | "separator";
  text: string;
}

export type WorkflowEntry = ModuleStep | Divider | { type: "controller"; agentId: string; options: unknown };

type Overrides = Record<string, unknown>;

const str = (v: unknown) => (typeof v === "string" ? v : undefined);

export class HelperError extends Error {}

export function workflowHelpers(catalog: Catalog, pkgRoot: string, promptsDir: string) {
  const used = { ui: false, separator: false };
  const unknown = (kind: string, id: string, list: Agent[], file: string) =>
    new HelperError(
      `${kind}('${id}'): no agent "${id}" in config/${file} (known: ${list.map((a) => a.id).join(", ") || "none"})`,
    );

  const fromAgent = (agent: Agent, o: Overrides, source: string): ModuleStep => ({
    type: "module",
    agentId: agent.id,
    agentName: str(o.agentName) ?? agent.name ?? agent.id,
    promptPath: (o.promptPath as string | string[] | undefined) ?? agent.promptPath,
    chainedPromptsPath: agent.chainedPromptsPath,
    engine: str(o.engine) ?? agent.engine,
    model: str(o.model) ?? agent.model,
    modelReasoningEffort: str(o.modelReasoningEffort) ?? agent.modelReasoningEffort,
    executeOnce: o.executeOnce === true,
    interactive: typeof o.interactive === "boolean" ? o.interactive : undefined,
    source,
  });

  const helpers = {
    resolveStep(id: string, o: Overrides = {}) {
      const agent = catalog.main.find((a) => a.id === id);
      if (!agent) throw unknown("resolveStep", id, catalog.main, "main.agents.js");
      return fromAgent(agent, o, "config/main.agents.js");
    },
    resolveModule(id: string, o: Overrides = {}) {
      const agent = catalog.modules.find((a) => a.id === id);
      if (!agent) throw unknown("resolveModule", id, catalog.modules, "modules.js");
      const b = agent.behavior;
      const loop =
        b?.type === "loop" && (b.action ?? "stepBack") === "stepBack"
          ? {
              steps: Math.max(1, Number(o.loopSteps ?? b.steps ?? 1)),
              maxIterations: (o.loopMaxIterations as number | undefined) ?? b.maxIterations,
              skip: ((o.loopSkip as string[] | undefined) ?? b.skip ?? []).map(String),
            }
          : undefined;
      return { ...fromAgent(agent, o, "config/modules.js"), loop };
    },
    resolveFolder(id: string, o: Overrides = {}) {
      const folder = catalog.main.find((a) => a.id === id && a.type === "folder");
      if (!folder)
        throw new HelperError(
          `resolveFolder('${id}'): no {type: 'folder', id: '${id}'} entry in config/main.agents.js`,
        );
      const dir = [join(promptsDir, "templates", id), join(pkgRoot, "prompts", "templates", id)].find((d) =>
        existsSync(d),
      );
      if (!dir) throw new HelperError(`resolveFolder('${id}'): folder prompts/templates/${id}/ not found`);
      return readdirSync(dir)
        .map((f) => ({ f, m: /^(\d+)-(.+)\.[^.]+$/.exec(f) }))
        .filter((x) => x.m)
        .sort((a, b) => Number(a.m![1]) - Number(b.m![1]))
        .map(({ f, m }) =>
          fromAgent(
            { ...folder, id: m![2]!, name: m![2]!, promptPath: join(dir, f) },
            o,
            `prompts/templates/${id}/${f}`,
          ),
        );
    },
    resolveUI(text: string): Divider {
      used.ui = true;
      return { type: "ui", text };
    },
    separator(text: string): Divider {
      used.separator = true;
      return { type: "separator", text };
    },
    controller(agentId: string, options: unknown = {}) {
      return { type: "controller", agentId, options };
    },
  };
  return { helpers, used };
}
