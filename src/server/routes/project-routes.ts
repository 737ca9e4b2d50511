/** Projects, creating protocol runs in them, CodeMachine imports and spec audits. */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { MAX_PROTOCOL_NAME } from "../../git/protocol-names.js";
import { createRunFromSpec, createRunFromTask } from "../../services/create-run.js";
import { dispatchOutcome, jobs, queueDispatch } from "../../services/dispatch.js";
import { importRunNow, queueImport } from "../../services/import-run.js";
import { InvalidInputError } from "../../shared/errors.js";
import { ProtocolSpec, QA_POLICIES } from "../../spec/schema.js";
import type { Project } from "../../store/types.js";
import { QUEUE_UNAVAILABLE } from "../api-errors.js";
import { EnqueuedJob, GuardedProjectOut, ProjectOut, ProtocolRunOut, projectOut } from "../api-shapes.js";
import { projectsHiddenFrom, requireProjectAccess } from "../auth.js";
import { documentedAs } from "../openapi.js";
import { checkRunPlaces } from "../run-places.js";
import { runReply, runsReply } from "../run-replies.js";
import { Id, IdParam, route, type ServerContext } from "../server-context.js";

const ProjectCreate = z.object({
  name: z.string().min(1),
  git_url: z.string().min(1).describe("Clone URL or a local path; nothing is cloned by the server."),
  local_path: z.string().min(1).nullish().describe("The checkout on this machine; needed to run anything."),
  base_branch: z.string().min(1).default("main"),
  ci_provider: z.string().nullish(),
  default_models: z.record(z.string(), z.string()).nullish(),
  secrets: z
    .object({ api_token: z.string().min(1).optional().describe("Asked for as X-Project-Token.") })
    .catchall(z.unknown())
    .nullish()
    .describe(
      "Stored, never returned (replies list only their names). api_token guards the project's routes.",
    ),
});

/** The spec as sent: frozen byte for byte (its hash is of what the client sent). */
const SpecField = documentedAs(z.record(z.string(), z.unknown()), ProtocolSpec);

/** A run's name: a folder and a branch name, so short; a number prefix numbering can hold exactly. */
const ProtocolName = z
  .string()
  .min(1)
  .max(MAX_PROTOCOL_NAME)
  .describe(
    `At most ${MAX_PROTOCOL_NAME} characters. Kept as it is when it starts with NNNN- (it is the branch CI reports on; one path segment of letters, digits, '.', '_' and '-'; NNNN at most 2^53 - 2); else numbered.`,
  );

const ProtocolCreate = z.looseObject({
  protocol_name: ProtocolName,
  status: z
    .enum(["pending", "planned"])
    .default("pending")
    .describe("pending (default): without a spec the run waits to be planned; with one it is planned."),
  base_branch: z.string().min(1).nullish().describe("Default: the project's base branch."),
  worktree_path: z
    .string()
    .min(1)
    .nullish()
    .describe(
      "Where the steps run; default the project's checkout. Inside the checkout, a linked worktree of it or the data dir's worktrees folder.",
    ),
  protocol_root: z
    .string()
    .min(1)
    .nullish()
    .describe("The protocol folder; default <worktree>/.protocols/<name>. Inside the same places."),
  description: z.string().nullish().describe("The task; a run without a spec is planned from it on start."),
  spec: SpecField.nullish().describe(
    "A ProtocolSpec. One that would block the run when it starts (schema, references, engines, prompts, paths outside the project's roots) is a 400 `spec_invalid` naming every pointer, and nothing is created.",
  ),
  template_config: z
    .looseObject({ protocol_spec: SpecField.nullish() })
    .nullish()
    .describe("The original's place for the spec (template_config.protocol_spec)."),
  template_source: z.record(z.string(), z.unknown()).nullish(),
});

const ImportBody = z.object({
  protocol_name: ProtocolName,
  workspace_path: z
    .string()
    .min(1)
    .describe("The CodeMachine workspace (with .codemachine) the run works in."),
  base_branch: z.string().min(1).nullish(),
  description: z.string().nullish(),
  enqueue: z
    .boolean()
    .default(false)
    .describe("true: a job imports it; false: imported now (errors are 400s)."),
  workflow: z.string().nullish().describe("Which *.workflow.js, when the package has several."),
  qa: z.enum(QA_POLICIES).nullish().describe("QA for every imported step; default the project's."),
});

const ImportReply = z.object({
  protocol_run: ProtocolRunOut,
  job: EnqueuedJob.optional(),
  message: z.string(),
});

const AuditBody = z.object({
  project_id: Id.nullish(),
  protocol_id: Id.nullish(),
  backfill: z.boolean().default(false),
  interval_seconds: z.number().nullish().describe("Accepted for compatibility; audits run when asked."),
});

const existingDir = (field: string, path: string) => {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new InvalidInputError(`${field}: ${abs} does not exist`);
  return abs;
};

