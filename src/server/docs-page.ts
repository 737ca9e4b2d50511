/**
 * GET /docs: the OpenAPI document as one self-contained HTML page (no scripts, no network): every
 * operation with its parameters, body and replies, and every named schema as a table of fields.
 */
type Js = Record<string, unknown>;

const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const refName = (ref: string) => ref.split("/").pop() ?? ref;

function typeText(s: Js | undefined): string {
  if (!s || Object.keys(s).length === 0) return "any";
  if (typeof s.$ref === "string") {
    const name = refName(s.$ref);
    return `<a href="#schema-${esc(name)}">${esc(name)}</a>`;
  }
  if (Array.isArray(s.enum)) return s.enum.map((v) => `<code>${esc(JSON.stringify(v))}</code>`).join(" | ");
  if (s.const !== undefined) return `<code>${esc(JSON.stringify(s.const))}</code>`;
  const union = (s.anyOf ?? s.oneOf) as Js[] | undefined;
  if (union) return union.map(typeText).join(" | ");
  if (s.type === "array") return `array of ${typeText(s.items as Js | undefined)}`;
  if (s.type === "object" && !s.properties) {
    const extra = s.additionalProperties;
    return extra && typeof extra === "object" ? `map of ${typeText(extra as Js)}` : "object";
  }
  return esc(Array.isArray(s.type) ? s.type.join(" | ") : (s.type ?? "any"));
}

function fieldsTable(s: Js, depth = 0): string {
  const props = s.properties as Record<string, Js> | undefined;
  if (!props || depth > 3) return "";
  const required = new Set((s.required as string[] | undefined) ?? []);
  const rows = Object.entries(props).map(([name, p]) => {
    const note = [p.description, p.default !== undefined ? `default ${JSON.stringify(p.default)}` : ""]
      .filter(Boolean)
      .join("; ");
    return `<tr><td><code>${esc(name)}</code>${required.has(name) ? " *" : ""}</td><td>${typeText(p)}</td><td>${esc(note)}${fieldsTable(p, depth + 1)}</td></tr>`;
  });
  return `<table><tr><th>field</th><th>type</th><th>notes</th></tr>${rows.join("")}</table>`;
}

const schemaBlock = (s: Js | undefined) => (s ? `<p>${typeText(s)}</p>${s.$ref ? "" : fieldsTable(s)}` : "");

function operation(path: string, method: string, op: Js): string {
  const anchor = `${method}-${path}`.replace(/[^A-Za-z0-9]+/g, "-");
  const params = (op.parameters as Js[] | undefined) ?? [];
  const body = (op.requestBody as Js | undefined)?.content as Record<string, Js> | undefined;
  const security = (op.security as Js[]).map((s) => Object.keys(s).join(" + ")).join(" or ") || "none";
  const parts = [
    `<section id="${anchor}"><h3><span class="m ${method}">${method.toUpperCase()}</span> <code>${esc(path)}</code></h3>`,
    `<p>${esc(op.summary)}</p>`,
    op.description ? `<p>${esc(op.description)}</p>` : "",
    `<p class="auth">Auth: ${esc(security)}</p>`,
  ];
  if (params.length) {
    parts.push(
      `<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th><th>notes</th></tr>${params
        .map(
          (p) =>
            `<tr><td><code>${esc(p.name)}</code>${p.required ? " *" : ""}</td><td>${esc(p.in)}</td><td>${typeText(p.schema as Js)}</td><td>${esc(p.description ?? "")}</td></tr>`,
        )
        .join("")}</table>`,
    );
  }
  if (body) {
    for (const [type, c] of Object.entries(body))
      parts.push(`<h4>Body (${esc(type)})</h4>${schemaBlock(c.schema as Js | undefined)}`);
  }
  parts.push("<h4>Replies</h4><dl>");
  for (const [status, r] of Object.entries(op.responses as Record<string, Js>)) {
    const content = r.content as Record<string, Js> | undefined;
    const [type, c] = content ? (Object.entries(content)[0] ?? []) : [];
    const headers = r.headers ? ` Headers: ${Object.keys(r.headers as Js).join(", ")}.` : "";
    parts.push(
      `<dt>${esc(status)} ${esc(r.description)}${type && type !== "application/json" ? ` (${esc(type)})` : ""}${esc(headers)}</dt><dd>${schemaBlock((c as Js | undefined)?.schema as Js | undefined)}</dd>`,
    );
  }
  parts.push("</dl></section>");
  return parts.join("\n");
}

export function renderDocsPage(doc: Js): string {
  const info = doc.info as Js;
  const paths = doc.paths as Record<string, Record<string, Js>>;
  const byTag = new Map<string, string[]>();
  const toc = new Map<string, string[]>();
  for (const [path, methods] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const tag = ((op.tags as string[] | undefined) ?? ["other"])[0]!;
      byTag.set(tag, [...(byTag.get(tag) ?? []), operation(path, method, op)]);
      const anchor = `${method}-${path}`.replace(/[^A-Za-z0-9]+/g, "-");
      toc.set(tag, [
        ...(toc.get(tag) ?? []),
        `<li><a href="#${anchor}"><span class="m ${method}">${method.toUpperCase()}</span> ${esc(path)}</a> — ${esc(op.summary)}</li>`,
      ]);
    }
  }
  const components = ((doc.components as Js).schemas ?? {}) as Record<string, Js>;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(info.title)}</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1d1d1f}
code{font:13px ui-monospace,monospace;background:#f3f3f5;padding:0 .25em;border-radius:3px}
table{border-collapse:collapse;margin:.4em 0;width:100%}td,th{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f7f7f9}section{border-top:1px solid #e5e5ea;padding-top:.5em;margin-top:1.5em}
.m{display:inline-block;min-width:3.2em;font-weight:600;font-size:12px;text-align:center;border-radius:3px;color:#fff}
.get{background:#2b7de9}.post{background:#1f9d55}.auth{color:#666}dt{font-weight:600;margin-top:.4em}dd{margin-left:1.2em}
</style></head><body>
<h1>${esc(info.title)}</h1><p>${esc(info.description)}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI ${esc(doc.openapi)}).</p>
<nav>${[...toc].map(([tag, items]) => `<h2>${esc(tag)}</h2><ul>${items.join("")}</ul>`).join("")}
<h2>Schemas</h2><ul>${Object.keys(components)
    .map((n) => `<li><a href="#schema-${esc(n)}">${esc(n)}</a></li>`)
    .join("")}</ul></nav>
${[...byTag].map(([tag, ops]) => `<h2>${esc(tag)}</h2>${ops.join("\n")}`).join("\n")}
<h2>Schemas</h2>
${Object.entries(components)
  .map(
    ([name, s]) =>
      `<section id="schema-${esc(name)}"><h3>${esc(name)}</h3>${s.description ? `<p>${esc(s.description)}</p>` : ""}${schemaBlock(s)}</section>`,
  )
  .join("\n")}
</body></html>
`;
}
