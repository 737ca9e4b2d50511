/**
 * The database away (a Postgres server of the test's own, stopped): every route that needs the
 * store answers 503 `database_unavailable` naming the database, never a 500; /health says the
 * database is down; the routes that need no database still answer; everything works again once it
 * is back.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../service/process-harness.js";
import { type OwnPostgres, ownPostgres, ownPostgresAvailable } from "../support/own-postgres.js";
import { type Api, startApi } from "./api-harness.js";

if (process.env.CI === "true" && !ownPostgresAvailable) throw new Error("initdb is required in CI");

let pg: OwnPostgres;
let api: Api;
let doc: any;

beforeAll(async () => {
  if (!ownPostgresAvailable) return;
  pg = await ownPostgres(await freePort());
  await pg.start();
  // webhooks unsigned, so a delivery gets as far as the store
  api = await startApi({ allowUnsignedWebhooks: true, webhookToken: undefined }, { url: pg.url });
  doc = (await api.call("GET", "/openapi.json")).body;
}, 60_000);
afterAll(async () => {
  await api?.close().catch(() => undefined);
  await pg?.destroy();
});

/** A value of a JSON schema: enough to pass validation, so the route gets as far as the store. */
function sample(schema: any): unknown {
  if (schema?.$ref) return sample(doc.components.schemas[schema.$ref.split("/").pop()]);
  if (schema?.anyOf) return sample(schema.anyOf[0]);
  if (schema?.enum) return schema.enum[0];
  if (schema?.const !== undefined) return schema.const;
  const type = Array.isArray(schema?.type) ? schema.type[0] : schema?.type;
  if (type === "object")
    return Object.fromEntries(
      (schema.required ?? []).map((k: string) => [k, sample(schema.properties?.[k])]),
    );
  if (type === "array") return [];
  if (type === "integer" || type === "number") return 1;
  if (type === "boolean") return false;
  // a payload of any shape (the webhooks'): an object
  return type === "string" ? "x" : {};
}

/** Path parameters: ids, and the first value a parameter's schema allows. */
function fill(path: string, op: any): string {
  return path.replace(/\{(\w+)\}/g, (_, name) => {
    const p = (op.parameters ?? []).find((x: any) => x.name === name && x.in === "path");
    return String(p?.schema?.enum?.[0] ?? (name === "file" ? "console.css" : 1));
  });
}

/** Routes that read no store: the API's own documents and the console's files. */
const NO_DATABASE = new Set([
  "GET /openapi.json",
  "GET /docs",
  "GET /",
  "GET /console",
  "GET /console/static/{file}",
]);

describe.skipIf(!ownPostgresAvailable)("the database away", () => {
  it("gives 503 naming the database on every route that needs it, and nothing is lost once it is back", {
    timeout: 120_000,
  }, async () => {
    const { project, run } = await api.newRun(["echo one"]);
    expect((await api.call("GET", "/health")).body).toEqual({ status: "ok" });
    await pg.stop();

    const where = `127.0.0.1:${pg.port}`;
    const health = await api.call("GET", "/health");
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({ status: "degraded", database: "down", queue: "down" });
    expect(health.body.detail).toContain(where);

    const seen: string[] = [];
    for (const [path, methods] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(methods)) {
        const name = `${method.toUpperCase()} ${path}`;
        if (path === "/health") continue;
        const body = op.requestBody
          ? sample(Object.values(op.requestBody.content as Record<string, any>)[0].schema)
          : undefined;
        const started = Date.now();
        const res = await api.call(method.toUpperCase(), fill(path, op), body);
        if (NO_DATABASE.has(name)) {
          expect(res.status, name).toBeLessThan(400);
          continue;
        }
        seen.push(name);
        expect([res.status, res.body?.error], `${name}: ${JSON.stringify(res.body)}`).toEqual([
          503,
          "database_unavailable",
        ]);
        expect(res.body.detail, name).toContain(`the database at postgres://postgres@${where}`);
        expect(res.body.detail, name).toContain("is not reachable");
        // a refused connection is answered at once, not after a pool's wait
        expect(Date.now() - started, name).toBeLessThan(6000);
      }
    }
    // the routes that matter most are among them
    for (const name of [
      "GET /projects",
      "POST /protocols/{id}/actions/{action}",
      "GET /metrics",
      "GET /events/stream",
    ])
      expect(seen).toContain(name);

    await pg.start();
    expect((await api.call("GET", "/health")).status).toBe(200);
    expect((await api.call("GET", `/projects/${project.id}`)).body.id).toBe(project.id);
    expect((await api.call("GET", `/protocols/${run.id}`)).body.status).toBe(run.status);
  });
});
