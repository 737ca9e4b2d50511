/**
 * One step, in three tabs: its attempts (times, engine time, QA verdict and failing checks, error,
 * tokens and cost), its transcript (what the engine did, call by call) and its diff from its
 * checkpoints (rendered by diff2html). Transcript and diff reload as the step's events arrive.
 */
import { html as diffHtml } from "diff2html";
import { ColorSchemeType } from "diff2html/lib-esm/types.js";
import { useEffect, useState } from "preact/hooks";
import { ApiError, api, UNREACHABLE } from "./api-client.js";
import type { Diff, StepRun, StepTimeline, Transcript, TranscriptEntry } from "./api-types.js";
import { Badge } from "./badge.js";
import { clock, cost, duration, tokenCount } from "./format.js";
import { useCoalesced } from "./live.js";

type Tab = "attempts" | "transcript" | "diff";

export function StepDetail(props: { step: StepRun; line: StepTimeline | undefined; tick: number }) {
  const [tab, setTab] = useState<Tab>("attempts");
  const tabs: [Tab, string][] = [
    ["attempts", "Attempts"],
    ["transcript", "Transcript"],
    ["diff", "Diff"],
  ];
  return (
    <section id="step-detail" class="step-detail" data-step-id={props.step.id} aria-label="Step">
      <h3>
        Step {props.step.step_name} <Badge status={props.step.status} />
      </h3>
      <div class="tabs" role="tablist">
        {tabs.map(([id, label]) => (
          <button
            key={id}
            type="button"
            role="tab"
            id={`tab-${id}`}
            aria-selected={tab === id ? "true" : "false"}
            onClick={() => setTab(id)}
          >
            {label}
          </button>
        ))}
      </div>
      <div class="tab-body" role="tabpanel">
        {tab === "attempts" ? <Attempts line={props.line} /> : null}
        {tab === "transcript" ? (
          <TranscriptView get={() => api.transcript(props.step.id)} tick={props.tick} />
        ) : null}
        {tab === "diff" ? <DiffView stepId={props.step.id} tick={props.tick} /> : null}
      </div>
    </section>
  );
}

