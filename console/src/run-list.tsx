/**
 * The run list: search by name or description, filter by status and project, newest first, a page
 * at a time (the API's cursor; the page keeps the cursors it came through to go back). Reloaded
 * when an event arrives on the all-runs stream and when the server is back after an outage.
 */
import { useEffect, useState } from "preact/hooks";
import { ApiError, api, UNREACHABLE } from "./api-client.js";
import type { Project, RunList as RunListPage } from "./api-types.js";
import { Badge } from "./badge.js";
import { useConnection } from "./connection.js";
import { ago, dateTime } from "./format.js";
import { useCoalesced } from "./live.js";

const PAGE_SIZE = 15;

/** The run statuses the server knows, from its own OpenAPI document (no list kept here). */
async function runStatuses(): Promise<string[]> {
  const res = await fetch("/openapi.json");
  const doc = (await res.json()) as {
    components: { schemas: { ProtocolRun: { properties: { status: { enum: string[] } } } } };
  };
  return doc.components.schemas.ProtocolRun.properties.status.enum;
}

export function RunList({ selected, tick }: { selected: number | undefined; tick: number }) {
  const [search, setSearch] = useState("");
  const [query, setQuery] = useState("");
  const [status, setStatus] = useState("");
  const [projectId, setProjectId] = useState("");
  /** The cursors of the pages before this one; the last is this page's. */
  const [cursors, setCursors] = useState<(number | undefined)[]>([undefined]);
  const [page, setPage] = useState<RunListPage | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [projects, setProjects] = useState<Project[]>([]);
  const [statuses, setStatuses] = useState<string[]>([]);
  const connection = useConnection();
  const cursor = cursors.at(-1);

  const load = useCoalesced(async () => {
    try {
      const list = await api.runList({
        search: query,
        ...(status ? { status } : {}),
        ...(projectId ? { projectId: Number(projectId) } : {}),
        ...(cursor !== undefined ? { cursor } : {}),
        limit: PAGE_SIZE,
      });
      setPage(list);
      setError(null);
    } catch (err) {
      // an unreachable server shows as the banner; the list keeps what it had
      if (!(err instanceof ApiError && err.status === UNREACHABLE))
        setError(err instanceof Error ? err.message : String(err));
    }
  });

  useEffect(() => {
    api.projects().then(setProjects, () => undefined);
    runStatuses().then(setStatuses, () => undefined);
  }, [connection.down]);
  // a search waits for the typing to pause
  useEffect(() => {
    const timer = setTimeout(() => setQuery(search), 250);
    return () => clearTimeout(timer);
  }, [search]);
  // a new filter starts from the first page
  useEffect(() => setCursors([undefined]), [query, status, projectId]);
  useEffect(load, [query, status, projectId, cursor, tick, connection.down]);

  const first = page && page.runs.length > 0 ? (cursors.length - 1) * PAGE_SIZE + 1 : 0;
  return (
    <nav id="runs" class="runs-column" aria-label="Protocol runs">
      <search>
        <form class="filters" onSubmit={(e) => e.preventDefault()}>
          <input
            id="run-search"
            type="search"
            placeholder="Search runs"
            aria-label="Search runs by name or description"
            value={search}
            onInput={(e) => setSearch(e.currentTarget.value)}
          />
          <select
            id="status-filter"
            aria-label="Status"
            value={status}
            onChange={(e) => setStatus(e.currentTarget.value)}
          >
            <option value="">any status</option>
            {statuses.map((s) => (
              <option value={s}>{s.replaceAll("_", " ")}</option>
            ))}
          </select>
          <select
            id="project-filter"
            aria-label="Project"
            value={projectId}
            onChange={(e) => setProjectId(e.currentTarget.value)}
          >
            <option value="">every project</option>
            {projects.map((p) => (
              <option value={String(p.id)}>{p.name}</option>
            ))}
          </select>
        </form>
      </search>
      {error ? <p class="notice error">{error}</p> : null}
      <p id="run-count" class="hint">
        {page === null
          ? "Loading…"
          : page.total === 0
            ? query || status || projectId
              ? "No run matches."
              : "No runs yet: `tgz run SPEC` or `tgz plan TASK` makes one."
            : `${first}–${first + page.runs.length - 1} of ${page.total}`}
      </p>
      <ul id="run-list" class="run-list">
        {page?.runs.map((run) => (
          <li key={run.id} class={run.id === selected ? "selected" : undefined}>
            <a href={`#/runs/${run.id}`} data-run-id={run.id}>
              <span class="run-name">{run.protocol_name}</span>
              <Badge status={run.status} />
              <span class="run-meta">
                <span class="project-name">{run.project_name}</span> ·{" "}
                <time dateTime={run.updated_at} title={dateTime(run.updated_at)}>
                  {ago(run.updated_at)}
                </time>
              </span>
            </a>
          </li>
        ))}
      </ul>
      <div class="pager">
        <button
          id="newer-page"
          type="button"
          disabled={cursors.length === 1}
          onClick={() => setCursors((c) => c.slice(0, -1))}
        >
          ← Newer
        </button>
        <button
          id="older-page"
          type="button"
          disabled={!page?.next_cursor}
          onClick={() => page?.next_cursor && setCursors((c) => [...c, page.next_cursor!])}
        >
          Older →
        </button>
      </div>
    </nav>
  );
}
