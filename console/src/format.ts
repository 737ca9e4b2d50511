/** How times, statuses and token counts read on the page. */
import { h } from "./dom.js";

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

export function badge(status: string): HTMLSpanElement {
  return h("span", { class: `badge status-${status}`, "data-status": status }, status.replace("_", " "));
}

interface Usage {
  total?: unknown;
  estimated?: unknown;
}

/** The tokens an event reports (`metadata.usage`: one call, or a list of QA calls); "" when none. */
export function eventTokens(metadata: Record<string, unknown>): string {
  const usage = metadata.usage as Usage | Usage[] | undefined;
  if (!usage || typeof usage !== "object") return "";
  const calls = Array.isArray(usage) ? usage : [usage];
  const counted = calls.filter((u) => typeof u.total === "number");
  if (counted.length === 0) return "";
  const total = counted.reduce((n, u) => n + (u.total as number), 0);
  return tokenCount(
    total,
    counted.some((u) => u.estimated === true),
  );
}

/** A token figure, short past 10k; `~` when any of it was estimated. */
export function tokenCount(total: number, estimated: boolean): string {
  const text = total >= 10_000 ? `${(total / 1000).toFixed(1)}k` : String(total);
  return estimated ? `~${text}` : text;
}
