/** The OpenAPI document: committed and up to date, complete for every route, and the readable /docs page. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openApiText } from "../../src/server/openapi-file.js";
import { RUN_ACTIONS, STEP_ACTIONS } from "../../src/services/action-rules.js";
import { protocolSpecJsonSchema } from "../../src/spec/json-schema.js";
import { type Api, startApi } from "./api-harness.js";

let api: Api;
let doc: any;

beforeAll(async () => {
  api = await startApi();
  doc = (await api.call("GET", "/openapi.json", undefined, { authorization: "" })).body;
});
afterAll(async () => {
  await api.close();
});

const operations = () =>
  Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods as Record<string, any>).map(([method, op]) => ({ path, method, op })),
  );

describe("OpenAPI", () => {
  it("is committed as docs/openapi.json and up to date (regenerate: npx tsx scripts/write-openapi.ts)", async () => {
    const committed = readFileSync(join(import.meta.dirname, "../../docs/openapi.json"), "utf8");
    expect(committed, "docs/openapi.json is stale: run npx tsx scripts/write-openapi.ts").toBe(
      await openApiText(),
    );
    expect(JSON.parse(committed)).toEqual(doc);
  });

  it("documents every registered route with parameters, a body where it takes one, and typed replies", async () => {
    // the routes of the original API that the service keeps, plus the streams, webhooks, docs and console
    expect(
      operations()
        .map((o) => `${o.method.toUpperCase()} ${o.path}`)
        .sort(),
    ).toEqual(
      [
        "GET /health",
        "GET /metrics",
        "GET /openapi.json",
        "GET /docs",
        "POST /projects",
        "GET /projects",
        "GET /projects/{id}",
        "POST /projects/{id}/protocols",
        "GET /projects/{id}/protocols",
        "GET /protocols/{id}",
        "GET /protocols/{id}/spec",
        "POST /protocols/{id}/actions/{action}",
        "GET /protocols/{id}/steps",
        "GET /protocols/{id}/usage",
        "POST /steps/{id}/actions/{action}",
        // what a person reads about runs
        "GET /protocols",
        "GET /protocols/{id}/timeline",
        "GET /protocols/{id}/transcript",
        "GET /protocols/{id}/diff",
        "GET /steps/{id}/transcript",
        "GET /steps/{id}/diff",
        "GET /protocols/{id}/events",
        "GET /events",
        "GET /protocols/{id}/events/stream",
        "GET /events/stream",
        "POST /projects/{id}/codemachine/import",
        "POST /specs/audit",
        "GET /queues",
        "GET /queues/jobs",
        "POST /webhooks/github",
        "POST /webhooks/gitlab",
        "GET /",
        "GET /console",
        "GET /console/static/{file}",
      ].sort(),
    );
    for (const { path, method } of operations())
      expect(
        api.app.hasRoute({ method: method.toUpperCase() as "GET", url: path.replace(/\{(\w+)\}/g, ":$1") }),
        path,
      ).toBe(true);
    for (const { path, method, op } of operations()) {
      const where = `${method} ${path}`;
      const ok = op.responses["200"];
      expect(ok, where).toBeDefined();
      expect(Object.keys(ok.content ?? {}).length, `${where} reply`).toBeGreaterThan(0);
      expect(op.responses["500"], where).toBeDefined();
      for (const name of path.matchAll(/\{(\w+)\}/g))
        expect(
          op.parameters.find((p: { name: string; in: string }) => p.name === name[1] && p.in === "path"),
          where,
        ).toBeDefined();
      if (method === "post" && !path.includes("/actions/"))
        expect(op.requestBody?.content?.["application/json"]?.schema, `${where} body`).toBeDefined();
    }
    const events = doc.paths["/events"].get.parameters.map((p: { name: string }) => p.name);
    expect(events).toEqual(expect.arrayContaining(["limit", "after", "project_id", "event_type", "kind"]));
    expect(doc.paths["/events"].get.responses["200"].headers).toHaveProperty("X-Next-Cursor");
  });

  it("lists the allowed actions and types the spec body with the ProtocolSpec schema", () => {
    const action = (path: string) =>
      doc.paths[path].post.parameters.find((p: { name: string }) => p.name === "action").schema.enum;
    expect(action("/protocols/{id}/actions/{action}")).toEqual([...RUN_ACTIONS]);
    expect(action("/steps/{id}/actions/{action}")).toEqual([...STEP_ACTIONS]);
    const body = doc.paths["/projects/{id}/protocols"].post.requestBody.content["application/json"].schema;
    expect(body.properties.spec.anyOf).toContainEqual({ $ref: "#/components/schemas/ProtocolSpec" });
    const published = protocolSpecJsonSchema() as { properties: Record<string, unknown> };
    expect(Object.keys(doc.components.schemas.ProtocolSpec.properties)).toEqual(
      Object.keys(published.properties),
    );
    expect(doc.components.schemas.ProtocolSpec.properties.steps.items).toEqual({
      $ref: "#/components/schemas/StepSpec",
    });
    expect(doc.paths["/protocols/{id}"].get.responses["200"].content["application/json"].schema).toEqual({
      $ref: "#/components/schemas/ProtocolRunDetail",
    });
    expect(doc.components.schemas.ProtocolRunDetail.properties.allowed_actions).toEqual(
      doc.components.schemas.ProtocolRun.properties.allowed_actions,
    );
    expect(doc.paths["/webhooks/github"].post.security).toEqual([{ githubSignature: [] }]);
    expect(doc.paths["/health"].get.security).toEqual([]);
  });

  it("serves a readable, self-contained docs page", async () => {
    const page = await api.call("GET", "/docs", undefined, { authorization: "" });
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    const html = page.body as string;
    expect(html).not.toMatch(/<script|<link|src="http|href="http/);
    for (const { path } of operations()) expect(html).toContain(`<code>${path}</code>`);
    expect(html).toContain('id="schema-ProtocolSpec"');
    expect(html).toContain("<code>&#34;run_next_step&#34;</code>");
  });
});
