/** The left column: every project with its protocol runs (status, last update), linking to a run. */
import { ApiError, api } from "./api-client.js";
import type { Project, ProtocolRun } from "./api-types.js";
import { coalesced } from "./coalesce.js";
import { h } from "./dom.js";
import { badge, dateTime } from "./format.js";

interface ProjectRows {
  project: Project;
  runs: ProtocolRun[];
  error?: string;
}

export class ProjectsView {
  private rows: ProjectRows[] = [];
  private selected: number | undefined;
  /** Reloads after events; a 401 on the way has already asked for the token. */
  readonly refresh = coalesced(() => this.load().catch(() => undefined));

  constructor(private readonly root: HTMLElement) {}

  async load(): Promise<void> {
    const projects = await api.projects();
    this.rows = await Promise.all(
      projects.map(async (project) => {
        try {
          return { project, runs: await api.runs(project.id) };
        } catch (err) {
          return { project, runs: [], error: err instanceof ApiError ? err.message : String(err) };
        }
      }),
    );
    this.render();
  }

  select(runId: number | undefined): void {
    this.selected = runId;
    this.render();
  }

  private render(): void {
    const blocks = this.rows.map(({ project, runs, error }) =>
      h(
        "section",
        { class: "project", "data-project-id": project.id },
        h("h2", {}, project.name, h("small", {}, project.git_url ?? "")),
        error ? h("p", { class: "notice error" }, error) : null,
        runs.length === 0 && !error ? h("p", { class: "hint" }, "No runs yet.") : null,
        h(
          "ul",
          { class: "runs" },
          [...runs]
            .sort((a, b) => b.id - a.id)
            .map((run) =>
              h(
                "li",
                { class: run.id === this.selected ? "selected" : undefined },
                h(
                  "a",
                  { href: `#/runs/${run.id}`, "data-run-id": run.id },
                  h("span", { class: "run-name" }, run.protocol_name),
                  badge(run.status),
                  h("time", { datetime: run.updated_at }, dateTime(run.updated_at)),
                ),
              ),
            ),
        ),
      ),
    );
    this.root.replaceChildren(
      h("h2", { class: "column-title" }, "Projects"),
      ...(blocks.length
        ? blocks
        : [h("p", { class: "hint" }, "No projects yet: register one with POST /projects.")]),
    );
  }
}
