/**
 * Which job failures are worth another attempt: our own errors may say so themselves; a dropped or
 * refused database or Redis connection, a busy SQLite file, a Postgres serialisation failure or
 * shutdown are transient; anything else (a bug, bad input) is not, and goes to the dead letters.
 */
import { TasksGodzillaError } from "../shared/errors.js";

const NODE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "SQLITE_BUSY",
  "SQLITE_LOCKED",
]);

/** SQLSTATE: connection exception (08…), insufficient resources (53…), shutdown (57P01–57P03), serialization, deadlock. */
const PG_STATE = /^(08|53|57P0[123]$|40001$|40P01$)/;

/** pg and ioredis report a connection lost mid-query with a message only. */
const LOST_CONNECTION =
  /Connection terminated|Connection is closed|terminating connection due to administrator command|socket hang up|Client has encountered a connection error/i;

export function isTransientError(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (TasksGodzillaError.is(e) && e.retryable) return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (NODE_CODES.has(code) || PG_STATE.test(code))) return true;
    if (e instanceof Error && LOST_CONNECTION.test(e.message)) return true;
  }
  return false;
}
