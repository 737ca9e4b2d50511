/**
 * Hooks that keep a view current: an event stream followed while the view is shown (its state
 * reported to the page's connection), and a reload that a burst of events runs at most twice.
 */
import { useEffect, useMemo, useRef } from "preact/hooks";
import type { ApiEvent } from "./api-types.js";
import { coalesced } from "./coalesce.js";
import { forgetSource, REQUESTS, reportConnection } from "./connection.js";
import { followEvents, type StreamState } from "./sse-reader.js";

/** Follows `path` from `after` while mounted (and while `path` is set). */
export function useEventStream(
  source: string,
  path: string | null,
  after: number,
  onEvent: (e: ApiEvent) => void,
  onState?: (state: StreamState, detail?: string) => void,
): void {
  const handlers = useRef({ onEvent, onState });
  handlers.current = { onEvent, onState };
  useEffect(() => {
    if (path === null) return;
    const stop = followEvents({
      path,
      after,
      onEvent: (e) => handlers.current.onEvent(e),
      onState: (state, detail) => {
        // a stream that stopped for good (refused) is not the server being away
        if (state === "reconnecting") reportConnection(source, false, "live updates are down");
        else if (state === "stopped") reportConnection(source, true);
        else if (state === "live") {
          reportConnection(source, true);
          // the server answers again: requests that failed meanwhile no longer say it is away
          reportConnection(REQUESTS, true);
        }
        handlers.current.onState?.(state, detail);
      },
    });
    return () => {
      stop();
      forgetSource(source);
    };
  }, [source, path, after]);
}

/** `task`, run now and again after every call, but never twice at once (see coalesced). */
export function useCoalesced(task: () => Promise<void>): () => void {
  const latest = useRef(task);
  latest.current = task;
  return useMemo(() => coalesced(() => latest.current()), []);
}
