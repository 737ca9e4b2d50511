/**
 * What every route shares, and `route()`: one declaration gives a route its validation (params,
 * query and body parsed by their zod schemas), its auth and its OpenAPI entry, so they cannot drift.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { EffectiveConfig } from "../config/load-config.js";
import type { EngineRegistry } from "../engines/engine-registry.js";
import type { JobQueue } from "../queue/job-queue.js";
import type { CiSettings } from "../services/apply-ci-result.js";
import type { Store } from "../store/types.js";
import type { Metrics } from "./metrics.js";
import type { ProjectSecrets } from "./project-secrets.js";

export interface ServerContext {
  store: Store;
  queue: JobQueue;
  metrics: Metrics;
  secrets: ProjectSecrets;
  configFor: (repoDir: string) => EffectiveConfig;
  /** The engines runs are checked against when they are created. */
  registry: EngineRegistry;
  webhookToken?: string | undefined;
  allowUnsignedWebhooks?: boolean | undefined;
  ci: CiSettings;
  /** Every registered route, in registration order: the source of the OpenAPI document. */
  routes: RouteDoc[];
}

type Schema = z.ZodType;

export interface ResponseDoc {
  description: string;
  schema?: Schema;
  /** Default application/json. */
  contentType?: string;
  headers?: Record<string, string>;
}

/** `bearer`: the API token; `none`: open (health, metrics, docs); the webhooks: their own secret. */
export type RouteAuth = "bearer" | "none" | "github-signature" | "gitlab-token";

export interface RouteDoc<
  P extends Schema | undefined = Schema | undefined,
  Q extends Schema | undefined = Schema | undefined,
  B extends Schema | undefined = Schema | undefined,
> {
  method: "GET" | "POST";
  /** OpenAPI form: /protocols/{id}. */
  url: string;
  tag: string;
  summary: string;
  description?: string;
  params?: P;
  query?: Q;
  body?: B;
  /** Media types the body may have; default JSON only. */
  bodyTypes?: string[];
  /** Replies by status; the shared error replies (400, 401, 404, 500 …) are added to the document. */
  responses: Record<number, Schema | ResponseDoc>;
  auth?: RouteAuth;
  /** The project's X-Project-Token applies (when the project has an api_token secret). */
  projectToken?: boolean;
}

type Out<S> = S extends Schema ? z.output<S> : undefined;

export interface RouteInput<P, Q, B> {
  params: Out<P>;
  query: Out<Q>;
  body: Out<B>;
}

/** Registers a route with its documentation; the handler gets its inputs already parsed. */
export function route<
  P extends Schema | undefined = undefined,
  Q extends Schema | undefined = undefined,
  B extends Schema | undefined = undefined,
>(
  app: FastifyInstance,
  ctx: ServerContext,
  doc: RouteDoc<P, Q, B>,
  handler: (input: RouteInput<P, Q, B>, req: FastifyRequest, reply: FastifyReply) => Promise<unknown>,
): void {
  ctx.routes.push(doc as RouteDoc);
  app.route({
    method: doc.method,
    url: doc.url.replace(/\{(\w+)\}/g, ":$1"),
    config: { doc: doc as RouteDoc },
    handler: async (req, reply) => {
      const input = {
        params: doc.params?.parse(req.params),
        query: doc.query?.parse(req.query),
        // a POST without a body is an empty object, so optional bodies need no special case
        body: doc.body?.parse(req.body ?? {}),
      } as RouteInput<P, Q, B>;
      return handler(input, req, reply);
    },
  });
}

export const routeDocOf = (req: FastifyRequest): RouteDoc | undefined =>
  (req.routeOptions.config as { doc?: RouteDoc } | undefined)?.doc;

/** A positive integer id in a path or query, with a 400 naming the parameter otherwise. */
export const Id = z.coerce.number().int().positive();

export const IdParam = z.object({ id: Id.describe("Numeric id.") });
