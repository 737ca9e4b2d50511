/**
 * Which driver errors mean "the backend is away", not "the request is wrong": a refused, reset or
 * dropped connection, a pool that cannot get one, a Postgres shutting down or starting up, a SQLite
 * file still locked after its busy timeout, Redis reconnecting. The store and the queue adapters
 * ask this about their drivers' errors and raise an InfrastructureError of their own for them; no
 * other code looks at driver codes or messages.
 */

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
  "SQLITE_BUSY_SNAPSHOT",
  "SQLITE_BUSY_RECOVERY",
  "SQLITE_LOCKED",
]);

/**
 * SQLSTATE: connection exception (08…), insufficient resources (53…), operator intervention:
 * admin shutdown, crash shutdown, cannot connect now (57P01–57P03).
 */
const PG_STATE = /^(08|53|57P0[123]$)/;

/** pg, pg-pool and ioredis report a connection lost or never made with a message only. */
const LOST_CONNECTION =
  /Connection terminated|Connection is closed|terminating connection due to administrator command|socket hang up|Client has encountered a connection error|timeout exceeded when trying to connect|the database system is (shutting down|starting up)|Stream isn't writeable|Reached the max retries per request limit|Command timed out/i;

export function isConnectionFault(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (NODE_CODES.has(code) || PG_STATE.test(code))) return true;
    if (e instanceof Error && LOST_CONNECTION.test(e.message)) return true;
    // an AggregateError (a host with several addresses, none answering) carries its causes in a list
    const errors = (e as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.some((x) => isConnectionFault(x))) return true;
  }
  return false;
}
