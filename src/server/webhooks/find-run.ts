/**
 * Which run a CI event is about: the one named explicitly, else the run whose protocol name is the
 * branch. Names repeat across projects, so a run of the project whose repository the payload names
 * wins; among equals the newest run (the one CI just built).
 */
import { execFileSync } from "node:child_process";
import { isAbsolute } from "node:path";
import { NotFoundError } from "../../shared/errors.js";
import type { Project, ProtocolRun, Store } from "../../store/types.js";
import type { CiEvent } from "./ci-events.js";

/** `owner/repo` (the last two path segments), lowercased, of a URL, scp-style remote or full name. */
export function repoKey(url: string): string | null {
  const path = url
    .trim()
    .replace(/^[a-z+]+:\/\/[^/]+\//i, "")
    .replace(/^[^@/]+@[^:]+:/, "")
    .replace(/\.git$/i, "")
    .replace(/\/+$/, "");
  const parts = path.split("/").filter(Boolean);
  return parts.length >= 2 ? parts.slice(-2).join("/").toLowerCase() : null;
}

/** The project's repository: its git URL, or the origin remote of a local checkout. */
function projectRepoKey(project: Project): string | null {
  const local = project.localPath ?? (isAbsolute(project.gitUrl) ? project.gitUrl : null);
  if (!local) return repoKey(project.gitUrl);
  try {
    const origin = execFileSync("git", ["-C", local, "remote", "get-url", "origin"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 2000,
    });
    return repoKey(origin);
  } catch {
    return null;
  }
}

export async function findRun(
  store: Store,
  ci: CiEvent,
  explicitRunId: number | undefined,
): Promise<ProtocolRun> {
  if (explicitRunId !== undefined) return store.getProtocolRun(explicitRunId);
  const ref = (ci.branch ?? "").replace(/^refs\/(heads|tags)\//, "");
  const names = new Set([ref, ref.split("/").pop() ?? ""].filter(Boolean));
  const candidates = (await store.listProtocolRuns())
    .filter((r) => names.has(r.protocolName))
    .sort((a, b) => b.id - a.id);
  if (candidates.length === 0) throw new NotFoundError("protocol run for branch", ref || "(none)");
  const wanted = new Set(ci.repository.map(repoKey).filter((k): k is string => k !== null));
  if (wanted.size > 0 && new Set(candidates.map((r) => r.projectId)).size > 1) {
    for (const run of candidates) {
      const key = projectRepoKey(await store.getProject(run.projectId));
      if (key && wanted.has(key)) return run;
    }
  }
  return candidates[0]!;
}
