/** `tgz import codemachine PATH`: a CodeMachine workflow package as a ProtocolSpec and its files. */
import type { QaPolicy } from "../spec/schema.js";
import { validateSpecSchema } from "../spec/validate-spec.js";
import { loadCatalog } from "./catalog.js";
import { findPackage } from "./find-package.js";
import { CodeMachineImportError } from "./import-errors.js";
import { evalWorkflowFile } from "./sandbox-eval.js";
import { type Dialect, toProtocolSpec } from "./to-protocol-spec.js";
import { type WorkflowEntry, workflowHelpers } from "./workflow-helpers.js";

export interface ImportOptions {
  workflow?: string | undefined;
  qa?: QaPolicy | undefined;
  /** The repository the run works in (user placeholders and relative prompt paths resolve here). */
  repoDir: string;
}

export interface ImportedWorkflow {
  spec: Record<string, unknown>;
  /** Files for the protocol folder (prompts, package placeholder files), by relative path. */
  files: Record<string, string>;
  warnings: string[];
  name: string;
}

export function importCodemachine(path: string, opts: ImportOptions): ImportedWorkflow {
  const pkg = findPackage(path, opts.workflow);
  const catalog = loadCatalog(pkg);
  const { helpers, used } = workflowHelpers(catalog, pkg.root, pkg.promptsDir);
  let template: Record<string, unknown>;
  let entries: WorkflowEntry[];
  if (pkg.workflowFile) {
    const value = evalWorkflowFile(pkg.workflowFile, helpers);
    if (!value || typeof value !== "object")
      throw new CodeMachineImportError(pkg.workflowFile, "export default must be an object");
    template = value as Record<string, unknown>;
    if (typeof template.name !== "string" || !template.name)
      throw new CodeMachineImportError(pkg.workflowFile, "field `name` is required");
    if (!Array.isArray(template.steps) || template.steps.length === 0)
      throw new CodeMachineImportError(pkg.workflowFile, "field `steps` must be a non-empty array");
    entries = (template.steps as unknown[]).flat() as WorkflowEntry[];
    entries.forEach((e, i) => {
      if (
        !e ||
        typeof e !== "object" ||
        !["module", "ui", "separator", "controller"].includes((e as { type?: string }).type ?? "")
      ) {
        throw new CodeMachineImportError(
          pkg.workflowFile!,
          `steps[${i}] is not a step (use resolveStep, resolveModule, resolveFolder, separator or resolveUI)`,
        );
      }
    });
  } else {
    // the legacy layout has no workflow file: its main agents, in order, are the steps
    template = { name: pkg.name };
    entries = catalog.main.filter((a) => a.type !== "folder").map((a) => helpers.resolveStep(a.id));
  }
  const dialect: Dialect = used.ui ? "0.7" : used.separator || pkg.layout === "package" ? "0.8" : "0.7";
  const qa = opts.qa ?? "light";
  const out = toProtocolSpec({ pkg, catalog, entries, template, dialect, qa, repoDir: opts.repoDir });
  const check = validateSpecSchema(out.spec);
  if (!check.ok) {
    throw new CodeMachineImportError(
      pkg.workflowFile ?? pkg.configDir,
      `does not convert to a valid spec: ${check.errors.map((e) => `${e.pointer}: ${e.message}`).join("; ")}`,
    );
  }
  return { spec: out.spec, files: out.files, warnings: out.warnings, name: String(template.name) };
}
