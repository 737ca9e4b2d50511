/** Token totals in the snake_case every JSON output (CLI `--json`, API) uses. */
import type { UsageTotals } from "./types.js";

/** The totals of a scope with no calls. */
export const NO_USAGE: UsageTotals = {
  input: 0,
  cachedInput: 0,
  output: 0,
  reasoning: 0,
  total: 0,
  estimatedCalls: 0,
  calls: 0,
};

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
