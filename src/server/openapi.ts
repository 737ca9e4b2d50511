/**
 * The OpenAPI 3.1 document, generated from the route declarations: parameters, bodies and replies
 * come from the same zod schemas the server validates with; named schemas become components.
 */
import { z } from "zod";
import { apiSchemas, ErrorOut } from "./api-shapes.js";
import type { ResponseDoc, RouteDoc } from "./server-context.js";

type JsonSchema = Record<string, unknown>;

const DOCUMENTED_AS = new WeakMap<z.ZodType, z.ZodType>();

/**
 * `runtime` parses the request; the document shows `shown` instead. For a field that must reach the
 * service exactly as sent (a spec is frozen and hashed as given) but is documented by its real schema.
 */
export function documentedAs<T extends z.ZodType>(runtime: T, shown: z.ZodType): T {
  DOCUMENTED_AS.set(runtime, shown);
  return runtime;
}

const SECURITY: Record<string, JsonSchema> = {
  bearer: { type: "http", scheme: "bearer", description: "TASKSGODZILLA_API_TOKEN" },
  projectToken: {
    type: "apiKey",
    in: "header",
    name: "X-Project-Token",
    description: "Also needed on a project's routes when the project has an api_token secret.",
  },
  githubSignature: {
    type: "apiKey",
    in: "header",
    name: "X-Hub-Signature-256",
    description: "sha256=<HMAC-SHA256 of the raw body with TASKSGODZILLA_WEBHOOK_TOKEN>",
  },
  gitlabToken: {
    type: "apiKey",
    in: "header",
    name: "X-Gitlab-Token",
    description: "TASKSGODZILLA_WEBHOOK_TOKEN (X-TasksGodzilla-Webhook-Token is accepted too)",
  },
};

const SECURITY_OF: Record<string, JsonSchema[]> = {
  bearer: [{ bearer: [] }],
  none: [],
  "github-signature": [{ githubSignature: [] }],
  "gitlab-token": [{ gitlabToken: [] }],
};

class SchemaCollector {
  readonly components: Record<string, JsonSchema> = {};
  private readonly seen = new Map<string, string>();

  /** The JSON Schema of `schema`, named (sub-)schemas moved to components and referenced. */
  convert(schema: z.ZodType, io: "input" | "output"): JsonSchema {
    const id = apiSchemas.get(schema)?.id;
    if (!id) return this.inline(schema, io);
    // through a wrapper, so the named schema itself lands in $defs like the ones it contains
    this.inline(z.object({ x: schema }), io);
    return { $ref: `#/components/schemas/${id}` };
  }

  private inline(schema: z.ZodType, io: "input" | "output"): JsonSchema {
    const js = z.toJSONSchema(schema, {
      metadata: apiSchemas,
      io,
      target: "draft-2020-12",
      unrepresentable: "any",
      override: ({ zodSchema, jsonSchema }) => {
        const zs = zodSchema as unknown as z.ZodType;
        const shown = DOCUMENTED_AS.get(zs);
        if (shown) {
          for (const key of Object.keys(jsonSchema)) delete jsonSchema[key];
          Object.assign(jsonSchema, this.convert(shown, io));
        }
        // ids come from apiSchemas; descriptions (`.describe()`) live in zod's global registry
        const description = z.globalRegistry.get(zs)?.description;
        if (description && jsonSchema.description === undefined) jsonSchema.description = description;
      },
    }) as JsonSchema;
    const defs = (js.$defs ?? {}) as Record<string, JsonSchema>;
    delete js.$defs;
    delete js.$schema;
    for (const [id, def] of Object.entries(defs)) this.add(id, refs(def));
    return refs(js);
  }

  private add(id: string, schema: JsonSchema): void {
    const text = JSON.stringify(schema);
    const before = this.seen.get(id);
    if (before !== undefined && before !== text)
      throw new Error(
        `schema ${id} differs between its uses (input/output); give the variants their own ids`,
      );
    this.seen.set(id, text);
    this.components[id] = schema;
  }
}

/** `#/$defs/X` → `#/components/schemas/X`, everywhere in the schema. */
function refs(schema: JsonSchema): JsonSchema {
  return JSON.parse(JSON.stringify(schema).replaceAll('"#/$defs/', '"#/components/schemas/')) as JsonSchema;
}

function objectShape(schema: z.ZodType | undefined): Record<string, z.ZodType> {
  return schema instanceof z.ZodObject ? (schema.shape as Record<string, z.ZodType>) : {};
}

