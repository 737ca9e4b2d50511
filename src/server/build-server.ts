/**
 * The HTTP API: Fastify with JSON and form bodies (the raw body kept for webhook signatures), bearer
 * auth on every route not marked otherwise, request ids, metrics, and typed errors mapped to clear
 * status codes. With `checkReplies` every JSON reply is checked against its documented schema.
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from "fastify";
import type { z } from "zod";
import { createDefaultRegistry } from "../engines/builtin-engines.js";
import type { EngineRegistry } from "../engines/engine-registry.js";
import { errorHandler, UnauthorizedError, UnsupportedMediaTypeError } from "./api-errors.js";
import { ErrorOut } from "./api-shapes.js";
import { bearerMatches } from "./auth.js";
import { Metrics } from "./metrics.js";
import { actionRoutes } from "./routes/action-routes.js";
import { consoleRoutes } from "./routes/console-routes.js";
import { eventRoutes } from "./routes/event-routes.js";
import { projectRoutes } from "./routes/project-routes.js";
import { protocolRoutes } from "./routes/protocol-routes.js";
import { runViewRoutes } from "./routes/run-view-routes.js";
import { systemRoutes } from "./routes/system-routes.js";
import { webhookRoutes } from "./routes/webhook-routes.js";
import { type RouteDoc, routeDocOf, type ServerContext } from "./server-context.js";
import { endStreamsOnClose } from "./sse.js";

export interface ServerOptions
  extends Omit<ServerContext, "metrics" | "ci" | "secrets" | "routes" | "registry"> {
  /** The engines runs are checked against; default the built-in registry. */
  registry?: EngineRegistry;
  /** The process's metrics (its worker counts its jobs in them); default a new set. */
  metrics?: Metrics;
  apiToken?: string | undefined;
  ci?: Partial<ServerContext["ci"]>;
  /** What /queues reports as its backend; default the embedded queue on the store's database. */
  queueBackend?: string;
  /** pino options (or an instance's options), or false for no logging. */
  logger?: boolean | Record<string, unknown>;
  bodyLimit?: number;
  /** Reject (500) any JSON reply that does not match the route's documented schema: for tests. */
  checkReplies?: boolean;
  /** Where the built web console is; default dist/console of this package. */
  consoleDir?: string;
}

type WithRaw = FastifyRequest & { rawBody?: string };

/** Headers whose values are secrets: never logged. */
export const SECRET_HEADERS = [
  "authorization",
  "x-project-token",
  "x-hub-signature-256",
  "x-gitlab-token",
  "x-tasksgodzilla-webhook-token",
];

function badBody(message: string): Error {
  return Object.assign(new Error(message), { statusCode: 400, code: "invalid_request" });
}

const mediaType = (req: FastifyRequest) =>
  (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
const bodyTypesOf = (req: FastifyRequest) => routeDocOf(req)?.bodyTypes ?? ["application/json"];
const unsupported = (req: FastifyRequest) =>
  new UnsupportedMediaTypeError(
    `content-type ${mediaType(req) || "(none)"}: this route takes ${bodyTypesOf(req).join(" or ")}`,
  );

function replySchema(doc: RouteDoc | undefined, status: number): z.ZodType | undefined {
  const r = doc?.responses[status];
  if (r && "safeParse" in r) return r as z.ZodType;
  if (r && "schema" in r && r.schema) return r.schema;
  return status >= 400 ? ErrorOut : undefined;
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
    metrics: opts.metrics ?? new Metrics(),
    registry: opts.registry ?? createDefaultRegistry(),
    secrets: opts.store.secrets,
    ci: { autoQa: opts.ci?.autoQa ?? false, blockOnFailure: opts.ci?.blockOnFailure ?? true },
    routes: [],
  };

  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    (req as WithRaw).rawBody = body as string;
    try {
      done(null, body ? JSON.parse(body as string) : {});
    } catch {
      done(badBody("request body is not valid JSON"), undefined);
    }
  });
  // GitHub can deliver webhooks form-encoded, the JSON in a `payload` field
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (req, body, done) => {
    (req as WithRaw).rawBody = body as string;
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  // a body a route does not take is a 415 naming what it takes, not a 400 about its shape
  app.removeContentTypeParser("text/plain");
  app.addContentTypeParser("*", (req, _body, done) => done(unsupported(req), undefined));
  app.addHook("preValidation", async (req) => {
    if (req.headers["content-type"] && !bodyTypesOf(req).includes(mediaType(req))) throw unsupported(req);
  });
  app.addHook("onRequest", async (req, reply) => {
    void reply.header("x-request-id", req.id);
    const auth = routeDocOf(req)?.auth ?? "bearer";
    if (opts.apiToken && auth === "bearer" && !bearerMatches(req.headers.authorization, opts.apiToken))
      throw new UnauthorizedError("missing or wrong bearer token");
  });
  if (opts.checkReplies) {
    app.addHook("preSerialization", async (req, reply, payload) => {
      const schema = replySchema(routeDocOf(req), reply.statusCode);
      const checked = schema?.safeParse(payload);
      if (!checked || checked.success) return payload;
      void reply.status(500);
      return {
        error: "reply_does_not_match_schema",
        detail: `${req.method} ${req.url} ${JSON.stringify(checked.error.issues).slice(0, 2000)}`,
        request_id: req.id,
      };
    });
  }
  app.addHook("onResponse", async (req, reply) => {
    ctx.metrics.request(
      req.method,
      req.routeOptions.url ?? "unknown",
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
  });
  endStreamsOnClose(app);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({
      error: "not_found",
      detail: `no route ${req.method} ${req.url.split("?")[0]}`,
      request_id: req.id,
    });
  });

  systemRoutes(app, ctx, opts.queueBackend ?? `embedded-${opts.store.dialect}`);
  projectRoutes(app, ctx);
  protocolRoutes(app, ctx);
  runViewRoutes(app, ctx);
  actionRoutes(app, ctx);
  eventRoutes(app, ctx);
  webhookRoutes(app, ctx);
  consoleRoutes(app, ctx, opts.consoleDir);
  return app;
}
