/** Plain-text rendering shared by the CLI commands. */
import type { Event, ProtocolRun, StepRun } from "../store/types.js";

export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export function formatTokens(n: number): string {
  return n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : String(n);
}

export function runLine(run: ProtocolRun): string {
  return `#${run.id} ${run.protocolName} [${run.status}] spec ${run.templateConfig.spec_meta?.spec_hash ?? "-"}`;
}

export function stepsTable(steps: StepRun[]): string {
  return table([
    ["#", "STEP", "STATUS", "ENGINE", "MODEL", "RETRIES", "SUMMARY"],
    ...steps.map((s) => [
      String(s.stepIndex),
      s.stepName,
      s.status,
      s.engineId ?? "-",
      s.model ?? "-",
      String(s.retries),
      (s.summary ?? "").slice(0, 60),
    ]),
  ]);
}

export function eventLine(e: Event, stepNames: Map<number, string>): string {
  const step = e.stepRunId ? ` ${stepNames.get(e.stepRunId) ?? e.stepRunId}` : "";
  return `${String(e.id).padStart(5)} ${e.createdAt.slice(11, 23)} ${e.eventType.padEnd(22)}${step} ${e.message}`;
}

export function stepsJson(steps: StepRun[]) {
  return steps.map((s) => ({
    id: s.stepName,
    step_run_id: s.id,
    index: s.stepIndex,
    status: s.status,
    engine_id: s.engineId,
    model: s.model,
    retries: s.retries,
    summary: s.summary,
    runtime_state: s.runtimeState,
  }));
}