function Attempts({ line }: { line: StepTimeline | undefined }) {
  if (!line || line.attempts.length === 0) return <p class="hint">The step has not run yet.</p>;
  return (
    <div class="table-wrap">
      <table class="attempts-table" id="attempts">
        <thead>
          <tr>
            <th>#</th>
            <th>started</th>
            <th>took</th>
            <th>engine</th>
            <th>outcome</th>
            <th>QA</th>
            <th>tokens</th>
          </tr>
        </thead>
        <tbody>
          {line.attempts.map((a, i) => (
            <tr key={i} data-attempt={a.attempt} data-outcome={a.outcome}>
              <td>{a.attempt}</td>
              <td>
                <time dateTime={a.started_at}>{clock(a.started_at)}</time>
              </td>
              <td>{a.duration_ms === null ? "running…" : duration(a.duration_ms)}</td>
              <td>
                {duration(a.engine_ms)}
                <small>{[a.engine_id, a.model].filter(Boolean).join(" · ")}</small>
              </td>
              <td>
                <Badge status={a.outcome} />
                {a.error ? <small class="error-text">{a.error}</small> : null}
              </td>
              <td class="qa">
                {a.qa ? (
                  <>
                    <span class="verdict" data-verdict={a.qa.verdict}>
                      {a.qa.verdict}
                    </span>
                    {a.qa.reason ? <small>{a.qa.reason}</small> : null}
                    {a.qa.failed_checks.map((c) => (
                      <details key={c.name} class="failed-check">
                        <summary>
                          {c.name}
                          {c.exit_code !== null ? ` (exit ${c.exit_code})` : ""}
                        </summary>
                        <pre>{c.detail}</pre>
                      </details>
                    ))}
                  </>
                ) : null}
              </td>
              <td class="tokens">
                {a.usage.total > 0 ? tokenCount(a.usage.total, a.usage.estimated) : ""}
                {cost(a.usage) ? <small class="cost">{cost(a.usage)}</small> : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Loads `get` and again on every tick; keeps the last answer while the server is away. */
function useStepData<T>(get: () => Promise<T>, tick: number) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | Error | null>(null);
  const load = useCoalesced(async () => {
    try {
      setData(await get());
      setError(null);
    } catch (err) {
      if (err instanceof ApiError && err.status === UNREACHABLE) return;
      setError(err instanceof Error ? err : new Error(String(err)));
    }
  });
  useEffect(load, [tick]);
  return { data, error };
}

/** A refusal the server explains (409: no checkpoints, worktree pruned) reads as a hint, the rest as errors. */
function Problem({ error }: { error: ApiError | Error }) {
  if (error instanceof ApiError && error.status === 409)
    return (
      <p class="hint" id="diff-none">
        {error.detail}
      </p>
    );
  return <p class="notice error">{error.message}</p>;
}

function Entry({ entry }: { entry: TranscriptEntry }) {
  switch (entry.kind) {
    case "message":
      return <div class="entry message">{entry.text}</div>;
    case "tool":
      return (
        <div class="entry tool">
          <span class="tool-name">{entry.name}</span>
          {entry.detail ? <code class="tool-args">{entry.detail}</code> : null}
        </div>
      );
    case "tool_output":
      return (
        <div class={`entry tool-output${entry.is_error ? " failed" : ""}`}>
          <span class="label">
            {entry.name ? `${entry.name} ` : ""}
            {entry.is_error ? "failed" : "output"}
          </span>
          <pre>{entry.text}</pre>
        </div>
      );
    case "stderr":
      return (
        <div class="entry stderr">
          <span class="label">stderr</span>
          <pre>{entry.text}</pre>
        </div>
      );
    case "usage":
      return (
        <div class="entry usage">
          {entry.estimated ? "~" : ""}
          {entry.input} in / {entry.output} out tokens{entry.model ? ` · ${entry.model}` : ""}
        </div>
      );
    case "final":
      return (
        <div class="entry final">
          <span class="label">final message</span>
          <pre>{entry.text || "(empty)"}</pre>
        </div>
      );
    case "error":
      return (
        <div class="entry error">
          <span class="label">{entry.error_kind}</span> {entry.message}
        </div>
      );
    case "result":
      return (
        <div class={`entry result ${entry.ok ? "ok" : "failed"}`}>
          {entry.ok ? "succeeded" : "failed"}
          {entry.exit_code !== null ? ` · exit ${entry.exit_code}` : ""}
          {entry.duration_ms !== null ? ` · ${duration(entry.duration_ms)}` : ""}
          {entry.error ? ` · ${entry.error}` : ""}
          {entry.truncated_bytes > 0 ? ` · ${entry.truncated_bytes} bytes of output dropped` : ""}
        </div>
      );
    case "started":
      return (
        <div class="entry started">
          started{entry.session_id ? ` · session ${entry.session_id}` : ""}
          {entry.pid !== null ? ` · pid ${entry.pid}` : ""}
        </div>
      );
    default:
      return <pre class="entry other">{entry.text}</pre>;
  }
}

/** The run's planning: the planner's calls, as a step's transcript shows them. */
export function PlanningDetail({ runId, tick }: { runId: number; tick: number }) {
  return (
    <section id="step-detail" class="step-detail" data-planning="true" aria-label="Planning">
      <h3>Planning</h3>
      <TranscriptView get={() => api.planningTranscript(runId)} tick={tick} />
    </section>
  );
}

function TranscriptView({ get, tick }: { get: () => Promise<Transcript>; tick: number }) {
  const { data, error } = useStepData<Transcript>(get, tick);
  if (error) return <Problem error={error} />;
  if (!data) return <p class="hint">Loading…</p>;
  if (data.calls.length === 0) return <p class="hint">{data.note ?? "No transcript."}</p>;
  return (
    <div id="transcript" class="transcript">
      {data.calls.map((c) => (
        <details key={c.file} open class="call" data-phase={c.phase} data-attempt={c.attempt}>
          <summary>
            {c.phase === "exec" ? "Execution" : c.phase === "qa" ? "QA" : "Planning"} · attempt {c.attempt}
            {c.call > 1 ? ` · call ${c.call}` : ""}
            {c.rerun ? " · QA run again" : ""}
          </summary>
          {c.entries.map((e, i) => (
            <Entry key={i} entry={e} />
          ))}
          {c.truncated_bytes > 0 ? (
            <p class="hint">
              {c.truncated_bytes} more bytes are in {c.file}, not shown.
            </p>
          ) : null}
        </details>
      ))}
    </div>
  );
}

function DiffView({ stepId, tick }: { stepId: number; tick: number }) {
  const { data, error } = useStepData<Diff>(() => api.stepDiff(stepId), tick);
  if (error) return <Problem error={error} />;
  if (!data) return <p class="hint">Loading…</p>;
  if (!data.patch)
    return (
      <p class="hint" id="diff-empty">
        The step changed nothing.
      </p>
    );
  return (
    <div id="diff">
      <p class="hint">
        {data.files.length} file{data.files.length === 1 ? "" : "s"} changed, from{" "}
        <code>{data.from.slice(0, 10)}</code> to{" "}
        {data.to ? <code>{data.to.slice(0, 10)}</code> : "the working tree"}
      </p>
      <div
        class="diff2html"
        // diff2html escapes the diff's text; the HTML is its own markup
        dangerouslySetInnerHTML={{
          __html: diffHtml(data.patch, {
            drawFileList: true,
            matching: "lines",
            outputFormat: "line-by-line",
            // follows prefers-color-scheme, as the page does
            colorScheme: ColorSchemeType.AUTO,
          }),
        }}
      />
    </div>
  );
}
