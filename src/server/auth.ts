/** Bearer-token auth, compared in constant time on digests so neither content nor length leaks. */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { ForbiddenError } from "./api-errors.js";
import { PROJECT_TOKEN_SECRET, type ProjectSecrets } from "./project-secrets.js";

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

/**
 * When the project has an `api_token` secret, its routes also need `X-Project-Token` (as in the
 * original), compared in constant time.
 */
export async function requireProjectAccess(
  secrets: ProjectSecrets,
  req: FastifyRequest,
  projectId: number,
): Promise<void> {
  const token = await secrets.get(projectId, PROJECT_TOKEN_SECRET);
  if (typeof token !== "string" || token === "") return;
  const given = req.headers["x-project-token"];
  if (typeof given !== "string" || !safeEqual(given, token))
    throw new ForbiddenError(`project ${projectId} needs its X-Project-Token`);
}
