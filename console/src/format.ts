/** How times, durations, token counts and costs read on the page. */

const pad = (n: number) => String(n).padStart(2, "0");

export function clock(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime())
    ? iso
    : `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function dateTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(iso)}`;
}

/** "3 s ago", "5 min ago", "2 h ago", then the date. */
export function ago(iso: string, now = Date.now()): string {
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (Number.isNaN(s)) return iso;
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return dateTime(iso).slice(0, 10);
}

/** 850 ms, 12.3 s, 4 min 05 s, 1 h 02 min. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${pad(Math.floor(s % 60))} s`;
  return `${Math.floor(m / 60)} h ${pad(m % 60)} min`;
}

/** A token figure, short past 10k; `~` when any of it was estimated. */
export function tokenCount(total: number, estimated: boolean): string {
  const text = total >= 10_000 ? `${(total / 1000).toFixed(1)}k` : String(total);
  return estimated ? `~${text}` : text;
}

interface Priced {
  cost_usd?: number | null;
  cost_partial?: boolean;
}

/** "$0.0123", "$1.20 + unknown", "unknown"; "" when the usage carries no cost at all. */
export function cost(u: Priced): string {
  if (u.cost_usd === undefined) return u.cost_partial ? "cost unknown" : "";
  if (u.cost_usd === null) return "cost unknown";
  const text = u.cost_usd < 0.01 ? `$${u.cost_usd.toFixed(4)}` : `$${u.cost_usd.toFixed(2)}`;
  return u.cost_partial ? `${text} + unknown` : text;
}

export const statusText = (status: string): string => status.replaceAll("_", " ");
