/**
 * Turns what a CLI said about a failure into a typed EngineFailure. Retries are decided here: auth and
 * context errors never help to repeat; rate limits and server errors may, after the hinted delay.
 */
import type { EngineFailure } from "../engine-port.js";
import { failure } from "../engine-result.js";

const RULES: {
  kind: EngineFailure["kind"];
  retryable: boolean;
  status?: number[];
  text: RegExp;
  hint?: string;
}[] = [
  {
    kind: "auth",
    retryable: false,
    status: [401, 403],
    text: /\b401\b|\b403\b|unauthori[sz]ed|authenticat|api key|invalid.*key|permission denied.*key|not logged in/i,
    hint: "check the engine's API key or login (tgz engines shows what is configured)",
  },
  {
    kind: "context_too_long",
    retryable: false,
    text: /context.?(length|window)|too many tokens|prompt is too long|ran out of room/i,
    hint: "shorten the step's prompt or split the step",
  },
  {
    kind: "rate_limit",
    retryable: true,
    status: [429],
    text: /\b429\b|rate.?limit|quota|too many requests|insufficient_quota/i,
  },
  {
    kind: "server_error",
    retryable: true,
    status: [500, 502, 503, 504, 529],
    text: /\b5\d\d\b|overloaded|high demand|server.?error|internal error|stream disconnected|empty or malformed response/i,
  },
];

function retryAfter(message: string): number | undefined {
  const m = /(?:try again|retry) in (\d+(?:\.\d+)?)\s*(ms|s|sec|seconds)?/i.exec(message);
  if (!m) return undefined;
  const n = Number(m[1]);
  return m[2] === "ms" ? n : n * 1000;
}

export function classifyFailure(message: string, status?: number): EngineFailure {
  for (const rule of RULES) {
    if ((status !== undefined && rule.status?.includes(status)) || rule.text.test(message)) {
      return failure(rule.kind, message, {
        retryable: rule.retryable,
        retryAfterMs: retryAfter(message),
        hint: rule.hint,
      });
    }
  }
  return failure("crash", message);
}
