/** `tgz import codemachine PATH`: a CodeMachine workflow package as a ProtocolSpec and its files. */
import { relative } from "node:path";
import { loadConfig } from "../config/load-config.js";
import { createDefaultRegistry } from "../engines/builtin-engines.js";
import { isInside } from "../shared/paths.js";
import type { QaPolicy } from "../spec/schema.js";
import { validateSpec } from "../spec/validate-spec.js";
import { configFiles, readCatalog } from "./catalog.js";
import { decideDialect } from "./dialect.js";
import { findPackage } from "./find-package.js";
import { CodeMachineImportError } from "./import-errors.js";
import { ReadBudget } from "./import-limits.js";
import { checkPlaceholderFiles } from "./placeholder-files.js";
import { promptFilesText } from "./prompt-text.js";
import { legacyEntries, resolveWorkflow } from "./resolve-workflow.js";
import { evaluatePackageFiles } from "./sandbox-eval.js";
import { readSavedChoices } from "./saved-choices.js";
import { checkSelection, reportSessionFields, selectSteps } from "./select-steps.js";
import { toProtocolSpec } from "./to-protocol-spec.js";

export interface ImportOptions {
  workflow?: string | undefined;
  /** QA for every imported step; unset: the project's default (`qa.policy` in its config). */
  qa?: QaPolicy | undefined;
  /** The repository the run works in (user placeholders and relative prompt paths resolve here). */
  repoDir: string;
  /**
   * The onboarding choices CodeMachine 0.8 asks for: a track and conditions. Unset: those its
   * onboarding saved for this workflow in the repository, else the first track and no conditions.
   */
  track?: string | undefined;
  conditions?: string[] | undefined;
  /** CodeMachine engine name → TasksGodzilla engine id (e.g. cursor → claude-code). */
  engines?: Record<string, string> | undefined;
  /** Engine ids the runner knows (default: the built-in registry), for the unknown-engine warning. */
  knownEngines?: readonly string[] | undefined;
  /** Environment for the project config (default: process.env). */
  env?: NodeJS.ProcessEnv | undefined;
}

export interface ImportedWorkflow {
  spec: Record<string, unknown>;
  /** Files for the protocol folder (prompts, package placeholder files, sub-agents), by relative path. */
  files: Record<string, string>;
  warnings: string[];
  name: string;
}

export async function importCodemachine(path: string, opts: ImportOptions): Promise<ImportedWorkflow> {
  const pkg = findPackage(path, opts.workflow);
  const configs = configFiles(pkg);
  const files = [
    ...configs.map((file) => ({ file, kind: "config" as const })),
    ...(pkg.workflowFile ? [{ file: pkg.workflowFile, kind: "workflow" as const }] : []),
  ];
  for (const { file } of files)
    if (!isInside(pkg.root, file))
      throw new CodeMachineImportError(
        file,
        "leads outside the package (a symlink?); package code is only read from inside it",
      );
  const values = await evaluatePackageFiles(files, pkg.root);
  const catalog = readCatalog(pkg, values);
  // every path placeholders.js names is checked now, used or not
  const placeholderFiles = checkPlaceholderFiles(catalog, pkg, opts.repoDir);
  const warnings: string[] = [];
  const workflow = pkg.workflowFile
    ? resolveWorkflow(pkg.workflowFile, values.get(pkg.workflowFile), catalog, pkg, warnings)
    : // the legacy layout has no workflow file: its main agents, in order, are the steps
      { template: { name: pkg.name }, entries: legacyEntries(catalog, pkg, warnings), dividers: undefined };
  const { template } = workflow;
  const dialect = decideDialect(pkg, workflow, catalog, () => {
    const roots = { pkg, repoDir: opts.repoDir, budget: new ReadBudget(pkg.root) };
    return workflow.entries.flatMap((e) => (e.type === "module" ? [promptFilesText(roots, e)] : []));
  });
  const where = pkg.workflowFile ?? pkg.configDir;
  const shownWhere = relative(pkg.root, where) || where;
  const selection = checkSelection(
    template,
    dialect.dialect,
    where,
    opts,
    () => readSavedChoices(opts.repoDir, pkg.workflowFile),
    warnings,
  );
  const { entries, leftOut } = selectSteps(workflow.entries, dialect.dialect, selection, pkg, warnings);
  reportSessionFields(template, entries, shownWhere, warnings);
  if (!entries.some((e) => e.type === "module"))
    throw new CodeMachineImportError(where, "no step is left to run for the chosen track and conditions");
  const config = loadConfig(opts.repoDir, opts.env ?? process.env);
  const qa = opts.qa ?? config.qa.policy;
  const out = toProtocolSpec({
    pkg,
    catalog,
    entries,
    leftOut,
    template,
    dialect,
    selection,
    placeholderFiles,
    qa,
    defaultEngine: config.engine,
    repoDir: opts.repoDir,
    engines: opts.engines ?? {},
    knownEngines: opts.knownEngines ?? createDefaultRegistry().ids(),
    warnings,
  });
  const check = validateSpec(out.spec);
  if (!check.ok) {
    throw new CodeMachineImportError(
      where,
      `does not convert to a valid spec: ${check.errors.map((e) => `${e.pointer}: ${e.message}`).join("; ")}`,
    );
  }
  return { spec: out.spec, files: out.files, warnings, name: String(template.name) };
}
