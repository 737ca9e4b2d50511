/**
 * The resolver: turns a StepSpec into the exact prompt, prompt version and output paths the runner
 * uses. The same function serves every engine; adapters never pick prompts or outputs themselves.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import { fileSafeName } from "../shared/file-names.js";
import { isInside } from "../shared/paths.js";
import { FROZEN_SPEC_FILE, TRANSCRIPTS_DIR } from "../shared/protocol-files.js";
import type { StepSpec } from "../spec/schema.js";
import { builtinValues, placeholderValues, usedNames } from "./placeholders.js";
import { StepResolutionError } from "./step-resolution-error.js";

// kept importable from here, where it is raised
export { StepResolutionError };

export interface ResolveRoots {
  /** The step's working tree. */
  workspace: string;
  /** `.protocols/<run>/` inside the workspace. */
  protocolRoot: string;
  /** The shipped prompt library. */
  promptLibrary: string;
  /**
   * Before a run exists: the folder whose files its protocol folder will hold (the spec's own folder,
   * which `tgz run SPEC` copies). Prompts and protocol placeholders are looked up there instead.
   */
  protocolFiles?: string | undefined;
}

export interface StepOutputs {
  protocol: string;
  aux: Record<string, string>;
}

export interface ResolvedStep {
  /** Absolute prompt file path, or null for engines that need no prompt. */
  promptPath: string | null;
  /** Rendered prompt text sent to the engine. */
  prompt: string;
  /** `<template id>@<sha256 prefix>` of the prompt file's content ("none" without a file). */
  promptVersion: string;
  outputs: StepOutputs;
  /** Step inputs with `{{name}}` rendered in string values (placeholders, protocol_dir, workspace, step_id). */
  inputs: Record<string, unknown>;
  /** The QA agent's inputs (`qa.inputs`), rendered the same way. */
  qaInputs: Record<string, unknown>;
}

export function contentVersion(templateId: string, content: string | Buffer): string {
  return `${templateId}@${createHash("sha256").update(content).digest("hex").slice(0, 12)}`;
}

/** Finds a prompt_ref in the protocol folder, then the workspace, then the prompt library. */
export function resolvePromptPath(ref: string, roots: ResolveRoots, pointer: string): string {
  const bases = [roots.protocolFiles ?? roots.protocolRoot, roots.workspace, roots.promptLibrary];
  const candidates = isAbsolute(ref) ? [resolve(ref)] : bases.map((b) => resolve(b, ref));
  for (const candidate of candidates) {
    if (!existsSync(candidate)) continue;
    if (!bases.some((b) => isInside(b, candidate))) {
      throw new StepResolutionError(
        pointer,
        `prompt_ref "${ref}" resolves outside the protocol folder, worktree and prompt library`,
      );
    }
    if (!statSync(candidate).isFile())
      throw new StepResolutionError(pointer, `prompt_ref "${ref}" is not a file`);
    return candidate;
  }
  const escapes = candidates.every((c) => !bases.some((b) => isInside(b, c)));
  if (escapes)
    throw new StepResolutionError(
      pointer,
      `prompt_ref "${ref}" escapes the protocol folder, worktree and prompt library`,
    );
  throw new StepResolutionError(pointer, `prompt_ref "${ref}" not found in ${bases.join(", ")}`);
}

/** The run's own records in its protocol folder: no step output may write over them. */
const RESERVED_OUTPUTS = [FROZEN_SPEC_FILE, TRANSCRIPTS_DIR, ".gitignore"];

function resolveOutputPath(path: string, roots: ResolveRoots, pointer: string): string {
  const abs = isAbsolute(path) ? resolve(path) : resolve(roots.protocolRoot, path);
  if (!isInside(roots.protocolRoot, abs) && !isInside(roots.workspace, abs)) {
    throw new StepResolutionError(pointer, `output path "${path}" escapes the protocol folder and worktree`);
  }
  if (existsSync(abs) && statSync(abs).isDirectory())
    throw new StepResolutionError(pointer, `output path "${path}" is a folder, not a file`);
  const reserved = RESERVED_OUTPUTS.find((r) => isInside(join(roots.protocolRoot, r), abs));
  if (reserved || abs === resolve(roots.protocolRoot))
    throw new StepResolutionError(
      pointer,
      `output path "${path}" would overwrite the run's own records (${reserved ?? "the protocol folder"})`,
    );
  return abs;
}

/** Replaces `{{name}}` with placeholder or input values (inputs win); unknown names are left as written. */
export function renderTemplate(text: string, values: Record<string, unknown>): string {
  return text.replace(/\{\{\s*([\w.-]+)\s*\}\}/g, (whole, name: string) => {
    const v = values[name];
    if (v === undefined || v === null) return whole;
    return typeof v === "string" ? v : JSON.stringify(v);
  });
}

