/** Run ids on the command line: a clear error for anything that is not one. */
import { InvalidInputError } from "../shared/errors.js";

export function parseRunId(text: string): number {
  if (!/^\d+$/.test(text))
    throw new InvalidInputError(`"${text}" is not a run id (runs are numbered: see tgz status)`);
  return Number(text);
}
