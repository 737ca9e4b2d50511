/**
 * One protocol run: its header (status, spec hash, tokens), a button for each action the server
 * allows now (`allowed_actions`), its steps, and the live event log. The log follows the run's event
 * stream from the first event; each event also refreshes the run and its steps (coalesced), so the
 * page shows the store as it is.
 */

import { actionLabel } from "./action-labels.js";
import { api } from "./api-client.js";
import type { ActionReply, ApiEvent, ProtocolRun, RunUsage, StepRun } from "./api-types.js";
import { coalesced } from "./coalesce.js";
import { h } from "./dom.js";
import { badge, clock, dateTime, eventTokens, tokenCount } from "./format.js";
import { followEvents, type StreamState } from "./sse-reader.js";

const STREAM_TEXT: Record<StreamState, string> = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  stopped: "stopped",
};

export class RunView {
  private runId: number | undefined;
  private run: ProtocolRun | undefined;
  private steps: StepRun[] = [];
  private usage: RunUsage | undefined;
  private stopStream: (() => void) | undefined;
  private busy = false;
  private events = 0;
  private readonly refresh = coalesced(() => this.reload());

  private readonly head = h("div", { class: "run-head" });
  private readonly actions = h("div", { class: "actions", id: "run-actions" });
  private readonly notice = h("p", { id: "run-notice", class: "notice", hidden: true });
  private readonly stepRows = h("tbody", { id: "steps" });
  private readonly eventRows = h("tbody", { id: "events" });
  private readonly eventCount = h("span", { id: "event-count", class: "count" }, "0");
  private readonly streamState = h("span", { id: "run-stream", class: "state" });
  private readonly log = h(
    "div",
    { class: "log" },
    h(
      "table",
      {},
      h(
        "thead",
        {},
        h("tr", {}, ...["#", "time", "type", "step", "message", "tokens"].map((c) => h("th", {}, c))),
      ),
      this.eventRows,
    ),
  );
  private readonly spec = h("pre", { class: "spec" });

  constructor(private readonly root: HTMLElement) {
    this.close();
  }

