// Module resolution hooks (they run on a thread of their own): log each resolved URL.
import { appendFileSync } from "node:fs";

export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (process.env.TGZ_IMPORT_LOG) appendFileSync(process.env.TGZ_IMPORT_LOG, `${resolved.url}\n`);
  return resolved;
}
