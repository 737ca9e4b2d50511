/**
 * Which model a call uses. The spec's own choice wins; the project's per-role defaults (`models`)
 * are meant for the project's default engines, so a step on another engine gets that engine's own
 * default instead of a model name it would not know.
 */
import type { EffectiveConfig } from "../config/load-config.js";

export function modelFor(
  config: Pick<EffectiveConfig, "engine" | "models" | "qa">,
  role: "exec" | "qa",
  engineId: string,
  explicit: string | null | undefined,
): string | null {
  if (explicit) return explicit;
  const defaultEngine = role === "qa" ? (config.qa.engine ?? config.engine) : config.engine;
  return engineId === defaultEngine ? (config.models[role] ?? null) : null;
}
