/**
 * QA verdicts: the JSON schema agents answer with, and tolerant extraction of it from prose.
 * Anything that cannot be read as a verdict is `null` — never a pass.
 */
import { z } from "zod";

export const QaVerdictSchema = z.object({
  verdict: z
    .string()
    .transform((v) => v.trim().toLowerCase())
    .pipe(z.enum(["pass", "fail"])),
  summary: z.string().optional().default(""),
  findings: z
    .array(
      z.object({
        severity: z.string().optional().default("info"),
        message: z.string(),
        file: z.string().optional(),
      }),
    )
    .optional()
    .default([]),
});
export type QaVerdict = z.infer<typeof QaVerdictSchema>;

/** JSON Schema handed to engines that support structured output. */
export const QA_VERDICT_JSON_SCHEMA: Record<string, unknown> = {
  type: "object",
  additionalProperties: false,
  required: ["verdict", "summary", "findings"],
  properties: {
    verdict: { type: "string", enum: ["pass", "fail"] },
    summary: { type: "string" },
    findings: {
      type: "array",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["severity", "message", "file"],
        properties: {
          severity: { type: "string", enum: ["blocker", "major", "minor", "info"] },
          message: { type: "string" },
          file: { type: "string" },
        },
      },
    },
  },
};

/** Candidate JSON texts in order of trust: the whole text, fenced blocks, then balanced objects. */
function candidates(text: string): string[] {
  const out = [text.trim()];
  for (const m of text.matchAll(/```(?:json)?\s*\n([\s\S]*?)```/g)) if (m[1]) out.push(m[1].trim());
  for (let start = text.indexOf("{"); start !== -1; start = text.indexOf("{", start + 1)) {
    const end = balancedEnd(text, start);
    if (end !== -1) out.push(text.slice(start, end + 1));
  }
  return out;
}

function balancedEnd(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return i;
  }
  return -1;
}

export function parseVerdict(text: string): QaVerdict | null {
  for (const candidate of candidates(text)) {
    let value: unknown;
    try {
      value = JSON.parse(candidate);
    } catch {
      continue;
    }
    const parsed = QaVerdictSchema.safeParse(value);
    if (parsed.success) return parsed.data;
  }
  return null;
}
