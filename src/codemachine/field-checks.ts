/**
 * Reading fields of values that package files export (agents, step options, manifest entries), with
 * errors that name the file, the entry, the field, what was expected and what was there.
 */
import { CodeMachineImportError } from "./import-errors.js";

export const REASONING_EFFORTS = ["low", "medium", "high"] as const;

/** Values the evaluator could not pass as JSON arrive as {$unsupported: "a function"}. */
function unsupported(v: unknown): string | undefined {
  const u = v && typeof v === "object" ? (v as { $unsupported?: unknown }).$unsupported : undefined;
  return typeof u === "string" ? u : undefined;
}

export function describeValue(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return "a list";
  return unsupported(v) ?? "an object";
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && unsupported(v) === undefined;
}

/** The fields of one entry; `where` says which entry, e.g. `steps[3] (resolveModule 'check')`. */
export class Fields {
  private constructor(
    readonly file: string,
    readonly where: string,
    readonly value: Record<string, unknown>,
    /** Path of this object inside the entry, e.g. `behavior.` */
    private readonly prefix = "",
  ) {}

  static of(file: string, where: string, value: unknown, expected = "an object"): Fields {
    if (value === undefined) return new Fields(file, where, {});
    if (!isRecord(value))
      throw new CodeMachineImportError(file, `${where}: expected ${expected}, got ${describeValue(value)}`);
    return new Fields(file, where, value);
  }

  fail(field: string, expected: string): never {
    throw new CodeMachineImportError(
      this.file,
      `${this.where}: ${this.prefix}${field}: expected ${expected}, got ${describeValue(this.value[field])}`,
    );
  }

  has(field: string): boolean {
    return this.value[field] !== undefined;
  }

  string(field: string, expected = "a string"): string | undefined {
    const v = this.value[field];
    if (v === undefined) return undefined;
    return typeof v === "string" && v.trim() !== "" ? v : this.fail(field, `${expected} (not empty)`);
  }

  requiredString(field: string, expected = "a string"): string {
    return this.string(field, expected) ?? this.fail(field, expected);
  }

  boolean(field: string): boolean | undefined {
    const v = this.value[field];
    if (v === undefined || typeof v === "boolean") return v;
    return this.fail(field, "true or false");
  }

  positiveInt(field: string): number | undefined {
    const v = this.value[field];
    if (v === undefined) return undefined;
    return typeof v === "number" && Number.isInteger(v) && v > 0
      ? v
      : this.fail(field, "a whole number above 0");
  }

  oneOf<T extends string>(field: string, options: readonly T[]): T | undefined {
    const v = this.value[field];
    if (v === undefined) return undefined;
    return options.includes(v as T) ? (v as T) : this.fail(field, `one of ${options.join(", ")}`);
  }

  stringList(field: string, expected = "a list of strings"): string[] | undefined {
    const v = this.value[field];
    if (v === undefined) return undefined;
    return Array.isArray(v) && v.every((x) => typeof x === "string" && x.trim() !== "")
      ? (v as string[])
      : this.fail(field, expected);
  }

  /** A prompt file, or (0.8) a non-empty list of files joined in order. */
  promptPath(field: string): string | string[] | undefined {
    const v = this.value[field];
    if (v === undefined) return undefined;
    if (typeof v === "string" && v.trim() !== "") return v;
    if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "string" && x.trim() !== ""))
      return v as string[];
    return this.fail(field, "a prompt file path or a non-empty list of them");
  }

  record(field: string): Fields | undefined {
    const v = this.value[field];
    if (v === undefined) return undefined;
    if (!isRecord(v)) return this.fail(field, "an object");
    return new Fields(this.file, this.where, v, `${this.prefix}${field}.`);
  }

  list(field: string, expected = "a list"): unknown[] | undefined {
    const v = this.value[field];
    if (v === undefined) return undefined;
    return Array.isArray(v) ? v : this.fail(field, expected);
  }
}
