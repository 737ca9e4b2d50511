/**
 * One protocol run: its header (status, project, spec hash, tokens and cost, PR link), where it
 * stands (why it stopped, the failing check, what to run next), a button for each action the server
 * allows now (`allowed_actions`; the server's message when it refuses one), the timeline of its steps
 * with a step's attempts, transcript and diff, and the live event log, newest first. The run's event
 * stream drives every reload, so the page shows the store as it is.
 */
import { useEffect, useState } from "preact/hooks";
import { actionLabel } from "./action-labels.js";
import { ApiError, api, UNREACHABLE } from "./api-client.js";
import type { ActionReply, ApiEvent, RunDetail, RunTimeline, StepRun, StepTimeline } from "./api-types.js";
import { Badge } from "./badge.js";
import { useConnection } from "./connection.js";
import { EventsTable } from "./events-table.js";
import { cost, dateTime, duration, tokenCount } from "./format.js";
import { useCoalesced, useEventStream } from "./live.js";
import type { StreamState } from "./sse-reader.js";
import { PlanningDetail, StepDetail } from "./step-detail.js";

/** A box of output opens at its end, where the error usually is. */
const scrollToEnd = (el: HTMLElement | null) => {
  if (el) el.scrollTop = el.scrollHeight;
};

type Selection = number | "planning";

type Notice = { kind: "info" | "error"; text: string } | null;

const STREAM_TEXT: Record<StreamState, string> = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  stopped: "stopped",
};

function Usage({ id, usage }: { id?: string; usage: RunTimeline["usage"] | undefined }) {
  // shell steps use no tokens: nothing to count is "none", not "0"
  if (!usage || usage.calls === 0 || (usage.total === 0 && !usage.estimated))
    return <span id={id}>none</span>;
  const estimated = usage.estimated ? ", some estimated" : "";
  const money = cost(usage);
  return (
    <span id={id}>
      {tokenCount(usage.total, usage.estimated)} tokens ({usage.calls} call{usage.calls === 1 ? "" : "s"}
      {estimated}){money ? <span class="cost"> · {money}</span> : null}
    </span>
  );
}

/** The step worth showing first: the one the run stopped on, else one under way, else the latest that ran. */
function focusStep(detail: RunDetail, timeline: RunTimeline | null): Selection | null {
  if (detail.situation.step) return detail.situation.step.id;
  const ran = timeline?.steps.filter((s) => s.attempts.length > 0) ?? [];
  return (
    ran.at(-1)?.step_run_id ?? (timeline?.planning ? "planning" : (timeline?.steps[0]?.step_run_id ?? null))
  );
}

