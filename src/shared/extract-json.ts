/** Tolerant JSON extraction from agent prose: the whole text, fenced blocks, then balanced objects. */
import type { z } from "zod";

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

/** The first candidate that parses and matches `schema`, or null. */
export function extractJson<T>(text: string, schema: z.ZodType<T>): T | null {
  for (const candidate of candidates(text)) {
    let value: unknown;
    try {
      value = JSON.parse(candidate);
    } catch {
      continue;
    }
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data;
  }
  return null;
}
