/** A CodeMachine package that cannot be imported, with the file (and field) at fault. */
import { TasksGodzillaError } from "../shared/errors.js";

export class CodeMachineImportError extends TasksGodzillaError {
  readonly code = "codemachine_import_failed";
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}
