/** Health, metrics, projects, protocols, steps, specs, queues, imports and the API's own docs. */
import { resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { JOB_KINDS, type JobState } from "../../queue/job-queue.js";
import { createRunFromSpec } from "../../services/create-run.js";
import { QA_POLICIES } from "../../spec/schema.js";
import { projectOut, protocolOut, stepOut } from "../api-shapes.js";
import { IdParam, openApiDocument, route, type ServerContext } from "../server-context.js";

const ProjectCreate = z.object({
  name: z.string().min(1),
  git_url: z.string().min(1),
  local_path: z.string().nullish(),
  base_branch: z.string().default("main"),
  ci_provider: z.string().nullish(),
  default_models: z.record(z.string(), z.string()).nullish(),
  // accepted for compatibility, never stored or returned
  secrets: z.record(z.string(), z.unknown()).nullish(),
});

const ProtocolCreate = z.looseObject({
  protocol_name: z.string().min(1),
  description: z.string().nullish(),
  spec: z.record(z.string(), z.unknown()).nullish(),
  template_config: z.record(z.string(), z.unknown()).nullish(),
});

const ImportBody = z.object({
  path: z.string().min(1),
  workflow: z.string().nullish(),
  qa: z.enum(QA_POLICIES).nullish(),
  name: z.string().nullish(),
});
const AuditBody = z.object({
  project_id: z.number().int().nullish(),
  protocol_id: z.number().int().nullish(),
  backfill: z.boolean().default(false),
});

export function resourceRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { store } = ctx;
  const project = async (id: number) => store.getProject(id);

  route(
    app,
    { method: "GET", url: "/health", summary: "Liveness and database check", auth: false },
    async (_req, reply) => {
      try {
        await store.listProjects();
        return { status: "ok" };
      } catch {
        return reply.status(503).send({ status: "degraded" });
      }
    },
  );
  route(
    app,
    { method: "GET", url: "/metrics", summary: "Prometheus metrics", auth: false },
    async (_req, reply) =>
      reply.type("text/plain; version=0.0.4").send(await ctx.metrics.render(store, ctx.queue)),
  );
  route(
    app,
    { method: "GET", url: "/openapi.json", summary: "This API as OpenAPI 3.1", auth: false },
    async () => openApiDocument(),
  );
  route(
    app,
    { method: "GET", url: "/docs", summary: "API documentation page", auth: false },
    async (_req, reply) =>
      reply
        .type("text/html")
        .send(
          `<!doctype html><meta charset="utf-8"><title>TasksGodzilla API</title><h1>TasksGodzilla API</h1><pre id="doc"></pre><script>fetch('/openapi.json').then(r=>r.json()).then(d=>{document.getElementById('doc').textContent=Object.entries(d.paths).map(([p,m])=>Object.entries(m).map(([k,v])=>k.toUpperCase()+' '+p+' — '+v.summary).join('\\n')).join('\\n')})</script>`,
        ),
  );

  route(
    app,
    { method: "POST", url: "/projects", summary: "Register a project", body: ProjectCreate },
    async (req) => {
      const b = ProjectCreate.parse(req.body);
      const localPath = b.local_path ? resolve(b.local_path) : null;
      return projectOut(
        await store.createProject({
          name: b.name,
          gitUrl: b.git_url,
          localPath,
          baseBranch: b.base_branch,
          ciProvider: b.ci_provider ?? null,
          defaultModels: b.default_models ?? {},
        }),
      );
    },
  );
  route(app, { method: "GET", url: "/projects", summary: "List projects" }, async () =>
    (await store.listProjects()).map(projectOut),
  );
  route(app, { method: "GET", url: "/projects/{id}", summary: "One project" }, async (req) =>
    projectOut(await project(IdParam.parse(req.params).id)),
  );

  route(
    app,
    {
      method: "POST",
      url: "/projects/{id}/protocols",
      summary: "Create a protocol run from a spec",
      body: ProtocolCreate,
    },
    async (req) => {
      const p = await project(IdParam.parse(req.params).id);
      const b = ProtocolCreate.parse(req.body);
      const spec = b.spec ?? (b.template_config?.protocol_spec as Record<string, unknown> | undefined);
      if (!spec) {
        // the original shape without a spec: a pending run that is planned later
        const run = await store.createProtocolRun({
          projectId: p.id,
          protocolName: b.protocol_name,
          baseBranch: p.baseBranch,
          worktreePath: p.localPath,
          description: b.description ?? null,
        });
        return protocolOut(run);
      }
      const { run } = await createRunFromSpec(store, {
        repoDir: p.localPath ?? p.gitUrl,
        spec,
        name: b.protocol_name,
        ...(b.description ? { description: b.description } : {}),
      });
      return protocolOut(run);
    },
  );
  route(
    app,
    { method: "GET", url: "/projects/{id}/protocols", summary: "Protocol runs of a project" },
    async (req) => {
      const p = await project(IdParam.parse(req.params).id);
      return (await store.listProtocolRuns(p.id)).map(protocolOut);
    },
  );
  route(app, { method: "GET", url: "/protocols/{id}", summary: "One protocol run" }, async (req) =>
    protocolOut(await store.getProtocolRun(IdParam.parse(req.params).id)),
  );
  route(
    app,
    { method: "GET", url: "/protocols/{id}/spec", summary: "The frozen spec with its hash and validation" },
    async (req) => {
      const run = await store.getProtocolRun(IdParam.parse(req.params).id);
      const meta = run.templateConfig.spec_meta;
      return {
        protocol_run_id: run.id,
        protocol_name: run.protocolName,
        project_id: run.projectId,
        spec: run.templateConfig.protocol_spec ?? null,
        spec_hash: meta?.spec_hash ?? null,
        validation_status: meta?.status ?? "missing",
        validation_errors: meta?.errors ?? [],
        validated_at: meta?.validated_at ?? null,
      };
    },
  );
  route(
    app,
    { method: "GET", url: "/protocols/{id}/steps", summary: "Steps of a protocol run" },
    async (req) => {
      const run = await store.getProtocolRun(IdParam.parse(req.params).id);
      return (await store.listStepRuns(run.id)).map(stepOut);
    },
  );

  route(
    app,
    {
      method: "POST",
      url: "/projects/{id}/codemachine/import",
      summary: "Import a CodeMachine workflow (queued)",
      body: ImportBody,
    },
    async (req) => {
      const p = await project(IdParam.parse(req.params).id);
      const b = ImportBody.parse(req.body);
      const job = await ctx.queue.enqueue("import", {
        path: b.path,
        repo: p.localPath ?? p.gitUrl,
        workflow: b.workflow ?? null,
        qa: b.qa ?? null,
        name: b.name ?? null,
      });
      return { job, message: "import queued" };
    },
  );
  route(
    app,
    { method: "POST", url: "/specs/audit", summary: "Audit stored specs (queued)", body: AuditBody },
    async (req) => {
      const b = AuditBody.parse(req.body ?? {});
      if (b.project_id) await project(b.project_id);
      if (b.protocol_id) await store.getProtocolRun(b.protocol_id);
      const job = await ctx.queue.enqueue("spec_audit", {
        project_id: b.project_id ?? null,
        protocol_run_id: b.protocol_id ?? null,
        backfill: b.backfill,
      });
      return { job, message: "spec audit queued" };
    },
  );

  route(app, { method: "GET", url: "/queues", summary: "Jobs by state, per kind" }, async () => ({
    counts: await ctx.queue.counts(),
    kinds: JOB_KINDS,
  }));
  route(
    app,
    {
      method: "GET",
      url: "/queues/jobs",
      summary: "Recent jobs (?status=waiting|delayed|active|completed|dead|cancelled)",
    },
    async (req) => {
      const q = z
        .object({
          status: z.string().optional(),
          limit: z.coerce.number().int().min(1).max(500).default(100),
        })
        .parse(req.query);
      const states = q.status ? [q.status as JobState] : undefined;
      return (await ctx.queue.list({ ...(states ? { states } : {}), limit: q.limit })).map((j) => ({
        id: j.id,
        kind: j.kind,
        state: j.state,
        payload: j.payload,
        attempts: j.attempts,
        max_attempts: j.maxAttempts,
        last_error: j.lastError,
        created_at: j.createdAt,
        updated_at: j.updatedAt,
      }));
    },
  );
}