  open(runId: number): void {
    if (runId === this.runId) return;
    this.close();
    this.runId = runId;
    this.run = undefined;
    this.steps = [];
    this.usage = undefined;
    this.events = 0;
    this.eventCount.textContent = "0";
    this.eventRows.replaceChildren();
    this.stepRows.replaceChildren();
    this.head.replaceChildren(h("h2", {}, `Run ${runId}`));
    this.actions.replaceChildren();
    this.spec.textContent = "";
    const specBox = h("details", { class: "spec-box" }, h("summary", {}, "Frozen spec"), this.spec);
    specBox.addEventListener("toggle", () => {
      if (specBox.open && !this.spec.textContent) void this.loadSpec(runId);
    });
    this.root.replaceChildren(
      this.head,
      this.actions,
      this.notice,
      h("h3", {}, "Steps"),
      h(
        "table",
        { class: "steps" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ...["#", "step", "status", "engine", "model", "summary", "retries", "tokens", ""].map((c) =>
              h("th", {}, c),
            ),
          ),
        ),
        this.stepRows,
      ),
      specBox,
      h("h3", {}, "Events ", this.eventCount, " ", this.streamState),
      this.log,
    );
    this.stopStream = followEvents({
      path: `/protocols/${runId}/events/stream`,
      after: 0,
      onEvent: (e) => this.addEvent(e),
      onState: (state, detail) => {
        this.streamState.dataset.state = state;
        this.streamState.textContent = detail ? `${STREAM_TEXT[state]}: ${detail}` : STREAM_TEXT[state];
      },
    });
    this.refresh();
  }

  close(): void {
    this.stopStream?.();
    this.stopStream = undefined;
    this.runId = undefined;
    this.root.replaceChildren(h("p", { class: "hint" }, "Pick a run on the left to watch and drive it."));
  }

  private async reload(): Promise<void> {
    const id = this.runId;
    if (id === undefined) return;
    try {
      const [run, steps, usage] = await Promise.all([api.run(id), api.steps(id), api.usage(id)]);
      if (id !== this.runId) return;
      this.run = run;
      this.steps = steps;
      this.usage = usage;
      this.render();
    } catch (err) {
      if (id === this.runId) this.say("error", err);
    }
  }

  private render(): void {
    const run = this.run;
    if (!run) return;
    const hash = run.spec_hash;
    this.head.replaceChildren(
      h("h2", {}, run.protocol_name, " ", badge(run.status)),
      h(
        "dl",
        {},
        h("dt", {}, "run"),
        h("dd", {}, `#${run.id} in project ${run.project_id}`),
        h("dt", {}, "updated"),
        h("dd", {}, h("time", { datetime: run.updated_at }, dateTime(run.updated_at))),
        h("dt", {}, "spec hash"),
        h(
          "dd",
          {},
          hash ? h("code", { id: "spec-hash", title: hash }, hash.slice(0, 16)) : "none",
          run.spec_validation_status ? ` (${run.spec_validation_status})` : "",
        ),
        h("dt", {}, "tokens"),
        h("dd", { id: "run-tokens" }, this.usageText()),
        h("dt", {}, "base branch"),
        h("dd", {}, run.base_branch),
        run.worktree_path ? [h("dt", {}, "worktree"), h("dd", {}, h("code", {}, run.worktree_path))] : null,
        run.description ? [h("dt", {}, "task"), h("dd", {}, run.description)] : null,
      ),
    );
    this.actions.replaceChildren(
      ...run.allowed_actions.map((action) =>
        h(
          "button",
          {
            type: "button",
            "data-action": action,
            disabled: this.busy,
            onclick: () => this.act(() => api.protocolAction(run.id, action)),
          },
          actionLabel(action),
        ),
      ),
    );
    this.stepRows.replaceChildren(
      ...this.steps.map((step) =>
        h(
          "tr",
          { "data-step-id": step.id, "data-status": step.status },
          h("td", {}, step.step_index),
          h("td", {}, step.step_name, h("small", {}, step.step_type)),
          h("td", {}, badge(step.status)),
          h("td", {}, step.engine_id ?? ""),
          h("td", {}, step.model ?? ""),
          h("td", { class: "summary" }, step.summary ?? ""),
          h("td", {}, step.retries),
          h("td", { class: "tokens" }, this.stepTokens(step.id)),
          h(
            "td",
            { class: "step-actions" },
            ...step.allowed_actions.map((action) =>
              h(
                "button",
                {
                  type: "button",
                  "data-action": action,
                  disabled: this.busy,
                  onclick: () => this.act(() => api.stepAction(step.id, action)),
                },
                actionLabel(action),
              ),
            ),
          ),
        ),
      ),
    );
    for (const cell of this.eventRows.querySelectorAll<HTMLElement>("td[data-step-id]:empty"))
      cell.textContent = this.stepName(Number(cell.dataset.stepId));
  }

  /** The run's tokens in all, with its calls and how many were estimated. */
  private usageText(): string {
    const total = this.usage?.total;
    if (!total) return "";
    const estimated = total.estimated_calls > 0 ? `, ${total.estimated_calls} estimated` : "";
    return `${tokenCount(total.total, total.estimated_calls > 0)} (${total.calls} call(s)${estimated})`;
  }

  private stepTokens(stepId: number): string {
    const usage = this.usage?.steps.find((s) => s.step_run_id === stepId)?.usage;
    return usage && usage.calls > 0 ? tokenCount(usage.total, usage.estimated_calls > 0) : "";
  }

  private stepName(stepId: number): string {
    return this.steps.find((s) => s.id === stepId)?.step_name ?? "";
  }

  private addEvent(e: ApiEvent): void {
    const atBottom = this.log.scrollTop + this.log.clientHeight >= this.log.scrollHeight - 8;
    this.eventRows.append(
      h(
        "tr",
        { "data-event-id": e.id, "data-type": e.event_type },
        h("td", {}, e.id),
        h("td", {}, h("time", { datetime: e.created_at, title: e.created_at }, clock(e.created_at))),
        h("td", { class: "type" }, e.event_type),
        e.step_run_id === null
          ? h("td", {})
          : h("td", { "data-step-id": e.step_run_id }, this.stepName(e.step_run_id)),
        h("td", { class: "message" }, e.message),
        h("td", { class: "tokens" }, eventTokens(e.metadata)),
      ),
    );
    this.events++;
    this.eventCount.textContent = String(this.events);
    if (atBottom) this.log.scrollTop = this.log.scrollHeight;
    this.refresh();
  }

  private async act(call: () => Promise<ActionReply>): Promise<void> {
    this.busy = true;
    this.render();
    try {
      this.say("info", (await call()).message);
    } catch (err) {
      this.say("error", err);
    } finally {
      this.busy = false;
      await this.reload();
    }
  }

  private async loadSpec(runId: number): Promise<void> {
    try {
      const reply = await api.spec(runId);
      const errors = reply.validation_errors.map((e) => `${e.pointer}: ${e.message}`).join("\n");
      this.spec.textContent = `${errors ? `${errors}\n\n` : ""}${JSON.stringify(reply.spec, null, 2)}`;
    } catch (err) {
      this.spec.textContent = err instanceof Error ? err.message : String(err);
    }
  }

  private say(kind: "info" | "error", what: unknown): void {
    // an ApiError reads "409 repo_missing: <the server's detail>"
    const text = what instanceof Error ? what.message : String(what);
    this.notice.className = `notice ${kind}`;
    this.notice.dataset.kind = kind;
    this.notice.setAttribute("role", kind === "error" ? "alert" : "status");
    this.notice.textContent = text;
    this.notice.hidden = false;
  }
}
