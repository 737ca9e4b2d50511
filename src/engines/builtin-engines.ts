/** The registry every process starts with. New engines are added here and nowhere else. */
import { ReplayEngine } from "./builtin/replay-engine.js";
import { ShellEngine } from "./builtin/shell-engine.js";
import { claudeCodeAdapter } from "./cli/claude-code-adapter.js";
import { CliEngine } from "./cli/cli-engine.js";
import { codexAdapter } from "./cli/codex-adapter.js";
import { geminiAdapter } from "./cli/gemini-adapter.js";
import { opencodeAdapter } from "./cli/opencode-adapter.js";
import { EngineRegistry } from "./engine-registry.js";

export function createDefaultRegistry(): EngineRegistry {
  const registry = new EngineRegistry();
  const engines = [
    new ShellEngine(),
    new ReplayEngine(),
    ...[codexAdapter, claudeCodeAdapter, opencodeAdapter, geminiAdapter].map((a) => new CliEngine(a)),
  ];
  for (const engine of engines) registry.register(engine);
  return registry;
}
