/** Errors to HTTP: what was wrong and where, never a stack trace. */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { ZodError } from "zod";
import { CodeMachineImportError } from "../codemachine/import-errors.js";
import { WorktreeGoneError } from "../git/run-worktree.js";
import { ActionRefusedError } from "../services/action-rules.js";
import { SpecRefusedError } from "../services/create-run.js";
import { NoCheckpointsError } from "../services/step-diff.js";
import {
  InfrastructureError,
  InvalidInputError,
  infrastructureFailure,
  NotFoundError,
  TasksGodzillaError,
} from "../shared/errors.js";
import { DuplicateNameError, IllegalTransitionError, StatusConflictError } from "../store/store-errors.js";

/** The reply of a route whose work goes through the job queue, when its Redis is away. */
export const QUEUE_UNAVAILABLE = {
  description:
    "The job queue (Redis) is not reachable: the call fails fast (`queue_unavailable`); or the database is not (`database_unavailable`)",
};

export class UnauthorizedError extends TasksGodzillaError {
  readonly code = "unauthorized";
}

/** The bearer token was right, but the project asks for its own token (X-Project-Token). */
export class ForbiddenError extends TasksGodzillaError {
  readonly code = "forbidden";
}

/** The body is of a media type the route cannot read. */
export class UnsupportedMediaTypeError extends TasksGodzillaError {
  readonly code = "unsupported_media_type";
}

function statusOf(err: unknown): number {
  if (
    err instanceof ZodError ||
    err instanceof InvalidInputError ||
    err instanceof CodeMachineImportError ||
    err instanceof SpecRefusedError
  )
    return 400;
  if (err instanceof UnauthorizedError) return 401;
  if (err instanceof ForbiddenError) return 403;
  if (err instanceof NotFoundError) return 404;
  if (err instanceof UnsupportedMediaTypeError) return 415;
  if (err instanceof InfrastructureError) return 503;
  if (
    err instanceof ActionRefusedError ||
    err instanceof IllegalTransitionError ||
    err instanceof StatusConflictError ||
    err instanceof DuplicateNameError ||
    err instanceof WorktreeGoneError ||
    err instanceof NoCheckpointsError
  )
    return 409;
  const e = err as FastifyError;
  if (typeof e.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500) return e.statusCode;
  return 500;
}

export function errorHandler(thrown: unknown, request: FastifyRequest, reply: FastifyReply): void {
  // a backend that is away answers 503 however deep the route wrapped its error
  const err = infrastructureFailure(thrown) ?? thrown;
  const status = statusOf(err);
  if (err instanceof ZodError) {
    void reply.status(400).send({
      error: "invalid_request",
      detail: err.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "),
      request_id: request.id,
    });
    return;
  }
  if (status === 500) {
    request.log.error({ err }, "request failed");
    void reply.status(500).send({
      error: "internal_error",
      detail: "internal error; see the server log",
      request_id: request.id,
    });
    return;
  }
  const code = TasksGodzillaError.is(err) ? err.code : ((err as FastifyError).code ?? "error");
  void reply.status(status).send({
    error: code,
    detail: (err as Error).message,
    // every pointer of a refused spec, as data too
    ...(err instanceof SpecRefusedError ? { errors: err.errors } : {}),
    request_id: request.id,
  });
}
