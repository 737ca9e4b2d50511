/**
 * Token usage normalised across engines. `input` counts every prompt token including cached ones;
 * `cachedInput` is the cached part of it. `reasoning` is informational (already inside `output` for
 * engines that bill it as output).
 */
export interface TokenUsage {
  input: number;
  cachedInput: number;
  output: number;
  reasoning: number;
  /** True when the figure is a tokenizer estimate rather than what the engine reported. */
  estimated: boolean;
}
