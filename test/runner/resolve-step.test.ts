import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { resolveStep, StepResolutionError } from "../../src/runner/resolve-step.js";

let roots: { workspace: string; protocolRoot: string; promptLibrary: string };
let outside: string;

beforeEach(() => {
  const base = mkdtempSync(join(tmpdir(), "tgz-resolve-"));
  roots = {
    workspace: join(base, "repo"),
    protocolRoot: join(base, "repo/.protocols/0001-x"),
    promptLibrary: join(base, "lib"),
  };
  for (const d of Object.values(roots)) mkdirSync(d, { recursive: true });
  outside = join(base, "outside");
  mkdirSync(outside);
  writeFileSync(join(outside, "secret.md"), "secret");
  writeFileSync(
    join(roots.protocolRoot, "01-step.md"),
    "Do {{thing}} in {{repo}} for {{step_id}} {{unknown}}",
  );
  writeFileSync(join(roots.workspace, "ws.md"), "from workspace");
  writeFileSync(join(roots.promptLibrary, "lib.md"), "from library");
});

const resolve = (step: Record<string, unknown>, opts = { promptRequired: true }) =>
  resolveStep({ id: "s1", ...step }, 0, roots, {
    ...opts,
    placeholders: { repo: "R", thing: "placeholder" },
  });

function pointerOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof StepResolutionError) return `${err.pointer} ${err.message}`;
    throw err;
  }
  return "no error";
}

describe("resolver", () => {
  it("renders inputs over placeholders and versions the prompt by template id and content", () => {
    const r = resolve({ prompt_ref: "01-step.md", inputs: { thing: "input" } });
    expect(r.prompt).toBe("Do input in R for s1 {{unknown}}");
    expect(r.promptVersion).toMatch(/^01-step\.md@[0-9a-f]{12}$/);
    writeFileSync(join(roots.protocolRoot, "01-step.md"), "changed");
    expect(resolve({ prompt_ref: "01-step.md" }).promptVersion).not.toBe(r.promptVersion);
  });

  it("looks in the protocol folder, then the worktree, then the prompt library", () => {
    expect(resolve({ prompt_ref: "ws.md" }).prompt).toBe("from workspace");
    expect(resolve({ prompt_ref: "lib.md" }).prompt).toBe("from library");
    writeFileSync(join(roots.protocolRoot, "lib.md"), "protocol wins");
    expect(resolve({ prompt_ref: "lib.md" }).prompt).toBe("protocol wins");
  });

  it("defaults the output to a file of its own, never the prompt file", () => {
    const r = resolve({ prompt_ref: "01-step.md" });
    expect(r.outputs.protocol).toBe(join(roots.protocolRoot, "outputs/s1.md"));
    expect(
      pointerOf(() => resolve({ prompt_ref: "01-step.md", outputs: { protocol: "01-step.md" } })),
    ).toMatch(/^\/steps\/0\/outputs\/protocol output would overwrite/);
  });

  it("resolves aux outputs relative to the protocol folder", () => {
    const r = resolve({
      prompt_ref: "01-step.md",
      outputs: { aux: { codemachine: "aux/codemachine/s1.md" } },
    });
    expect(r.outputs.aux.codemachine).toBe(join(roots.protocolRoot, "aux/codemachine/s1.md"));
  });

  it("refuses a missing or empty prompt_ref when the engine needs a prompt", () => {
    expect(pointerOf(() => resolve({}))).toMatch(/^\/steps\/0\/prompt_ref .*no prompt_ref/);
    expect(pointerOf(() => resolve({ prompt_ref: "  " }))).toMatch(/^\/steps\/0\/prompt_ref /);
    expect(resolve({}, { promptRequired: false }).promptPath).toBeNull();
    expect(pointerOf(() => resolve({ prompt_ref: "nope.md" }))).toMatch(
      /^\/steps\/0\/prompt_ref .*not found/,
    );
  });

  it("refuses prompt and output paths that escape their roots, symlinks included", () => {
    expect(pointerOf(() => resolve({ prompt_ref: "../../../outside/secret.md" }))).toMatch(
      /prompt_ref .*(escapes|outside)/,
    );
    expect(pointerOf(() => resolve({ prompt_ref: join(outside, "secret.md") }))).toMatch(
      /prompt_ref .*outside/,
    );
    symlinkSync(join(outside, "secret.md"), join(roots.protocolRoot, "link.md"));
    expect(pointerOf(() => resolve({ prompt_ref: "link.md" }))).toMatch(/^\/steps\/0\/prompt_ref .*outside/);
    expect(
      pointerOf(() => resolve({ prompt_ref: "01-step.md", outputs: { protocol: "../../../outside/x.md" } })),
    ).toMatch(/^\/steps\/0\/outputs\/protocol .*escapes/);
    symlinkSync(outside, join(roots.protocolRoot, "out-link"));
    expect(
      pointerOf(() => resolve({ prompt_ref: "01-step.md", outputs: { aux: { a: "out-link/x.md" } } })),
    ).toMatch(/^\/steps\/0\/outputs\/aux\/a .*escapes/);
  });
});

describe("resolver inputs", () => {
  it("renders placeholders and built-in roots into string inputs", () => {
    const r = resolve({
      prompt_ref: "01-step.md",
      inputs: { recording: "{{protocol_dir}}/r.jsonl", command: ["echo {{repo}}", 3], n: 1 },
    });
    expect(r.inputs).toEqual({ recording: `${roots.protocolRoot}/r.jsonl`, command: ["echo R", 3], n: 1 });
  });
});