export function RunPage({ runId }: { runId: number }) {
  const [detail, setDetail] = useState<RunDetail | null>(null);
  const [steps, setSteps] = useState<StepRun[]>([]);
  const [timeline, setTimeline] = useState<RunTimeline | null>(null);
  const [events, setEvents] = useState<ApiEvent[]>([]);
  const [stream, setStream] = useState<StreamState>("connecting");
  const [notice, setNotice] = useState<Notice>(null);
  const [missing, setMissing] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  /** A step's id, or the planning. */
  const [chosen, setChosen] = useState<Selection | null>(null);
  /** Bumped by the run's events that are not a step's (planning among them). */
  const [runTick, setRunTick] = useState(0);
  /** Bumped by every event of a step, so its transcript and diff follow it. */
  const [stepTicks, setStepTicks] = useState<Record<number, number>>({});
  const connection = useConnection();

  const reload = useCoalesced(async () => {
    try {
      const [run, stepRows, line] = await Promise.all([
        api.run(runId),
        api.steps(runId),
        api.timeline(runId),
      ]);
      setDetail(run);
      setSteps(stepRows);
      setTimeline(line);
      setMissing(null);
    } catch (err) {
      if (err instanceof ApiError && err.status === UNREACHABLE) return;
      if (err instanceof ApiError && err.status === 404) setMissing(err.message);
      else setNotice({ kind: "error", text: err instanceof Error ? err.message : String(err) });
    }
  });
  useEffect(reload, [runId, connection.down]);

  useEventStream(
    "run",
    `/protocols/${runId}/events/stream`,
    0,
    (e) => {
      setEvents((list) => [...list, e]);
      if (e.step_run_id !== null) {
        const id = e.step_run_id;
        setStepTicks((t) => ({ ...t, [id]: (t[id] ?? 0) + 1 }));
      } else setRunTick((n) => n + 1);
      reload();
    },
    setStream,
  );

  const act = async (call: () => Promise<ActionReply>) => {
    setBusy(true);
    try {
      setNotice({ kind: "info", text: (await call()).message });
    } catch (err) {
      // an ApiError reads "409 repo_missing: <the server's detail>"
      setNotice({ kind: "error", text: err instanceof Error ? err.message : String(err) });
    } finally {
      setBusy(false);
      reload();
    }
  };
  const runAction = (action: string) => () => act(() => api.protocolAction(runId, action));
  const stepAction = (stepId: number, action: string) => () => act(() => api.stepAction(stepId, action));

  if (missing)
    return (
      <section id="run" class="run" aria-label="Protocol run">
        <a class="back" href="#/">
          ← All runs
        </a>
        <p class="notice error">{missing}</p>
      </section>
    );
  if (!detail)
    return (
      <section id="run" class="run" aria-label="Protocol run">
        <a class="back" href="#/">
          ← All runs
        </a>
        <h2>Run {runId}</h2>
        <p class="hint">Loading…</p>
      </section>
    );

  const situation = detail.situation;
  const selected = chosen ?? focusStep(detail, timeline);
  const stepRow = (id: number) => steps.find((s) => s.id === id);
  const stepLine = (id: number) => timeline?.steps.find((s) => s.step_run_id === id);
  const selectedLine = typeof selected === "number" ? stepLine(selected) : undefined;
  const selectedRow = typeof selected === "number" ? stepRow(selected) : undefined;
  const hash = detail.spec_hash;

  return (
    <section id="run" class="run" aria-label="Protocol run">
      <a class="back" href="#/">
        ← All runs
      </a>
      <header class="run-head">
        <h2>
          {detail.protocol_name} <Badge status={detail.status} />
        </h2>
        <dl>
          <dt>run</dt>
          <dd>
            #{detail.id} in <span id="run-project">{detail.project_name}</span>
          </dd>
          <dt>updated</dt>
          <dd>
            <time dateTime={detail.updated_at}>{dateTime(detail.updated_at)}</time>
          </dd>
          <dt>spec hash</dt>
          <dd>
            {hash ? (
              <code id="spec-hash" title={hash}>
                {hash.slice(0, 16)}
              </code>
            ) : (
              "none"
            )}
            {detail.spec_validation_status ? ` (${detail.spec_validation_status})` : ""}
          </dd>
          <dt>tokens</dt>
          <dd>
            <Usage id="run-tokens" usage={timeline?.usage} />
          </dd>
          {timeline?.duration_ms !== null && timeline?.duration_ms !== undefined ? (
            <>
              <dt>took</dt>
              <dd id="run-duration">{duration(timeline.duration_ms)}</dd>
            </>
          ) : null}
          {detail.pr_url ? (
            <>
              <dt>pull request</dt>
              <dd>
                <a id="pr-link" href={detail.pr_url} target="_blank" rel="noopener noreferrer">
                  {situation.pr?.number ? `#${situation.pr.number}` : detail.pr_url}
                </a>
              </dd>
            </>
          ) : null}
          {detail.worktree_path ? (
            <>
              <dt>worktree</dt>
              <dd>
                <code>{detail.worktree_path}</code>
              </dd>
            </>
          ) : null}
          {detail.description ? (
            <>
              <dt>task</dt>
              <dd>{detail.description}</dd>
            </>
          ) : null}
        </dl>
      </header>

      <section id="situation" class="situation" data-status={detail.status} aria-label="Where the run stands">
        <p class="headline">{situation.headline}</p>
        {situation.error ? <p class="situation-error">{situation.error}</p> : null}
        {situation.check ? (
          <div class="check">
            <p>
              Check <code>{situation.check.name.replace(/^check:/, "")}</code> failed
              {situation.check.exit_code !== null ? ` with exit code ${situation.check.exit_code}` : ""}:
            </p>
            {/* the end of the output is where the error is: shown scrolled to it */}
            <pre class="check-output" ref={scrollToEnd}>
              {situation.check.output || "(no output)"}
            </pre>
          </div>
        ) : null}
        {situation.next.length > 0 ? (
          <ul class="next" aria-label="Next">
            {situation.next.map((n) => (
              <li key={n.command}>
                <span class="next-label">{n.label}:</span> <code class="command">{n.command}</code>
                {n.action ? (
                  <button
                    type="button"
                    data-next-action={n.action}
                    disabled={busy}
                    onClick={n.step ? stepAction(n.step.id, n.action) : runAction(n.action)}
                  >
                    {actionLabel(n.action)}
                  </button>
                ) : null}
              </li>
            ))}
          </ul>
        ) : null}
      </section>

      <div class="actions" id="run-actions">
        {detail.allowed_actions.map((action) => (
          <button key={action} type="button" data-action={action} disabled={busy} onClick={runAction(action)}>
            {actionLabel(action)}
          </button>
        ))}
      </div>
      {notice ? (
        <p
          id="run-notice"
          class={`notice ${notice.kind}`}
          data-kind={notice.kind}
          role={notice.kind === "error" ? "alert" : "status"}
        >
          {notice.text}
        </p>
      ) : null}

      <h3>Steps</h3>
      <StepsTable
        steps={steps}
        timeline={timeline}
        selected={selected}
        busy={busy}
        onSelect={setChosen}
        onAction={stepAction}
      />
      {selectedRow ? (
        <StepDetail
          key={selectedRow.id}
          step={selectedRow}
          line={selectedLine}
          tick={stepTicks[selectedRow.id] ?? 0}
        />
      ) : null}
      {selected === "planning" ? <PlanningDetail runId={runId} tick={runTick} /> : null}

      <h3>
        Events{" "}
        <span id="event-count" class="count">
          {events.length}
        </span>{" "}
        <span id="run-stream" class="state" data-state={stream}>
          {STREAM_TEXT[stream]}
        </span>
      </h3>
      <EventsTable events={events} stepName={(id) => stepRow(id)?.step_name ?? ""} />
    </section>
  );
}

