/**
 * The API on the console's own origin. The bearer token lives in this browser's localStorage and is
 * sent as `Authorization: Bearer`; the page itself never contains it.
 */
import type {
  ActionReply,
  ApiEvent,
  Diff,
  Project,
  RunDetail,
  RunList,
  RunTimeline,
  RunUsage,
  SpecReply,
  StepRun,
  Transcript,
} from "./api-types.js";

import { REQUESTS, reportConnection } from "./connection.js";

const TOKEN_KEY = "tasksgodzilla.apiToken";

export const tokenStore = {
  get: (): string => localStorage.getItem(TOKEN_KEY) ?? "",
  set: (token: string): void => localStorage.setItem(TOKEN_KEY, token),
  clear: (): void => localStorage.removeItem(TOKEN_KEY),
};

/** A refused request, with the API's own `error` code and `detail`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
  ) {
    // "409 repo_missing: <the server's detail>"; a server that did not answer has no status to show
    super(status === 0 ? detail : `${status} ${code}: ${detail}`);
  }
}

export function authHeaders(): Record<string, string> {
  const token = tokenStore.get();
  return token ? { authorization: `Bearer ${token}` } : {};
}

export async function apiErrorOf(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => "");
  try {
    const body = JSON.parse(text) as { error?: string; detail?: string };
    return new ApiError(res.status, body.error ?? "error", body.detail ?? res.statusText);
  } catch {
    return new ApiError(res.status, "error", text || res.statusText);
  }
}

/** Called on every 401, so the page can ask for the token again. */
let unauthorized: (err: ApiError) => void = () => {};
export function onUnauthorized(handler: (err: ApiError) => void): void {
  unauthorized = handler;
}
export const reportUnauthorized = (err: ApiError): void => unauthorized(err);

/** Status of an ApiError when the server did not answer at all (down, restarting, network gone). */
export const UNREACHABLE = 0;

async function call<T>(method: "GET" | "POST", path: string): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, { method, headers: { accept: "application/json", ...authHeaders() } });
  } catch {
    reportConnection(REQUESTS, false, "the server does not answer");
    throw new ApiError(UNREACHABLE, "unreachable", "the server does not answer; try again once it is back");
  }
  reportConnection(REQUESTS, true);
  if (!res.ok) {
    const err = await apiErrorOf(res);
    if (res.status === 401) reportUnauthorized(err);
    throw err;
  }
  return (await res.json()) as T;
}

/** What the run list asks for; every field is optional. */
export interface RunListQuery {
  search?: string;
  status?: string;
  projectId?: number;
  cursor?: number;
  limit?: number;
}

function runListPath(q: RunListQuery): string {
  const params = new URLSearchParams();
  if (q.search?.trim()) params.set("search", q.search.trim());
  if (q.status) params.set("status", q.status);
  if (q.projectId !== undefined) params.set("project_id", String(q.projectId));
  if (q.cursor !== undefined) params.set("cursor", String(q.cursor));
  if (q.limit !== undefined) params.set("limit", String(q.limit));
  const text = params.toString();
  return text ? `/protocols?${text}` : "/protocols";
}

export const api = {
  projects: () => call<Project[]>("GET", "/projects"),
  runList: (q: RunListQuery) => call<RunList>("GET", runListPath(q)),
  run: (runId: number) => call<RunDetail>("GET", `/protocols/${runId}`),
  timeline: (runId: number) => call<RunTimeline>("GET", `/protocols/${runId}/timeline`),
  transcript: (stepId: number) => call<Transcript>("GET", `/steps/${stepId}/transcript`),
  planningTranscript: (runId: number) => call<Transcript>("GET", `/protocols/${runId}/transcript`),
  stepDiff: (stepId: number) => call<Diff>("GET", `/steps/${stepId}/diff`),
  runDiff: (runId: number) => call<Diff>("GET", `/protocols/${runId}/diff`),
  steps: (runId: number) => call<StepRun[]>("GET", `/protocols/${runId}/steps`),
  spec: (runId: number) => call<SpecReply>("GET", `/protocols/${runId}/spec`),
  usage: (runId: number) => call<RunUsage>("GET", `/protocols/${runId}/usage`),
  /** The newest event id: where a stream of what happens from now on starts. */
  latestEventId: async () => (await call<ApiEvent[]>("GET", "/events?limit=1"))[0]?.id ?? 0,
  protocolAction: (runId: number, action: string) =>
    call<ActionReply>("POST", `/protocols/${runId}/actions/${action}`),
  stepAction: (stepId: number, action: string) =>
    call<ActionReply>("POST", `/steps/${stepId}/actions/${action}`),
};
