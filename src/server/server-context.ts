/** What every route shares, and the route table the OpenAPI document is generated from. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { EffectiveConfig } from "../config/load-config.js";
import type { JobQueue } from "../queue/job-queue.js";
import type { KyselyStore } from "../store/kysely-store.js";
import type { Metrics } from "./metrics.js";

export interface ServerContext {
  store: KyselyStore;
  queue: JobQueue;
  metrics: Metrics;
  configFor: (repoDir: string) => EffectiveConfig;
  webhookToken?: string | undefined;
  allowUnsignedWebhooks?: boolean | undefined;
  /** On CI success: enqueue the run again so its QA/next steps run; on failure: block the run. */
  ciActions: { onSuccess: "run" | "none"; onFailure: "block" | "none" };
}

export interface RouteDoc {
  method: "GET" | "POST";
  url: string;
  summary: string;
  body?: z.ZodType | undefined;
  auth: boolean;
}

export const ROUTES: RouteDoc[] = [];

type Handler = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/** Registers a route and its documentation together, so the OpenAPI document cannot drift. */
export function route(
  app: FastifyInstance,
  doc: Omit<RouteDoc, "auth"> & { auth?: boolean },
  handler: Handler,
): void {
  if (!ROUTES.some((r) => r.method === doc.method && r.url === doc.url))
    ROUTES.push({ ...doc, auth: doc.auth ?? true });
  app.route({
    method: doc.method,
    url: doc.url.replace(/\{(\w+)\}/g, ":$1"),
    config: { public: doc.auth === false },
    handler,
  });
}

export const IdParam = z.object({ id: z.coerce.number().int().positive() });

export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTES) {
    const params = [...r.url.matchAll(/\{(\w+)\}/g)].map((m) => ({
      name: m[1],
      in: "path",
      required: true,
      schema: { type: m[1] === "action" || m[1] === "provider" ? "string" : "integer" },
    }));
    paths[r.url] = {
      ...paths[r.url],
      [r.method.toLowerCase()]: {
        summary: r.summary,
        ...(params.length ? { parameters: params } : {}),
        ...(r.body
          ? {
              requestBody: {
                required: true,
                content: { "application/json": { schema: z.toJSONSchema(r.body, { io: "input" }) } },
              },
            }
          : {}),
        ...(r.auth ? { security: [{ bearer: [] }] } : {}),
        responses: {
          200: { description: "OK" },
          400: { description: "Invalid request" },
          401: { description: "Unauthorized" },
          404: { description: "Not found" },
          409: { description: "Conflict" },
        },
      },
    };
  }
  return {
    openapi: "3.1.0",
    info: { title: "TasksGodzilla API", version: "1" },
    components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
    paths,
  };
}
