/** A status as a coloured badge; the status itself is in data-status for styles and tests. */
import { statusText } from "./format.js";

export function Badge({ status }: { status: string }) {
  return (
    <span class={`badge status-${status}`} data-status={status}>
      {statusText(status)}
    </span>
  );
}
