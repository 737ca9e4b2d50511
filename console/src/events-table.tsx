/**
 * The run's events as its stream delivers them, newest first, in a scrolling box whose header
 * stays on top of the rows (sticky, opaque) instead of over them.
 */
import type { ApiEvent } from "./api-types.js";
import { clock, tokenCount } from "./format.js";

interface EventUsage {
  total?: unknown;
  estimated?: unknown;
}

/** The tokens an event reports (`metadata.usage`: one call, or a list of QA calls); "" when none. */
function eventTokens(metadata: Record<string, unknown>): string {
  const usage = metadata.usage as EventUsage | EventUsage[] | undefined;
  if (!usage || typeof usage !== "object") return "";
  const counted = (Array.isArray(usage) ? usage : [usage]).filter((u) => typeof u.total === "number");
  if (counted.length === 0) return "";
  const total = counted.reduce((n, u) => n + (u.total as number), 0);
  return tokenCount(
    total,
    counted.some((u) => u.estimated === true),
  );
}

export function EventsTable({ events, stepName }: { events: ApiEvent[]; stepName: (id: number) => string }) {
  return (
    <div class="log" id="event-log">
      <table>
        <thead>
          <tr>
            <th class="event-id">#</th>
            <th>time</th>
            <th>type</th>
            <th>step</th>
            <th>message</th>
            <th class="tokens">tokens</th>
          </tr>
        </thead>
        <tbody id="events">
          {[...events].reverse().map((e) => (
            <tr key={e.id} data-event-id={e.id} data-type={e.event_type}>
              <td class="event-id">{e.id}</td>
              <td>
                <time dateTime={e.created_at} title={e.created_at}>
                  {clock(e.created_at)}
                </time>
              </td>
              <td class="type">{e.event_type}</td>
              {e.step_run_id === null ? (
                <td class="step" />
              ) : (
                <td class="step" data-step-id={e.step_run_id}>
                  {stepName(e.step_run_id)}
                </td>
              )}
              <td class="message">{e.message}</td>
              <td class="tokens">{eventTokens(e.metadata)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