function verdicts(line: StepTimeline | undefined): string {
  return (line?.attempts ?? [])
    .map((a) => a.qa?.verdict)
    .filter(Boolean)
    .join(" → ");
}

function StepsTable(props: {
  steps: StepRun[];
  timeline: RunTimeline | null;
  selected: Selection | null;
  busy: boolean;
  onSelect: (id: Selection) => void;
  onAction: (stepId: number, action: string) => () => void;
}) {
  const { timeline } = props;
  // the bars place each step in the run's own time span
  const start = timeline?.started_at ? Date.parse(timeline.started_at) : null;
  const end = timeline
    ? Math.max(
        ...(timeline.steps.map((s) => (s.ended_at ? Date.parse(s.ended_at) : 0)) ?? [0]),
        timeline.ended_at ? Date.parse(timeline.ended_at) : 0,
        start ?? 0,
      )
    : 0;
  const span = start !== null && end > start ? end - start : null;
  return (
    <div class="table-wrap">
      <table class="steps" id="steps-table">
        <thead>
          <tr>
            <th>#</th>
            <th>step</th>
            <th>status</th>
            <th>attempts</th>
            <th>time</th>
            <th class="timeline-col">timeline</th>
            <th>QA</th>
            <th>tokens</th>
            <th />
          </tr>
        </thead>
        <tbody id="steps">
          {timeline?.planning ? (
            <tr
              class={`planning-row${props.selected === "planning" ? " selected" : ""}`}
              data-planning="true"
              onClick={() => props.onSelect("planning")}
            >
              <td />
              <td>
                <button type="button" class="link step-name" onClick={() => props.onSelect("planning")}>
                  planning
                </button>
                <small>
                  {[timeline.planning.engine_id, timeline.planning.model].filter(Boolean).join(" · ")}
                </small>
              </td>
              <td>
                <Badge status={timeline.planning.outcome} />
              </td>
              <td />
              <td class="duration">{duration(timeline.planning.duration_ms)}</td>
              <td class="timeline-col" />
              <td />
              <td class="tokens">
                {timeline.planning.usage.total > 0
                  ? tokenCount(timeline.planning.usage.total, timeline.planning.usage.estimated)
                  : ""}
                {cost(timeline.planning.usage) ? (
                  <small class="cost">{cost(timeline.planning.usage)}</small>
                ) : null}
              </td>
              <td />
            </tr>
          ) : null}
          {props.steps.map((step) => {
            const line = timeline?.steps.find((s) => s.step_run_id === step.id);
            const bar =
              span !== null && line?.started_at
                ? {
                    left: `${((Date.parse(line.started_at) - start!) / span) * 100}%`,
                    width: `${Math.max(
                      (((line.ended_at ? Date.parse(line.ended_at) : end) - Date.parse(line.started_at)) /
                        span) *
                        100,
                      0.8,
                    )}%`,
                  }
                : null;
            const money = line ? cost(line.usage) : "";
            return (
              <tr
                key={step.id}
                data-step-id={step.id}
                data-status={step.status}
                class={step.id === props.selected ? "selected" : undefined}
                onClick={() => props.onSelect(step.id)}
              >
                <td>{step.step_index}</td>
                <td>
                  <button type="button" class="link step-name" onClick={() => props.onSelect(step.id)}>
                    {step.step_name}
                  </button>
                  <small>{[step.step_type, step.engine_id, step.model].filter(Boolean).join(" · ")}</small>
                </td>
                <td>
                  <Badge status={step.status} />
                </td>
                <td class="attempts">
                  {line?.attempts.length ?? 0}
                  {line && line.loops > 0 ? (
                    <small class="loops">
                      {line.loops} loop{line.loops === 1 ? "" : "s"}
                    </small>
                  ) : null}
                  {line && line.retries > 0 ? (
                    <small class="retries">
                      {line.retries} retr{line.retries === 1 ? "y" : "ies"}
                    </small>
                  ) : null}
                  {line && line.engine_retries > 0 ? (
                    <small>
                      {line.engine_retries} engine retr{line.engine_retries === 1 ? "y" : "ies"}
                    </small>
                  ) : null}
                </td>
                <td class="duration">{duration(line?.duration_ms)}</td>
                <td class="timeline-col">
                  <div class="track">
                    {bar ? <div class={`bar status-${step.status}`} style={bar} /> : null}
                  </div>
                </td>
                <td class="qa">{verdicts(line)}</td>
                <td class="tokens">
                  {line && line.usage.total > 0 ? tokenCount(line.usage.total, line.usage.estimated) : ""}
                  {money ? <small class="cost">{money}</small> : null}
                </td>
                <td class="step-actions">
                  {step.allowed_actions.map((action) => (
                    <button
                      key={action}
                      type="button"
                      data-action={action}
                      disabled={props.busy}
                      onClick={(e) => {
                        e.stopPropagation();
                        props.onAction(step.id, action)();
                      }}
                    >
                      {actionLabel(action)}
                    </button>
                  ))}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
