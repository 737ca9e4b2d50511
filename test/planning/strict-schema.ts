/**
 * The rules OpenAI's strict structured output puts on a JSON Schema (what Codex sends as
 * `text.format {type: json_schema, strict: true}`): the root is an object; every object lists all its
 * properties in `required` and sets `additionalProperties: false`; optional values are nullable
 * unions; only the supported keywords appear (no minLength, minItems, pattern, format, default …).
 */
const KEYWORDS = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "enum",
  "const",
  "anyOf",
  "description",
  "$defs",
  "$ref",
]);
const TYPES = new Set(["object", "array", "string", "number", "integer", "boolean", "null"]);

/** Every rule the schema breaks, each with the JSON pointer of the node; empty when it is strict. */
export function strictSchemaProblems(schema: unknown): string[] {
  const problems: string[] = [];
  const root = schema as Record<string, unknown>;
  if (root.type !== "object" || "anyOf" in root) problems.push("/: the root must be a plain object schema");
  const visit = (node: unknown, path: string) => {
    const at = path || "/";
    if (typeof node !== "object" || node === null || Array.isArray(node)) {
      problems.push(`${at}: not a schema object`);
      return;
    }
    const n = node as Record<string, unknown>;
    for (const key of Object.keys(n)) if (!KEYWORDS.has(key)) problems.push(`${at}: keyword "${key}"`);
    const types = n.type === undefined ? [] : Array.isArray(n.type) ? n.type : [n.type];
    for (const t of types) if (!TYPES.has(String(t))) problems.push(`${at}: type "${String(t)}"`);
    if (types.length === 0 && !("anyOf" in n) && !("$ref" in n) && !("enum" in n) && !("const" in n))
      problems.push(`${at}: no type`);
    if (types.includes("object") || "properties" in n) {
      if (n.additionalProperties !== false) problems.push(`${at}: additionalProperties must be false`);
      const props = Object.keys((n.properties as Record<string, unknown>) ?? {});
      const required = (n.required as string[] | undefined) ?? [];
      for (const p of props) if (!required.includes(p)) problems.push(`${at}: "${p}" is not required`);
      for (const r of required)
        if (!props.includes(r)) problems.push(`${at}: required "${r}" has no property`);
      for (const [k, v] of Object.entries((n.properties as Record<string, unknown>) ?? {}))
        visit(v, `${path}/properties/${k}`);
    }
    if (types.includes("array")) {
      if (n.items === undefined) problems.push(`${at}: array without items`);
      else visit(n.items, `${path}/items`);
    }
    if (Array.isArray(n.anyOf)) {
      for (const [i, option] of n.anyOf.entries()) visit(option, `${path}/anyOf/${i}`);
    }
    for (const [k, v] of Object.entries((n.$defs as Record<string, unknown>) ?? {}))
      visit(v, `${path}/$defs/${k}`);
  };
  visit(schema, "");
  return problems;
}
