/**
 * The list of runs a person looks through: search by name or description, filter by status and
 * project, newest first, a page at a time (a cursor: the id the next page starts below), each run
 * with its project's name. The API's `GET /protocols`, the console's list and `tgz status` read it.
 */
import { InvalidInputError } from "../shared/errors.js";
import { PROTOCOL_STATUSES } from "../store/status.js";
import type { ProtocolRun, Store } from "../store/types.js";

export const DEFAULT_RUN_PAGE = 50;
export const MAX_RUN_PAGE = 500;

export interface RunListQuery {
  /** Words in the name or description (all of them, case-insensitive). */
  search?: string | undefined;
  statuses?: readonly string[] | undefined;
  projectIds?: readonly number[] | undefined;
  /** Runs of these projects are left out (guarded projects the caller may not see). */
  hiddenProjectIds?: readonly number[] | undefined;
  /** The cursor a previous page gave (`nextCursor`): runs older than it. */
  cursor?: number | undefined;
  limit?: number | undefined;
}

export interface RunListItem {
  run: ProtocolRun;
  projectName: string;
}

export interface RunList {
  items: RunListItem[];
  /** How many runs match in all (across pages). */
  total: number;
  /** Pass as `cursor` for the next (older) page; null on the last page. */
  nextCursor: number | null;
}

/** Checks a query's values; a bad one is an InvalidInputError naming it. */
function checked(query: RunListQuery): { limit: number } {
  const limit = query.limit ?? DEFAULT_RUN_PAGE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_RUN_PAGE)
    throw new InvalidInputError(`limit: ${limit} is not a whole number from 1 to ${MAX_RUN_PAGE}`);
  const unknown = (query.statuses ?? []).filter((s) => !(PROTOCOL_STATUSES as readonly string[]).includes(s));
  if (unknown.length > 0)
    throw new InvalidInputError(
      `status: ${unknown.join(", ")} is not a run status (${PROTOCOL_STATUSES.join(", ")})`,
    );
  if (query.cursor !== undefined && (!Number.isInteger(query.cursor) || query.cursor < 1))
    throw new InvalidInputError(`cursor: ${query.cursor} is not a run id`);
  return { limit };
}

export async function listRuns(store: Store, query: RunListQuery = {}): Promise<RunList> {
  const { limit } = checked(query);
  const [page, projects] = await Promise.all([
    store.searchProtocolRuns({
      ...(query.search?.trim() ? { text: query.search } : {}),
      ...(query.statuses?.length ? { statuses: [...query.statuses] } : {}),
      ...(query.projectIds?.length ? { projectIds: [...query.projectIds] } : {}),
      ...(query.hiddenProjectIds?.length ? { excludeProjectIds: [...query.hiddenProjectIds] } : {}),
      ...(query.cursor !== undefined ? { beforeId: query.cursor } : {}),
      limit: limit + 1,
    }),
    store.listProjects(),
  ]);
  const names = new Map(projects.map((p) => [p.id, p.name]));
  const more = page.runs.length > limit;
  const runs = page.runs.slice(0, limit);
  return {
    items: runs.map((run) => ({ run, projectName: names.get(run.projectId) ?? `project ${run.projectId}` })),
    total: page.total,
    nextCursor: more ? runs.at(-1)!.id : null,
  };
}
