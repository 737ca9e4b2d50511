/** The pull/merge request a run opened, as its ledger recorded it (`pr_opened`). */
import { EVENT } from "../store/event-types.js";
import type { StoreOps } from "../store/types.js";

export interface PrLink {
  url: string;
  number: number | null;
  /** When it was opened (or found already open). */
  at: string;
}

/** The latest PR/MR the run opened, or null when it opened none. */
export async function runPrLink(store: Pick<StoreOps, "listEvents">, runId: number): Promise<PrLink | null> {
  const [opened] = await store.listEvents({
    protocolRunId: runId,
    eventTypes: [EVENT.prOpened],
    newestFirst: true,
    limit: 1,
  });
  const url = opened?.metadata.url;
  if (!opened || typeof url !== "string") return null;
  const number = opened.metadata.number;
  return { url, number: typeof number === "number" ? number : null, at: opened.createdAt };
}
