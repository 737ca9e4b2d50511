/** File names made from ids a spec chose: ids may hold any character, file names may not. */
import { createHash } from "node:crypto";

/** `id` itself when it is a plain name, else a cleaned name plus a short hash that keeps it unique. */
export function fileSafeName(id: string): string {
  if (/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(id) && !id.includes("..")) return id;
  const clean = id
    .replace(/[^A-Za-z0-9._-]+/g, "_")
    .replace(/^[._]+/, "")
    .replace(/\.{2,}/g, "_")
    .slice(0, 60);
  return `${clean || "step"}-${createHash("sha256").update(id).digest("hex").slice(0, 8)}`;
}
