/**
 * One delivery of a notification to one webhook: signed JSON (or a Slack message), a hard time limit
 * so a receiver that hangs cannot hold the caller, and an outcome that says whether another attempt
 * may succeed. Retrying is the caller's (through the job queue, after `retryDelayMs`); a delivery
 * never throws.
 */
import { errorMessage } from "../shared/errors.js";
import type { Notification } from "./notification.js";
import type { WebhookTarget } from "./notify-config.js";
import { slackMessage } from "./slack-message.js";
import {
  DELIVERY_HEADER,
  EVENT_HEADER,
  SIGNATURE_HEADER,
  signatureOf,
  TIMESTAMP_HEADER,
} from "./webhook-signature.js";

export type DeliveryOutcome =
  | { ok: true; status: number; durationMs: number }
  | {
      ok: false;
      /** Another attempt may succeed: no answer, a timeout, 408, 425, 429 or a 5xx. */
      retryable: boolean;
      /** The HTTP status, when the receiver answered. */
      status?: number | undefined;
      error: string;
      durationMs: number;
      /** The delay the receiver asked for (Retry-After). */
      retryAfterMs?: number | undefined;
    };

const RETRYABLE_STATUS = new Set([408, 425, 429]);

/** The most of a receiver's error answer kept in the outcome. */
const ERROR_BODY_CHARS = 300;

/** Retry-After as seconds or an HTTP date. */
function retryAfterMs(value: string | null, now: Date): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now.getTime());
}

/** What the request carries: the body, and the headers that say what it is and prove who sent it. */
export function webhookRequest(
  target: Pick<WebhookTarget, "format" | "secret">,
  notification: Notification,
  now: Date,
): { body: string; headers: Record<string, string> } {
  const body = JSON.stringify(target.format === "slack" ? slackMessage(notification) : notification);
  const timestamp = Math.floor(now.getTime() / 1000);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "user-agent": "TasksGodzilla-Webhook/1",
    [EVENT_HEADER]: notification.type,
    [DELIVERY_HEADER]: notification.id,
    [TIMESTAMP_HEADER]: String(timestamp),
  };
  if (target.secret) headers[SIGNATURE_HEADER] = signatureOf(target.secret, timestamp, body);
  return { body, headers };
}

export async function deliverWebhook(
  target: WebhookTarget,
  notification: Notification,
  opts: { now?: () => Date; signal?: AbortSignal } = {},
): Promise<DeliveryOutcome> {
  const now = opts.now ?? (() => new Date());
  const started = Date.now();
  const elapsed = () => Date.now() - started;
  const { body, headers } = webhookRequest(target, notification, now());
  const timeout = AbortSignal.timeout(target.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
  let res: Response;
  try {
    // a redirect is not followed: it would carry the signed body to a URL nobody configured
    res = await fetch(target.url, { method: "POST", headers, body, signal, redirect: "manual" });
  } catch (err) {
    const timedOut = timeout.aborted;
    const cause = (err as { cause?: unknown }).cause;
    // no answer (refused, reset, unresolvable, too slow) or the caller stopped: worth another attempt
    return {
      ok: false,
      retryable: true,
      error: timedOut
        ? `no answer within ${target.timeoutMs / 1000} s`
        : `${errorMessage(err)}${cause ? `: ${errorMessage(cause)}` : ""}`,
      durationMs: elapsed(),
    };
  }
  if (res.status >= 200 && res.status < 300) {
    // the answer's body is not needed: not waiting for it, a slow receiver holds nothing
    await res.body?.cancel().catch(() => {});
    return { ok: true, status: res.status, durationMs: elapsed() };
  }
  let answer = "";
  try {
    answer = (await res.text()).slice(0, ERROR_BODY_CHARS).trim();
  } catch {
    // the time limit passed while reading the error's body: the status says enough
  }
  const redirect = res.status >= 300 && res.status < 400;
  return {
    ok: false,
    retryable: res.status >= 500 || RETRYABLE_STATUS.has(res.status),
    status: res.status,
    error: redirect
      ? `HTTP ${res.status}: redirected to ${res.headers.get("location") ?? "?"}, which is not followed`
      : `HTTP ${res.status}${answer ? `: ${answer}` : ""}`,
    durationMs: elapsed(),
    retryAfterMs: retryAfterMs(res.headers.get("retry-after"), now()),
  };
}

export const WEBHOOK_RETRY = {
  /** Attempts in all, the first included. */
  maxAttempts: 6,
  firstDelayMs: 30_000,
  maxDelayMs: 60 * 60_000,
};

/**
 * When to try again after `attempts` failed attempts: 30 s, 2 min, 8 min, 32 min, then hourly (with
 * ±20 % jitter so receivers coming back are not hit at once), or later when the receiver asked
 * (Retry-After, up to an hour); undefined when the failure is not retryable or the attempts are spent.
 */
export function retryDelayMs(
  attempts: number,
  outcome: DeliveryOutcome,
  random = Math.random,
): number | undefined {
  if (outcome.ok || !outcome.retryable || attempts >= WEBHOOK_RETRY.maxAttempts) return undefined;
  const backoff = Math.min(WEBHOOK_RETRY.firstDelayMs * 4 ** (attempts - 1), WEBHOOK_RETRY.maxDelayMs);
  const jittered = Math.round(backoff * (0.8 + 0.4 * random()));
  return Math.min(Math.max(jittered, outcome.retryAfterMs ?? 0), WEBHOOK_RETRY.maxDelayMs);
}