function renderInputs(
  inputs: Record<string, unknown>,
  values: Record<string, unknown>,
): Record<string, unknown> {
  const render = (v: unknown): unknown =>
    typeof v === "string" ? renderTemplate(v, values) : Array.isArray(v) ? v.map(render) : v;
  return Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, render(v)]));
}

export function resolveOutputs(step: StepSpec, stepIndex: number, roots: ResolveRoots): StepOutputs {
  const base = `/steps/${stepIndex}/outputs`;
  // The default output is a file of its own: engine output never overwrites the step's prompt file.
  const protocol = resolveOutputPath(
    step.outputs?.protocol ?? join("outputs", `${fileSafeName(step.id)}.md`),
    roots,
    `${base}/protocol`,
  );
  const aux: Record<string, string> = {};
  for (const [consumer, p] of Object.entries(step.outputs?.aux ?? {})) {
    aux[consumer] = resolveOutputPath(p, roots, `${base}/aux/${consumer}`);
  }
  return { protocol, aux };
}

/**
 * Inputs that name a file the engine reads (as the engine resolves them: from the worktree) stay
 * inside the protocol folder and the worktree, symlinks resolved.
 */
function checkFileInputs(
  inputs: Record<string, unknown>,
  names: readonly string[] | undefined,
  roots: ResolveRoots,
  pointer: string,
): void {
  for (const name of names ?? []) {
    const value = inputs[name];
    if (typeof value !== "string" || value === "") continue;
    const abs = resolve(roots.workspace, value);
    if (![roots.protocolRoot, roots.workspace].some((root) => isInside(root, abs)))
      throw new StepResolutionError(
        `${pointer}/${name}`,
        `inputs.${name} "${value}" resolves outside the protocol folder and worktree`,
      );
  }
}

export function resolveStep(
  step: StepSpec,
  stepIndex: number,
  roots: ResolveRoots,
  opts: {
    promptRequired: boolean;
    /** The step engine's file inputs (EngineCapabilities.fileInputs). */
    fileInputs?: readonly string[] | undefined;
    /** The QA engine's file inputs, for `qa.inputs`. */
    qaFileInputs?: readonly string[] | undefined;
    placeholders?: Record<string, unknown> | null | undefined;
    projectName?: string | undefined;
    /** False when validating before the run: file placeholders are not read yet. */
    readFiles?: boolean | undefined;
  },
): ResolvedStep {
  const pointer = `/steps/${stepIndex}/prompt_ref`;
  const ref = step.prompt_ref?.trim();
  let promptPath: string | null = null;
  let raw = "";
  if (ref) {
    promptPath = resolvePromptPath(ref, roots, pointer);
    raw = readFileSync(promptPath, "utf8");
  } else if (opts.promptRequired) {
    throw new StepResolutionError(
      pointer,
      `step "${step.id}" has no prompt_ref, and its engine needs a prompt`,
    );
  }
  const outputs = resolveOutputs(step, stepIndex, roots);
  for (const [name, out] of [["protocol", outputs.protocol], ...Object.entries(outputs.aux)] as const) {
    if (promptPath && resolve(out) === promptPath) {
      throw new StepResolutionError(
        `/steps/${stepIndex}/outputs/${name === "protocol" ? "protocol" : `aux/${name}`}`,
        "output would overwrite the step's own prompt file",
      );
    }
  }
  const templateId = promptPath ? templateIdOf(promptPath, roots) : "none";
  const names = usedNames(raw, JSON.stringify(step.inputs ?? {}), JSON.stringify(step.qa?.inputs ?? {}));
  // what the spec says beats what is built in: a placeholder named "workspace" is the spec's
  const values = {
    ...builtinValues(opts.projectName ?? ""),
    step_id: step.id,
    protocol_dir: roots.protocolRoot,
    workspace: roots.workspace,
    ...placeholderValues(
      opts.placeholders,
      names,
      { workspace: roots.workspace, protocolRoot: roots.protocolFiles ?? roots.protocolRoot },
      opts.readFiles ?? true,
    ),
  };
  const inputs = renderInputs(step.inputs ?? {}, values);
  const qaInputs = renderInputs(step.qa?.inputs ?? {}, values);
  checkFileInputs(inputs, opts.fileInputs, roots, `/steps/${stepIndex}/inputs`);
  checkFileInputs(qaInputs, opts.qaFileInputs, roots, `/steps/${stepIndex}/qa/inputs`);
  return {
    promptPath,
    prompt: renderTemplate(raw, { ...values, ...inputs }),
    promptVersion: promptPath ? contentVersion(templateId, raw) : "none",
    outputs,
    inputs,
    qaInputs,
  };
}

function templateIdOf(path: string, roots: ResolveRoots): string {
  for (const base of [roots.promptLibrary, roots.protocolRoot, roots.workspace]) {
    if (isInside(base, path)) return relative(base, path);
  }
  return path;
}
