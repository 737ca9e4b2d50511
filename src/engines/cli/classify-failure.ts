/**
 * Turns what a CLI said about a failure into a typed EngineFailure. Retries are decided here: auth and
 * context errors never help to repeat; rate limits and server errors may, after the hinted delay.
 *
 * What a CLI says on a failed exit holds much besides the cause (stack traces with `file.js:512:17`,
 * source lines of a minified bundle, help texts), so a number counts as an HTTP status only where it
 * is written as one, and the word rules are the providers' own phrases for each failure.
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
    text: /rate.?limit|too many requests|insufficient_quota|resource.?exhausted|quota (?:has been )?(?:exceeded|exhausted|reached)|exceeded (?:your |the )?(?:current )?quota/i,
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
    text: /\bunauthori[sz]ed\b|\bunauthenticated\b|authentication.?(?:failed|error|required)|failed to authenticate|invalid.?x-api-key|invalid_api_key|incorrect api key|api key not valid|not logged in/i,
    hint: "check the engine's API key or login (tgz engines shows what is configured)",
  },
  {
    kind: "server_error",
    retryable: true,
    status: [500, 502, 503, 504, 529],
    // `fetch failed`: Node's word for a connection lost mid-request (Gemini CLI passes it on as it is)
    text: /overloaded|high demand|internal server error|server.?error|stream disconnected|empty or malformed response|unable to connect|fetch failed|ECONNRESET|ECONNREFUSED|socket hang up/i,
  },
];

/**
 * An HTTP status written as one: `status 500`, `status code: 429`, `API Error: 529`, `HTTP 503`,
 * `HTTP/1.1 502`, a JSON `"code": 401`, or a number followed by its reason phrase (`401 Unauthorized`).
 */
const STATUS =
  /\b(?:status(?:[ _]?code)?|API Error|HTTP(?:\/[\d.]+)?)\s*[:=]?\s*([1-5]\d\d)\b|"(?:code|status|statusCode|status_code)"\s*:\s*([1-5]\d\d)\b|\b([1-5]\d\d) (?:Unauthorized|Forbidden|Too Many Requests|Payload Too Large|Request Entity Too Large|Internal Server Error|Bad Gateway|Service Unavailable|Gateway Timeout)\b/i;

export function statusIn(text: string): number | undefined {
  const m = STATUS.exec(text);
  return m ? Number(m[1] ?? m[2] ?? m[3]) : undefined;
}

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

const byStatus = (status: number | undefined): Rule | undefined =>
  status === undefined ? undefined : RULES.find((r) => r.status?.includes(status));

/** The rule one text decides: the status it states first, its words only when that status says nothing. */
function ruleOf(text: string): Rule | undefined {
  return byStatus(statusIn(text)) ?? RULES.find((r) => r.text.test(text));
}

/**
 * Types `message`. An HTTP status the CLI passed on decides first. `evidence` are the parts of what
 * the CLI said, most telling first (its stream's own notice before stderr): the first part a rule
 * recognises decides; by default the message itself.
 */
export function classifyFailure(
  message: string,
  status?: number,
  evidence: (string | undefined)[] = [message],
): EngineFailure {
  let rule = byStatus(status);
  for (const text of evidence) rule ??= text ? ruleOf(text) : undefined;
  return rule ? build(rule, message) : failure("crash", message);
}
