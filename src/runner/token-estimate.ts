/**
 * Pre-call token estimates with a real tokenizer (o200k_base, bundled with js-tiktoken, offline).
 * Used only before a call (budget check) or when an engine reports no usage; always flagged estimated.
 */
import { Tiktoken } from "js-tiktoken/lite";
import o200k from "js-tiktoken/ranks/o200k_base";
import type { TokenUsage } from "../engines/engine-port.js";

let encoder: Tiktoken | undefined;

export function estimateTokens(text: string): number {
  if (text.length === 0) return 0;
  encoder ??= new Tiktoken(o200k);
  return encoder.encode(text).length;
}

export function estimatedUsage(prompt: string, output: string): TokenUsage {
  return {
    input: estimateTokens(prompt),
    cachedInput: 0,
    output: estimateTokens(output),
    reasoning: 0,
    estimated: true,
  };
}

export function totalTokens(u: Pick<TokenUsage, "input" | "output">): number {
  return u.input + u.output;
}