function parameters(doc: RouteDoc, schemas: SchemaCollector): JsonSchema[] {
  const out: JsonSchema[] = [];
  for (const [where, schema] of [
    ["path", doc.params],
    ["query", doc.query],
  ] as const) {
    for (const [name, field] of Object.entries(objectShape(schema))) {
      const js = schemas.convert(field, "input");
      out.push({
        name,
        in: where,
        required: where === "path" || !field.safeParse(undefined).success,
        ...(typeof js.description === "string" ? { description: js.description } : {}),
        schema: js,
      });
    }
  }
  if (doc.projectToken)
    out.push({
      name: "X-Project-Token",
      in: "header",
      required: false,
      description: "Needed when the project has an api_token secret.",
      schema: { type: "string" },
    });
  return out;
}

const asResponse = (r: z.ZodType | ResponseDoc): ResponseDoc =>
  r instanceof z.ZodType ? { description: "OK", schema: r } : r;

function responses(doc: RouteDoc, schemas: SchemaCollector): Record<string, JsonSchema> {
  const errors: Record<string, string | undefined> = {
    ...(doc.params || doc.query || doc.body ? { 400: "Invalid parameter or body (names the field)" } : {}),
    ...(doc.auth !== "none" ? { 401: "Missing or wrong credentials" } : {}),
    ...(doc.projectToken ? { 403: "The project's X-Project-Token is missing or wrong" } : {}),
    ...(doc.params ? { 404: "Not found (names what)" } : {}),
    ...(doc.body ? { 413: "Body too large", 415: "Unsupported media type" } : {}),
    500: "Internal error (no details; see the server log)",
    // every route behind auth reads the store
    ...(doc.auth !== "none"
      ? {
          503: "A backend does not answer: the database (`database_unavailable`) or, for work that is queued, the job queue's Redis (`queue_unavailable`); `detail` names which and where",
        }
      : {}),
  };
  const out: Record<string, JsonSchema> = {};
  for (const [status, r] of Object.entries(doc.responses)) {
    const res = asResponse(r);
    const schema = res.schema ?? (Number(status) >= 400 ? ErrorOut : undefined);
    out[status] = {
      description: res.description,
      ...(res.headers
        ? {
            headers: Object.fromEntries(
              Object.entries(res.headers).map(([h, d]) => [
                h,
                { description: d, schema: { type: "string" } },
              ]),
            ),
          }
        : {}),
      ...(schema || res.contentType
        ? {
            content: {
              [res.contentType ?? "application/json"]: schema
                ? { schema: schemas.convert(schema, "output") }
                : {},
            },
          }
        : {}),
    };
  }
  const error = schemas.convert(ErrorOut, "output");
  for (const [status, description] of Object.entries(errors))
    if (description) out[status] ??= { description, content: { "application/json": { schema: error } } };
  return out;
}

export function openApiDocument(routes: RouteDoc[]): JsonSchema {
  const schemas = new SchemaCollector();
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const params = parameters(r, schemas);
    const body = r.body
      ? {
          requestBody: {
            required: !r.body.safeParse({}).success,
            content: Object.fromEntries(
              (r.bodyTypes ?? ["application/json"]).map((t) => [
                t,
                { schema: schemas.convert(r.body!, "input") },
              ]),
            ),
          },
        }
      : {};
    paths[r.url] = {
      ...paths[r.url],
      [r.method.toLowerCase()]: {
        tags: [r.tag],
        summary: r.summary,
        ...(r.description ? { description: r.description } : {}),
        operationId: operationId(r),
        ...(params.length ? { parameters: params } : {}),
        ...body,
        security: SECURITY_OF[r.auth ?? "bearer"],
        responses: responses(r, schemas),
      },
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "TasksGodzilla API",
      version: "1",
      description:
        "Projects, protocol runs, steps, actions, the event ledger (lists, cursors, SSE), CI webhooks, " +
        "queues and metrics. Bodies and replies are snake_case, as in the original TasksGodzilla API.",
    },
    tags: [...new Set(routes.map((r) => r.tag))].map((name) => ({ name })),
    components: { securitySchemes: SECURITY, schemas: sortKeys(schemas.components) },
    paths,
  };
}

function operationId(r: RouteDoc): string {
  const words = `${r.method.toLowerCase()} ${r.url.replace(/\{(\w+)\}/g, "by $1")}`.split(/[^A-Za-z0-9]+/);
  return words
    .filter(Boolean)
    .map((w, i) => (i === 0 ? w : w[0]!.toUpperCase() + w.slice(1)))
    .join("");
}

const sortKeys = (o: Record<string, JsonSchema>) =>
  Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
