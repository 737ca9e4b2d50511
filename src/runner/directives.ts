/**
 * Agent directive files: an agent steers the run by writing `{"action": …}` to a file in the
 * worktree. The file is reset to `continue` before the step, so a stale directive is never read
 * twice (the cause of endless loops elsewhere), and read after it. A malformed file is an error.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { isInside } from "../shared/paths.js";
import type { DirectiveSpec } from "../spec/schema.js";

export const DIRECTIVE_ACTIONS = [
  "continue",
  "loop",
  "stop",
  "checkpoint",
  "pause",
  "error",
  "trigger",
] as const;

const Directive = z.looseObject({
  action: z.enum(DIRECTIVE_ACTIONS),
  reason: z.string().nullish(),
  trigger_step: z.string().nullish(),
  // CodeMachine writes the agent to trigger under this name
  triggerAgentId: z.string().nullish(),
});

export interface ReadDirective {
  action: (typeof DIRECTIVE_ACTIONS)[number];
  reason: string | null;
  triggerStep: string | null;
  file: string;
}

export class DirectiveError extends Error {}

function paths(workspace: string, spec: DirectiveSpec): string[] {
  return [spec.file, ...(spec.alt_files ?? [])].map((f) => {
    const p = resolve(workspace, f);
    if (!isInside(workspace, p)) throw new DirectiveError(`directive file ${f} escapes the worktree`);
    return p;
  });
}

/** Any file-system failure on a directive file (a folder in its place, no permission) is the agent's doing. */
function onFile<T>(file: string, what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === "EISDIR"
        ? "it is a directory"
        : code === "ENOTDIR"
          ? "a folder on its path is a file"
          : (err as Error).message;
    throw new DirectiveError(`cannot ${what} directive file ${file}: ${why}`);
  }
}

export function resetDirective(workspace: string, spec: DirectiveSpec): void {
  const [primary, ...alternates] = paths(workspace, spec);
  onFile(primary!, "reset", () => {
    mkdirSync(dirname(primary!), { recursive: true });
    writeFileSync(primary!, `${JSON.stringify({ action: "continue" })}\n`);
  });
  for (const alt of alternates) onFile(alt, "reset", () => rmSync(alt, { force: true }));
}

/** The directive the agent left, the primary file first; throws DirectiveError when it is malformed. */
export function readDirective(workspace: string, spec: DirectiveSpec): ReadDirective | null {
  const [primary, ...alternates] = paths(workspace, spec);
  // an agent that wrote only the other name still counts
  const written = alternates.find((p) => existsSync(p)) ?? (existsSync(primary!) ? primary! : undefined);
  if (!written) return null;
  const text = onFile(written, "read", () => readFileSync(written, "utf8"));
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new DirectiveError(`directive file ${written} is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = Directive.safeParse(value);
  if (!parsed.success) {
    throw new DirectiveError(
      `directive file ${written} is malformed: ${parsed.error.issues.map((i) => `${i.path.join(".") || "directive"}: ${i.message}`).join("; ")}`,
    );
  }
  const d = parsed.data;
  return {
    action: d.action,
    reason: d.reason ?? null,
    triggerStep: d.trigger_step ?? d.triggerAgentId ?? null,
    file: written,
  };
}
