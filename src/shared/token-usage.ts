/**
 * Token usage normalised across engines. `input` counts every prompt token including cached ones;
 * `cachedInput` is the part read from the prompt cache, `cacheWrite` the part written to it. `output`
 * counts every output token; `reasoning` is the thinking part of it, for engines that report it apart.
 */
export interface TokenUsage {
  input: number;
  cachedInput: number;
  /** Prompt tokens written to the provider's prompt cache (billed at a premium by Anthropic); unset: none reported. */
  cacheWrite?: number | undefined;
  output: number;
  reasoning: number;
  /** True when the figure is a tokenizer estimate rather than what the engine reported. */
  estimated: boolean;
}
