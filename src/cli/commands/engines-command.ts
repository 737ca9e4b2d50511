/** `tgz engines` (alias `tgz doctor`): every registered engine and its preflight with the repo's settings. */
import { assertKnownEngineSettings, settingsFor } from "../../config/engine-settings.js";
import { loadConfig } from "../../config/load-config.js";
import { createDefaultRegistry } from "../../engines/builtin-engines.js";
import { table } from "../format.js";

export async function enginesCommand(opts: { json?: boolean; repo?: string }): Promise<number> {
  const config = loadConfig(opts.repo ?? process.cwd(), process.env);
  const registry = createDefaultRegistry();
  assertKnownEngineSettings(config, registry);
  const rows = await Promise.all(
    registry.list().map(async (e) => ({
      id: e.id,
      kind: e.kind,
      capabilities: e.capabilities,
      preflight: await e.preflight(settingsFor(config.engines, e.id, config.engineHomeRoot)),
    })),
  );
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify(
        rows.map((r) => ({
          id: r.id,
          kind: r.kind,
          binary_path: r.preflight.binaryPath ?? null,
          version: r.preflight.version ?? null,
          capabilities: r.capabilities,
          preflight: r.preflight,
        })),
        null,
        2,
      )}\n`,
    );
  } else {
    const lines = rows.map((r) => [
      r.id,
      r.kind,
      r.preflight.ok ? "ok" : "problem",
      r.preflight.version ?? "-",
      r.preflight.binaryPath ?? "-",
    ]);
    process.stdout.write(`${table([["ENGINE", "KIND", "PREFLIGHT", "VERSION", "BINARY"], ...lines])}\n`);
    // each problem's message already names its engine
    for (const r of rows)
      for (const p of r.preflight.problems) process.stdout.write(`  ${p.message}\n    fix: ${p.fix}\n`);
  }
  return rows.every((r) => r.preflight.ok) ? 0 : 1;
}
