/**
 * QA verdicts: the JSON schema agents answer with, and tolerant extraction of it from prose.
 * Anything that cannot be read as a verdict is `null` — never a pass.
 */
import { z } from "zod";
import { extractJson } from "../shared/extract-json.js";

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

export function parseVerdict(text: string): QaVerdict | null {
  return extractJson(text, QaVerdictSchema);
}
