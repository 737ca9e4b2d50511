/**
 * The attributes of an engine call's span: OpenTelemetry's GenAI semantic conventions (the provider,
 * the requested and response model, token usage) and ours under `tgz.` (spec hash, prompt version,
 * cost, verdict).
 */
import type { CostTotal } from "../cost/call-cost.js";
import type { TokenUsage } from "../shared/token-usage.js";
import type { SpanAttributes } from "./trace-model.js";

/** `gen_ai.system` of the engines whose provider is fixed. */
const ENGINE_SYSTEM: Record<string, string> = {
  codex: "openai",
  "claude-code": "anthropic",
  gemini: "gcp.gemini",
};

/** A provider prefix of a model name (`anthropic/claude-sonnet-4-5`, opencode's ids). */
const PREFIX_SYSTEM: Record<string, string> = {
  openai: "openai",
  anthropic: "anthropic",
  google: "gcp.gemini",
  "google-vertex": "gcp.vertex_ai",
  "amazon-bedrock": "aws.bedrock",
  azure: "azure.ai.openai",
  deepseek: "deepseek",
  xai: "xai",
  mistral: "mistral_ai",
  groq: "groq",
};

/** The GenAI provider of a call: the model's provider prefix, else the engine's provider, else the engine. */
export function genAiSystem(engineId: string, model?: string | null): string {
  const prefix = model?.includes("/") ? model.slice(0, model.indexOf("/")) : undefined;
  return (prefix && PREFIX_SYSTEM[prefix]) ?? ENGINE_SYSTEM[engineId] ?? engineId;
}

/** The span name of an engine call, after the GenAI conventions' `invoke_agent {agent}`. */
export function engineCallSpanName(engineId: string): string {
  return `invoke_agent ${engineId}`;
}

export interface EngineCallFacts {
  engineId?: string;
  /** exec, qa or plan. */
  phase?: string;
  requestedModel?: string | null;
  /** The model the engine reported (EngineResult.model). */
  responseModel?: string | null;
  usage?: TokenUsage | null;
  sessionId?: string | null;
  cost?: CostTotal | null;
  specHash?: string | null;
  promptVersion?: string | null;
  /** The QA verdict the call gave or led to. */
  verdict?: string | null;
  /** The engine failure's kind, when the call failed. */
  errorKind?: string | null;
}

/** Span attributes for what is known of a call; call it at the start and again at the end. */
export function engineCallAttributes(f: EngineCallFacts): SpanAttributes {
  const system = f.engineId ? genAiSystem(f.engineId, f.responseModel ?? f.requestedModel) : undefined;
  return {
    "gen_ai.operation.name": f.engineId ? "invoke_agent" : undefined,
    "gen_ai.system": system,
    "gen_ai.provider.name": system,
    "gen_ai.agent.name": f.engineId,
    "gen_ai.request.model": f.requestedModel,
    "gen_ai.response.model": f.responseModel,
    "gen_ai.conversation.id": f.sessionId,
    "gen_ai.usage.input_tokens": f.usage?.input,
    "gen_ai.usage.output_tokens": f.usage?.output,
    "tgz.usage.cached_input_tokens": f.usage?.cachedInput,
    "tgz.usage.cache_write_tokens": f.usage?.cacheWrite,
    "tgz.usage.reasoning_tokens": f.usage?.reasoning,
    "tgz.usage.estimated": f.usage?.estimated,
    "tgz.engine": f.engineId,
    "tgz.phase": f.phase,
    "tgz.cost_usd": f.cost?.usd,
    "tgz.cost_partial": f.cost?.partial,
    "tgz.spec_hash": f.specHash,
    "tgz.prompt_version": f.promptVersion,
    "tgz.verdict": f.verdict,
    "error.type": f.errorKind,
  };
}
