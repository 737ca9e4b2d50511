/** The error a step's files and placeholders raise when they cannot be resolved. */
import { TasksGodzillaError } from "../shared/errors.js";

/** A resolution failure with the JSON pointer of the offending spec field. */
export class StepResolutionError extends TasksGodzillaError {
  readonly code = "spec_validation_error";
  constructor(
    readonly pointer: string,
    message: string,
  ) {
    super(message);
  }
}
