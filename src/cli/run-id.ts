/** Run and project ids on the command line: a clear error for anything that is not one. */
import { InvalidInputError } from "../shared/errors.js";

function parseId(text: string, kind: string, hint: string): number {
  if (!/^\d+$/.test(text)) throw new InvalidInputError(`"${text}" is not a ${kind} id (${hint})`);
  return Number(text);
}

export function parseRunId(text: string): number {
  return parseId(text, "run", "runs are numbered: see tgz status");
}

export function parseProjectId(text: string): number {
  return parseId(text, "project", "projects are numbered: see tgz status --json");
}
