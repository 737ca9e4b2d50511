/**
 * The notification a webhook receives (docs/notifications.md): one JSON document per event, with an
 * id that stays the same on every retry so a receiver can drop duplicates.
 */
import { randomUUID } from "node:crypto";
import type { CostTotal } from "../cost/call-cost.js";
import type { MoneyBreach } from "../cost/money-budget.js";
import type { NotifyEvent } from "./notify-config.js";

export const NOTIFICATION_SCHEMA_VERSION = 1;

export interface Notification {
  schema_version: typeof NOTIFICATION_SCHEMA_VERSION;
  /** The notification's id, also in the X-TasksGodzilla-Delivery header; the same on every retry. */
  id: string;
  type: NotifyEvent;
  /** When the event happened (ISO 8601). */
  created_at: string;
  project: { id: number; name: string };
  run: {
    id: number;
    name: string;
    status: string;
    branch: string | null;
    /** The run in the console or API, when the server's public URL is known. */
    url: string | null;
    pr_url: string | null;
  };
  /** The step the event is about (the one that failed, blocked or waits for approval). */
  step: { id: string; status: string } | null;
  /** Why: the failure, the block, the approval asked for, the budget breach. */
  reason: string | null;
  /** What the run cost so far (see docs/cost.md). */
  cost: { usd: number | null; partial: boolean; unknown_models: string[] } | null;
  /** budget.warning: the limit passed and the figures. */
  budget: {
    scope: string;
    kind: string;
    mode: string;
    limit_usd: number;
    spent_usd: number;
    call_usd: number;
    partial: boolean;
  } | null;
}

export interface NotificationInput {
  type: NotifyEvent;
  project: { id: number; name: string };
  run: {
    id: number;
    name: string;
    status: string;
    branch?: string | null;
    url?: string | null;
    prUrl?: string | null;
  };
  step?: { id: string; status: string } | null;
  reason?: string | null;
  cost?: CostTotal | null;
  budget?: MoneyBreach | null;
}

/** The notification for an event; `id` and `now` only for tests and for a notification made again. */
export function buildNotification(
  input: NotificationInput,
  opts: { id?: string; now?: Date } = {},
): Notification {
  const { run, cost, budget } = input;
  return {
    schema_version: NOTIFICATION_SCHEMA_VERSION,
    id: opts.id ?? randomUUID(),
    type: input.type,
    created_at: (opts.now ?? new Date()).toISOString(),
    project: { id: input.project.id, name: input.project.name },
    run: {
      id: run.id,
      name: run.name,
      status: run.status,
      branch: run.branch ?? null,
      url: run.url ?? null,
      pr_url: run.prUrl ?? null,
    },
    step: input.step ?? null,
    reason: input.reason ?? null,
    cost: cost ? { usd: cost.usd, partial: cost.partial, unknown_models: cost.unknownModels } : null,
    budget: budget
      ? {
          scope: budget.scope,
          kind: budget.kind,
          mode: budget.mode,
          limit_usd: budget.limitUsd,
          spent_usd: budget.spentUsd,
          call_usd: budget.callUsd,
          partial: budget.partial,
        }
      : null,
  };
}
