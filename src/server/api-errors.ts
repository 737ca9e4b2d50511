/** Errors to HTTP: what was wrong and where, never a stack trace. */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { ZodError } from "zod";
import { InvalidInputError, NotFoundError, TasksGodzillaError } from "../shared/errors.js";
import { IllegalTransitionError, StatusConflictError } from "../store/store-errors.js";

export class ConflictError extends TasksGodzillaError {
  readonly code = "conflict";
}

export class UnauthorizedError extends TasksGodzillaError {
  readonly code = "unauthorized";
}

function statusOf(err: unknown): number {
  if (err instanceof ZodError || err instanceof InvalidInputError) return 400;
  if (err instanceof UnauthorizedError) return 401;
  if (err instanceof NotFoundError) return 404;
  if (
    err instanceof ConflictError ||
    err instanceof IllegalTransitionError ||
    err instanceof StatusConflictError
  )
    return 409;
  const e = err as FastifyError;
  if (typeof e.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500) return e.statusCode;
  return 500;
}

export function errorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
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
  void reply.status(status).send({ error: code, detail: (err as Error).message, request_id: request.id });
}
