/** `tgz spec validate|schema|hash`. */

import { readSpecFile } from "../../services/create-run.js";
import { specHash } from "../../spec/canonical-hash.js";
import { protocolSpecJsonSchema } from "../../spec/json-schema.js";
import { validateSpecSchema } from "../../spec/validate-spec.js";

export function specValidateCommand(file: string, opts: { json?: boolean }): number {
  const raw = readSpecFile(file);
  const result = validateSpecSchema(raw);
  const hash = specHash(raw);
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({ file, valid: result.ok, spec_hash: hash, errors: result.errors }, null, 2)}\n`,
    );
  } else if (result.ok) {
    process.stdout.write(`${file}: valid (${result.spec.steps.length} steps, spec hash ${hash})\n`);
  } else {
    process.stderr.write(`${file}: ${result.errors.length} error(s)\n`);
    for (const e of result.errors) process.stderr.write(`  ${e.pointer || "/"}: ${e.message}\n`);
  }
  return result.ok ? 0 : 1;
}

export function specSchemaCommand(): number {
  process.stdout.write(`${JSON.stringify(protocolSpecJsonSchema(), null, 2)}\n`);
  return 0;
}

export function specHashCommand(file: string): number {
  process.stdout.write(`${specHash(readSpecFile(file))}\n`);
  return 0;
}
