/**
 * The HTTP API: Fastify with JSON bodies (raw body kept for webhook signatures), bearer auth on every
 * route not marked public, request ids, metrics, and typed errors mapped to clear status codes.
 */
import Fastify, { type FastifyInstance } from "fastify";
import { errorHandler, UnauthorizedError } from "./api-errors.js";
import { bearerMatches } from "./auth.js";
import { Metrics } from "./metrics.js";
import { actionRoutes } from "./routes/action-routes.js";
import { eventRoutes } from "./routes/event-routes.js";
import { resourceRoutes } from "./routes/resource-routes.js";
import { webhookRoutes } from "./routes/webhook-routes.js";
import type { ServerContext } from "./server-context.js";

export interface ServerOptions extends Omit<ServerContext, "metrics" | "ciActions"> {
  apiToken?: string | undefined;
  ciActions?: ServerContext["ciActions"];
  /** pino options, or false for no logging. */
  logger?: boolean | Record<string, unknown>;
  bodyLimit?: number;
}

export function buildServer(opts: ServerOptions): FastifyInstance {
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: opts.bodyLimit ?? 1024 * 1024,
    genReqId: (req) =>
      typeof req.headers["x-request-id"] === "string" ? req.headers["x-request-id"] : crypto.randomUUID(),
  });
  const ctx: ServerContext = {
    ...opts,
    metrics: new Metrics(),
    ciActions: opts.ciActions ?? { onSuccess: "none", onFailure: "block" },
  };

  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    (req as typeof req & { rawBody?: string }).rawBody = body as string;
    try {
      done(null, body ? JSON.parse(body as string) : {});
    } catch {
      const err = new Error("request body is not valid JSON") as Error & { statusCode: number };
      err.statusCode = 400;
      done(err, undefined);
    }
  });
  app.addHook("onRequest", async (req, reply) => {
    void reply.header("x-request-id", req.id);
    const isPublic = (req.routeOptions.config as { public?: boolean } | undefined)?.public === true;
    if (opts.apiToken && !isPublic && !bearerMatches(req.headers.authorization, opts.apiToken))
      throw new UnauthorizedError("missing or wrong bearer token");
  });
  app.addHook("onResponse", async (req, reply) => {
    ctx.metrics.inc("tasksgodzilla_http_requests_total", {
      method: req.method,
      route: req.routeOptions.url ?? "unknown",
      status: reply.statusCode,
    });
  });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({
      error: "not_found",
      detail: `no route ${req.method} ${req.url.split("?")[0]}`,
      request_id: req.id,
    });
  });

  resourceRoutes(app, ctx);
  actionRoutes(app, ctx);
  eventRoutes(app, ctx);
  webhookRoutes(app, ctx);
  return app;
}
