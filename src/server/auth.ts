/** Bearer-token auth, compared in constant time on digests so neither content nor length leaks. */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

const digest = (s: string) => createHash("sha256").update(s).digest();

export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? "");
  return m ? safeEqual(m[1]!.trim(), token) : false;
}

/** GitHub's X-Hub-Signature-256 over the raw body (`sha256=` prefix optional). */
export function githubSignatureMatches(header: string | undefined, raw: string, secret: string): boolean {
  if (!header) return false;
  const expected = createHmac("sha256", secret).update(raw).digest("hex");
  return safeEqual(header.replace(/^sha256=/, ""), expected);
}
