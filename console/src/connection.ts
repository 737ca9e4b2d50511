/**
 * Whether the page can trust what it shows: each source (the event streams, the plain requests)
 * says whether the server answered it last. While any is down the page shows that its data may be
 * stale; when all are back, whoever listens reloads.
 */
import { useEffect, useState } from "preact/hooks";

export interface Connection {
  down: boolean;
  /** When it went down (ms since the epoch); 0 while up. */
  since: number;
  detail: string;
}

/** The source of plain API requests (the streams are named by their views). */
export const REQUESTS = "requests";

const downSources = new Map<string, string>();
let current: Connection = { down: false, since: 0, detail: "" };
const listeners = new Set<(c: Connection) => void>();

export function reportConnection(source: string, up: boolean, detail = ""): void {
  if (up) downSources.delete(source);
  else downSources.set(source, detail);
  const down = downSources.size > 0;
  const text = [...downSources.values()].find(Boolean) ?? "";
  if (down === current.down && text === current.detail) return;
  current = { down, since: down ? current.since || Date.now() : 0, detail: text };
  for (const l of listeners) l(current);
}

/** A source that stopped for good (the page left it): it no longer counts. */
export const forgetSource = (source: string): void => reportConnection(source, true);

export function useConnection(): Connection {
  const [state, setState] = useState(current);
  useEffect(() => {
    listeners.add(setState);
    setState(current);
    return () => {
      listeners.delete(setState);
    };
  }, []);
  return state;
}
