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

const guards = (token: unknown): token is string => typeof token === "string" && token !== "";

const projectTokenOf = (req: FastifyRequest) => {
  const given = req.headers["x-project-token"];
  return typeof given === "string" ? given : undefined;
};

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
  if (!guards(token)) return;
  const given = projectTokenOf(req);
  if (given === undefined || !safeEqual(given, token))
    throw new ForbiddenError(`project ${projectId} needs its X-Project-Token`);
}

/** The guarded projects whose token the request does not carry: what lists across projects leave out. */
export async function projectsHiddenFrom(secrets: ProjectSecrets, req: FastifyRequest): Promise<number[]> {
  const given = projectTokenOf(req);
  return [...(await secrets.byName(PROJECT_TOKEN_SECRET))]
    .filter(([, token]) => guards(token) && (given === undefined || !safeEqual(given, token)))
    .map(([id]) => id);
}
