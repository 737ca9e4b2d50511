/**
 * Turns what a CLI said about a failure into a typed EngineFailure. Retries are decided here: auth and
 * context errors never help to repeat; rate limits and server errors may, after the hinted delay.
 */
import type { EngineFailure } from "../engine-port.js";
import { failure } from "../engine-result.js";

interface Rule {
  kind: EngineFailure["kind"];
  retryable: boolean;
  status?: number[];
  text: RegExp;
  hint?: string;
}

/**
 * Checked in this order, so a message that names two causes gets the more specific one: "rate limit
 * exceeded for this API key" is a rate limit, not an auth problem.
 */
const RULES: Rule[] = [
  {
    kind: "rate_limit",
    retryable: true,
    status: [429],
    text: /\b429\b|rate.?limit|quota|too many requests|insufficient_quota|resource.?exhausted/i,
  },
  {
    kind: "context_too_long",
    retryable: false,
    status: [413],
    text: /context.?(length|window|limit)|too many tokens|prompt is too long|ran out of room|exceeds the maximum number of tokens|input is too long/i,
    hint: "shorten the step's prompt or split the step",
  },
  {
    kind: "auth",
    retryable: false,
    status: [401, 403],
    text: /\b401\b|\b403\b|unauthori[sz]ed|authenticat|api key|invalid.*key|permission denied.*key|not logged in/i,
    hint: "check the engine's API key or login (tgz engines shows what is configured)",
  },
  {
    kind: "server_error",
    retryable: true,
    status: [500, 502, 503, 504, 529],
    text: /\b5\d\d\b|overloaded|high demand|server.?error|internal error|stream disconnected|empty or malformed response|unable to connect|ECONNRESET|ECONNREFUSED|socket hang up/i,
  },
];

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, sec: 1000, second: 1000, m: 60_000, min: 60_000 };

/** The delay a provider asked for, as CLIs pass it on in their messages ("try again in 2.5s"). */
function retryAfter(message: string): number | undefined {
  const m = /(?:try again|retry)(?: after| in) (\d+(?:\.\d+)?)\s*(ms|sec|second|min|s|m)?/i.exec(message);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNIT_MS[(m[2] ?? "s").toLowerCase()]!);
}

function build(rule: Rule, message: string): EngineFailure {
  return failure(rule.kind, message, {
    retryable: rule.retryable,
    retryAfterMs: rule.retryable ? retryAfter(message) : undefined,
    hint: rule.hint,
  });
}

/** An HTTP status the CLI passed on decides first; the message's words only when there is none. */
export function classifyFailure(message: string, status?: number): EngineFailure {
  const byStatus = status === undefined ? undefined : RULES.find((r) => r.status?.includes(status));
  const rule = byStatus ?? RULES.find((r) => r.text.test(message));
  return rule ? build(rule, message) : failure("crash", message);
}
