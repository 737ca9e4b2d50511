/**
 * Whether an engine can keep a sandbox mode a step asks for. An engine's `sandboxModes` are the modes
 * it enforces itself; a mode it would not enforce is refused rather than run without confinement.
 */
import type { Engine, SandboxMode } from "./engine-port.js";

/** Why `engine` cannot run with `mode`, or null when it can (or no mode is asked for). */
export function sandboxProblem(
  engine: Pick<Engine, "id" | "capabilities">,
  mode: SandboxMode | undefined,
): string | null {
  const modes = engine.capabilities.sandboxModes;
  if (mode === undefined || modes.includes(mode)) return null;
  return modes.length === 0
    ? `engine "${engine.id}" has no sandbox: it cannot run with sandbox "${mode}"; leave sandbox unset for it`
    : `engine "${engine.id}" does not enforce sandbox "${mode}" (it enforces ${modes.map((m) => `"${m}"`).join(", ")})`;
}
