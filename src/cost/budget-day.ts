/**
 * The day a per-project daily money cap counts: the calendar day in the project's time zone
 * (`budgets.time_zone`, default UTC), so a team's cap resets at its own midnight.
 */

export interface BudgetDay {
  /** The date, YYYY-MM-DD, in the time zone. */
  day: string;
  /** The first instant of the day, inclusive. */
  start: Date;
  /** The first instant of the next day, exclusive. */
  end: Date;
}

const formats = new Map<string, Intl.DateTimeFormat>();

function format(timeZone: string): Intl.DateTimeFormat {
  let f = formats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    formats.set(timeZone, f);
  }
  return f;
}

/** Whether `timeZone` is an IANA time zone name this runtime knows. */
export function isTimeZone(timeZone: string): boolean {
  try {
    format(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** The wall-clock fields of an instant in a time zone. */
function wallClock(at: number, timeZone: string) {
  const parts = Object.fromEntries(
    format(timeZone)
      .formatToParts(new Date(at))
      .map((p) => [p.type, Number(p.value)]),
  ) as Record<"year" | "month" | "day" | "hour" | "minute" | "second", number>;
  return parts;
}

/** How far the zone's wall clock is ahead of UTC at an instant. */
function offsetAt(at: number, timeZone: string): number {
  const w = wallClock(at, timeZone);
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  return asUtc - Math.floor(at / 1000) * 1000;
}

/** The instant the zone's clock shows midnight of the given date (once more for a DST change that day). */
function midnight(year: number, month: number, day: number, timeZone: string): number {
  const utcMidnight = Date.UTC(year, month - 1, day);
  const first = utcMidnight - offsetAt(utcMidnight, timeZone);
  return utcMidnight - offsetAt(first, timeZone);
}

/** The day containing `now` in `timeZone`; throws RangeError for an unknown zone. */
export function budgetDay(now: Date, timeZone = "UTC"): BudgetDay {
  const w = wallClock(now.getTime(), timeZone);
  const start = midnight(w.year, w.month, w.day, timeZone);
  const next = new Date(Date.UTC(w.year, w.month - 1, w.day + 1));
  const end = midnight(next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate(), timeZone);
  const pad = (n: number) => String(n).padStart(2, "0");
  return { day: `${w.year}-${pad(w.month)}-${pad(w.day)}`, start: new Date(start), end: new Date(end) };
}
