/** Token totals in the snake_case every JSON output (CLI `--json`, API) uses. */
import type { UsageTotals } from "./types.js";

export function usageJson(u: UsageTotals) {
  return {
    input: u.input,
    cached_input: u.cachedInput,
    output: u.output,
    reasoning: u.reasoning,
    total: u.total,
    calls: u.calls,
    estimated_calls: u.estimatedCalls,
  };
}
