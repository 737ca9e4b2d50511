/** The registry every process starts with. New engines are added here and nowhere else. */
import { ReplayEngine } from "./builtin/replay-engine.js";
import { ShellEngine } from "./builtin/shell-engine.js";
import { EngineRegistry } from "./engine-registry.js";

export function createDefaultRegistry(): EngineRegistry {
  const registry = new EngineRegistry();
  for (const engine of [new ShellEngine(), new ReplayEngine()]) registry.register(engine);
  return registry;
}
