/**
 * Webhook signatures: HMAC-SHA256 with the webhook's secret over `<timestamp>.<body>`, sent as
 * `X-TasksGodzilla-Signature: sha256=<hex>` beside `X-TasksGodzilla-Timestamp: <unix seconds>`. The
 * timestamp is signed with the body, so a captured request cannot be replayed later with a new one.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const SIGNATURE_HEADER = "X-TasksGodzilla-Signature";
export const TIMESTAMP_HEADER = "X-TasksGodzilla-Timestamp";
export const EVENT_HEADER = "X-TasksGodzilla-Event";
export const DELIVERY_HEADER = "X-TasksGodzilla-Delivery";

/** How far a receiver accepts a timestamp from its own clock, by default. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export function signatureOf(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

/**
 * A receiver's check: the signature matches the body and timestamp (compared in constant time), and
 * the timestamp is within `toleranceSeconds` of now.
 */
export function verifyWebhookSignature(req: {
  secret: string;
  /** The raw request body, exactly as received. */
  body: string;
  timestamp: string | undefined;
  signature: string | undefined;
  toleranceSeconds?: number;
  now?: Date;
}): SignatureCheck {
  if (!req.signature) return { ok: false, reason: `no ${SIGNATURE_HEADER} header` };
  if (!req.timestamp || !/^\d+$/.test(req.timestamp))
    return { ok: false, reason: `no valid ${TIMESTAMP_HEADER} header` };
  const timestamp = Number(req.timestamp);
  const now = Math.floor((req.now ?? new Date()).getTime() / 1000);
  if (Math.abs(now - timestamp) > (req.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS))
    return { ok: false, reason: "timestamp outside the tolerance (a replayed or delayed request)" };
  const expected = Buffer.from(signatureOf(req.secret, timestamp, req.body));
  const given = Buffer.from(req.signature);
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return { ok: false, reason: "signature does not match" };
  return { ok: true };
}