export function projectRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { store } = ctx;
  const withSecrets = async (projects: Project[]) => {
    const names = await ctx.secrets.names(projects.map((p) => p.id));
    return projects.map((p) => projectOut(p, names.get(p.id) ?? []));
  };
  const accessible = async (req: Parameters<typeof requireProjectAccess>[1], id: number) => {
    const project = await store.getProject(id);
    await requireProjectAccess(ctx.secrets, req, project.id);
    return project;
  };

  route(
    app,
    ctx,
    {
      method: "POST",
      url: "/projects",
      tag: "projects",
      summary: "Register a project",
      body: ProjectCreate,
      responses: { 200: ProjectOut },
    },
    async ({ body }) => {
      const localPath = body.local_path ? existingDir("local_path", body.local_path) : null;
      // the project and its secrets together or not at all: a project must never exist unguarded
      const project = await store.transaction(async (tx) => {
        const created = await tx.createProject({
          name: body.name,
          gitUrl: body.git_url,
          localPath,
          baseBranch: body.base_branch,
          ciProvider: body.ci_provider ?? null,
          defaultModels: body.default_models ?? {},
        });
        if (body.secrets) await tx.secrets.set(created.id, body.secrets);
        return created;
      });
      return (await withSecrets([project]))[0];
    },
  );
  route(
    app,
    ctx,
    {
      method: "GET",
      url: "/projects",
      tag: "projects",
      summary: "List projects",
      description:
        "A project guarded by an api_token shows only its id and name unless the request carries its X-Project-Token.",
      responses: { 200: z.array(ProjectOut.or(GuardedProjectOut)) },
    },
    async (_input, req) => {
      const projects = await store.listProjects();
      if (projects.length === 0) return [];
      const hidden = new Set(await projectsHiddenFrom(ctx.secrets, req));
      const shown = await withSecrets(projects.filter((p) => !hidden.has(p.id)));
      return projects.map((p) =>
        hidden.has(p.id)
          ? { id: p.id, name: p.name, guarded: true as const }
          : shown.find((o) => o.id === p.id)!,
      );
    },
  );
  route(
    app,
    ctx,
    {
      method: "GET",
      url: "/projects/{id}",
      tag: "projects",
      summary: "One project",
      params: IdParam,
      responses: { 200: ProjectOut },
      projectToken: true,
    },
    async ({ params }, req) => (await withSecrets([await accessible(req, params.id)]))[0],
  );

  route(
    app,
    ctx,
    {
      method: "POST",
      url: "/projects/{id}/protocols",
      tag: "protocols",
      summary: "Create a protocol run in this project, from a spec or (pending) from a description",
      params: IdParam,
      body: ProtocolCreate,
      responses: {
        200: ProtocolRunOut,
        409: { description: "The project already has a run of that name" },
      },
      projectToken: true,
    },
    async ({ params, body }, req) => {
      const project = await accessible(req, params.id);
      const spec = body.spec ?? body.template_config?.protocol_spec ?? undefined;
      if (!spec && body.status === "planned")
        throw new InvalidInputError(
          "status: a planned run needs a spec (spec or template_config.protocol_spec)",
        );
      const input = {
        projectId: project.id,
        name: body.protocol_name,
        ...(body.description ? { description: body.description } : {}),
        ...(body.base_branch ? { baseBranch: body.base_branch } : {}),
        ...(await checkRunPlaces(project, body, ctx.configFor)),
      };
      const { run } = spec
        ? await createRunFromSpec(
            store,
            { ...input, spec },
            { registry: ctx.registry, configFor: ctx.configFor },
          )
        : await createRunFromTask(store, input);
      return runReply(store, run);
    },
  );
  route(
    app,
    ctx,
    {
      method: "GET",
      url: "/projects/{id}/protocols",
      tag: "protocols",
      summary: "Protocol runs of a project",
      params: IdParam,
      responses: { 200: z.array(ProtocolRunOut) },
      projectToken: true,
    },
    async ({ params }, req) => {
      const project = await accessible(req, params.id);
      return runsReply(store, await store.listProtocolRuns(project.id));
    },
  );

  route(
    app,
    ctx,
    {
      method: "POST",
      url: "/projects/{id}/codemachine/import",
      tag: "protocols",
      summary: "Import a CodeMachine workspace as a protocol run (now, or queued with enqueue=true)",
      params: IdParam,
      body: ImportBody,
      responses: {
        200: ImportReply,
        409: { description: "The project already has a run of that name" },
        503: QUEUE_UNAVAILABLE,
      },
      projectToken: true,
    },
    async ({ params, body }, req) => {
      const project = await accessible(req, params.id);
      const workspace = existingDir("workspace_path", body.workspace_path);
      const target = {
        projectId: project.id,
        name: body.protocol_name,
        worktreePath: workspace,
        ...(body.description ? { description: body.description } : {}),
        ...(body.base_branch ? { baseBranch: body.base_branch } : {}),
      };
      if (body.enqueue) {
        const source = { workspace_path: workspace, workflow: body.workflow ?? null, qa: body.qa ?? null };
        const done = await dispatchOutcome(
          await queueImport(store, source, target),
          queueDispatch(ctx.queue),
        );
        return { protocol_run: await runReply(store, done.run), job: done.job, message: done.message };
      }
      const { run } = await importRunNow(
        store,
        workspace,
        { repoDir: workspace, workflow: body.workflow ?? undefined, qa: body.qa ?? undefined },
        target,
        { registry: ctx.registry, configFor: ctx.configFor },
      );
      return { protocol_run: await runReply(store, run), message: "imported" };
    },
  );

  route(
    app,
    ctx,
    {
      method: "POST",
      url: "/specs/audit",
      tag: "protocols",
      summary: "Audit stored specs (queued)",
      body: AuditBody,
      responses: { 200: z.object({ job: EnqueuedJob, message: z.string() }), 503: QUEUE_UNAVAILABLE },
    },
    async ({ body }, req) => {
      if (body.project_id) await accessible(req, body.project_id);
      if (body.protocol_id) {
        const run = await store.getProtocolRun(body.protocol_id);
        await requireProjectAccess(ctx.secrets, req, run.projectId);
      }
      const job = await queueDispatch(ctx.queue)(
        jobs.specAudit({
          projectId: body.project_id ?? undefined,
          runId: body.protocol_id ?? undefined,
          backfill: body.backfill,
        }),
      );
      return { job, message: "spec audit queued" };
    },
  );
}
