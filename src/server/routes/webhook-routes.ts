/**
 * CI webhooks. They authenticate by their own secret (TASKSGODZILLA_WEBHOOK_TOKEN), never the API's
 * bearer token, which GitHub and GitLab cannot send: GitHub by an HMAC of the raw body, GitLab by its
 * token header. A bad or missing signature is a 401 and a metric, and nothing is recorded.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { EVENT } from "../../runner/event-types.js";
import { NotFoundError } from "../../shared/errors.js";
import type { ProtocolRun } from "../../store/types.js";
import { UnauthorizedError } from "../api-errors.js";
import { githubSignatureMatches, safeEqual } from "../auth.js";
import { route, type ServerContext } from "../server-context.js";

type Outcome = "success" | "running" | "failure" | "merged" | "other";

interface CiEvent {
  provider: "github" | "gitlab";
  kind: string;
  branch: string | null;
  status: string;
  outcome: Outcome;
}

const SUCCESS = new Set(["success", "neutral", "passed", "ok", "merge"]);
const RUNNING = new Set(["in_progress", "queued", "requested", "pending", "running", "created"]);
const FAILURE = new Set([
  "failure",
  "failed",
  "timed_out",
  "cancelled",
  "canceled",
  "action_required",
  "error",
]);

function outcomeOf(status: string): Outcome {
  const s = status.toLowerCase();
  if (s === "merged") return "merged";
  return SUCCESS.has(s) ? "success" : RUNNING.has(s) ? "running" : FAILURE.has(s) ? "failure" : "other";
}

type Body = Record<string, unknown>;

/** A string at a dotted path of a JSON payload (`branches.0.name`), if there is one. */
function at(o: unknown, path: string): string | undefined {
  const v = path
    .split(".")
    .reduce<unknown>(
      (cur, k) => (cur && typeof cur === "object" ? (cur as Record<string, unknown>)[k] : undefined),
      o,
    );
  return typeof v === "string" ? v : typeof v === "boolean" ? String(v) : undefined;
}

function githubEvent(kind: string, b: Body): CiEvent {
  const pick = (...paths: string[]) => paths.map((p) => at(b, p)).find((v) => v !== undefined);
  const [branch, status] =
    kind === "workflow_run"
      ? [pick("workflow_run.head_branch"), pick("workflow_run.conclusion", "workflow_run.status")]
      : kind === "check_suite" || kind === "check_run"
        ? [
            pick(`${kind}.head_branch`, "check_run.check_suite.head_branch"),
            pick(`${kind}.conclusion`, `${kind}.status`),
          ]
        : kind === "pull_request"
          ? [
              pick("pull_request.head.ref"),
              at(b, "pull_request.merged") === "true" ? "merged" : pick("pull_request.state"),
            ]
          : kind === "status"
            ? [pick("branches.0.name", "ref"), pick("state")]
            : [undefined, undefined];
  return {
    provider: "github",
    kind,
    branch: branch ?? null,
    status: status ?? "",
    outcome: outcomeOf(status ?? ""),
  };
}

function gitlabEvent(b: Body): CiEvent {
  const status = at(b, "object_attributes.status") ?? at(b, "object_attributes.state") ?? "";
  const branch =
    at(b, "object_attributes.source_branch") ?? at(b, "object_attributes.ref") ?? at(b, "ref") ?? null;
  return {
    provider: "gitlab",
    kind: at(b, "object_kind") ?? "unknown",
    branch,
    status,
    outcome: outcomeOf(status),
  };
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function webhookRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { store, metrics } = ctx;

  const verify = (req: FastifyRequest, provider: "github" | "gitlab") => {
    const secret = ctx.webhookToken;
    const raw = (req as FastifyRequest & { rawBody?: string }).rawBody ?? "";
    const ok = secret
      ? provider === "github"
        ? githubSignatureMatches(header(req, "x-hub-signature-256"), raw, secret)
        : safeEqual(
            header(req, "x-gitlab-token") ?? header(req, "x-tasksgodzilla-webhook-token") ?? "",
            secret,
          )
      : Boolean(ctx.allowUnsignedWebhooks);
    if (!ok) {
      metrics.inc("tasksgodzilla_webhooks_total", { provider, status: "unauthorized" });
      throw new UnauthorizedError(
        secret
          ? `${provider} webhook signature does not match`
          : "webhooks are refused: TASKSGODZILLA_WEBHOOK_TOKEN is not set",
      );
    }
  };

  const findRun = async (ci: CiEvent, explicit: unknown): Promise<ProtocolRun> => {
    if (explicit !== undefined && explicit !== null && explicit !== "")
      return store.getProtocolRun(Number(explicit));
    const ref = (ci.branch ?? "").replace(/^refs\/(heads|tags)\//, "");
    const candidates = [ref, ref.split("/").pop() ?? ""].filter(Boolean);
    // branch names repeat across repositories: the newest run with that name is the one CI just built
    let newest: ProtocolRun | undefined;
    for (const project of await store.listProjects()) {
      for (const r of await store.listProtocolRuns(project.id)) {
        if (candidates.includes(r.protocolName) && (!newest || r.id > newest.id)) newest = r;
      }
    }
    if (newest) return newest;
    throw new NotFoundError("protocol run for branch", ref || "(none)");
  };

  const handle = async (ci: CiEvent, req: FastifyRequest) => {
    const q = req.query as { protocol_run_id?: string };
    const run = await findRun(ci, q.protocol_run_id ?? (req.body as Body | undefined)?.protocol_run_id);
    metrics.inc("tasksgodzilla_webhooks_total", { provider: ci.provider, status: "received" });
    await store.appendEvent({
      protocolRunId: run.id,
      eventType: "ci_webhook",
      message: `${ci.provider} ${ci.kind}: ${ci.status || "?"} on ${ci.branch ?? "?"}`,
      metadata: { ...ci },
    });
    let action = "recorded";
    if (
      ci.outcome === "failure" &&
      ctx.ciActions.onFailure === "block" &&
      ["running", "planned", "paused"].includes(run.status)
    ) {
      await store.transitionProtocol(run.id, "blocked", {
        eventType: EVENT.protocolBlocked,
        message: "CI failed; protocol blocked",
        metadata: { reason: "ci_failed", ci },
      });
      action = "blocked";
    } else if (
      ci.outcome === "success" &&
      ctx.ciActions.onSuccess === "run" &&
      ["planned", "paused", "blocked", "failed"].includes(run.status)
    ) {
      const job = await ctx.queue.enqueue(
        "execute_protocol",
        { protocol_run_id: run.id },
        { singletonKey: `run:${run.id}` },
      );
      await store.appendEvent({
        protocolRunId: run.id,
        eventType: "qa_enqueued",
        message: "CI passed; run queued",
        metadata: { job_id: job.id },
      });
      action = "run_queued";
    }
    return { protocol_run_id: run.id, outcome: ci.outcome, action };
  };

  route(
    app,
    { method: "POST", url: "/webhooks/github", summary: "GitHub webhook (X-Hub-Signature-256)", auth: false },
    async (req) => {
      verify(req, "github");
      return handle(githubEvent(header(req, "x-github-event") ?? "unknown", (req.body ?? {}) as Body), req);
    },
  );
  route(
    app,
    { method: "POST", url: "/webhooks/gitlab", summary: "GitLab webhook (X-Gitlab-Token)", auth: false },
    async (req) => {
      verify(req, "gitlab");
      return handle(gitlabEvent((req.body ?? {}) as Body), req);
    },
  );
}
