/**
 * CI webhooks. They authenticate by their own secret (TASKSGODZILLA_WEBHOOK_TOKEN), never the API's
 * bearer token, which GitHub and GitLab cannot send: GitHub by an HMAC of the raw body (JSON or
 * form-encoded), GitLab by its token header. A bad or missing signature is a 401 and a metric, and
 * nothing is recorded.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import { applyCiResult, type CiEvent } from "../../services/apply-ci-result.js";
import { dispatchOutcome, queueDispatch } from "../../services/dispatch.js";
import { InvalidInputError, NotFoundError } from "../../shared/errors.js";
import { QUEUE_UNAVAILABLE, UnauthorizedError } from "../api-errors.js";
import { EnqueuedJob } from "../api-shapes.js";
import { githubSignatureMatches, safeEqual } from "../auth.js";
import { Id, route, type ServerContext } from "../server-context.js";
import { githubEvent, gitlabEvent } from "../webhooks/ci-events.js";

type Body = Record<string, unknown>;

const WebhookQuery = z.object({
  protocol_run_id: Id.optional().describe("The run, when the branch does not name it."),
});

const WebhookReply = z.object({
  protocol_run_id: z.number().int(),
  outcome: z.enum(["success", "running", "failure", "merged", "other"]),
  action: z.enum([
    "duplicate",
    "recorded",
    "qa_enqueued",
    "step_completed",
    "completed",
    "step_failed",
    "blocked",
    "ignored",
  ]),
  message: z.string(),
  job: EnqueuedJob.optional(),
});

const PingReply = z.object({ message: z.literal("pong") });

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** GitHub may post `application/x-www-form-urlencoded` with the JSON in a `payload` field. */
function payloadOf(body: unknown): Body {
  if (!body || typeof body !== "object" || Array.isArray(body)) return {};
  const b = body as Body;
  if (typeof b.payload !== "string") return b;
  try {
    return JSON.parse(b.payload) as Body;
  } catch {
    throw new InvalidInputError("payload: the form field is not valid JSON");
  }
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
      metrics.webhook(provider, "unauthorized");
      throw new UnauthorizedError(
        secret
          ? `${provider} webhook signature does not match`
          : "webhooks are refused: TASKSGODZILLA_WEBHOOK_TOKEN is not set (or set TASKSGODZILLA_ALLOW_UNSIGNED_WEBHOOKS=true)",
      );
    }
  };

  const handle = async (
    ci: CiEvent,
    body: Body,
    query: z.infer<typeof WebhookQuery>,
    deliveryId: string | undefined,
  ) => {
    metrics.webhook(ci.provider, "received");
    const runId =
      query.protocol_run_id ?? WebhookQuery.parse({ protocol_run_id: body.protocol_run_id }).protocol_run_id;
    const applied = await applyCiResult(store, { ci, runId, deliveryId }, ctx.ci).catch((err: unknown) => {
      if (err instanceof NotFoundError) metrics.webhook(ci.provider, "unmatched");
      throw err;
    });
    const done = await dispatchOutcome(applied, queueDispatch(ctx.queue));
    metrics.webhook(ci.provider, applied.action);
    return {
      protocol_run_id: done.run.id,
      outcome: ci.outcome,
      action: applied.action,
      message: done.message,
      ...(done.job ? { job: done.job } : {}),
    };
  };

  const common = {
    method: "POST" as const,
    tag: "webhooks",
    query: WebhookQuery,
    body: z
      .unknown()
      .describe("The provider's webhook payload; GitHub's may also come form-encoded in a `payload` field."),
    bodyTypes: ["application/json", "application/x-www-form-urlencoded"],
    responses: {
      200: WebhookReply,
      401: { description: "Bad or missing signature/token, or webhooks not configured; nothing recorded" },
      404: { description: "No run for the branch (or the given protocol_run_id)" },
      503: QUEUE_UNAVAILABLE,
    },
  };

  route(
    app,
    ctx,
    {
      ...common,
      url: "/webhooks/github",
      summary:
        "GitHub webhook: workflow_run, check_suite, check_run, pull_request, status (ping answers pong)",
      auth: "github-signature",
      responses: {
        ...common.responses,
        200: { description: "Applied, or pong for a ping", schema: WebhookReply.or(PingReply) },
      },
    },
    async ({ query, body }, req) => {
      verify(req, "github");
      const kind = header(req, "x-github-event") ?? "unknown";
      if (kind === "ping") {
        metrics.webhook("github", "ping");
        return { message: "pong" as const };
      }
      const payload = payloadOf(body);
      return handle(githubEvent(kind, payload), payload, query, header(req, "x-github-delivery"));
    },
  );
  route(
    app,
    ctx,
    {
      ...common,
      url: "/webhooks/gitlab",
      summary: "GitLab webhook: pipeline, merge_request and other object_attributes.status events",
      auth: "gitlab-token",
    },
    async ({ query, body }, req) => {
      verify(req, "gitlab");
      const payload = payloadOf(body);
      return handle(gitlabEvent(payload), payload, query, header(req, "x-gitlab-event-uuid"));
    },
  );
}
