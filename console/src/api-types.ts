/** The API's JSON replies as the console reads them (the shapes of docs/api.md, snake_case). */

export type Json = Record<string, unknown>;

export interface Project {
  id: number;
  name: string;
  /** Absent for a project guarded by its own token (only its id and name are shown). */
  git_url?: string;
  local_path: string | null;
  base_branch: string;
  updated_at: string;
}

export interface ProtocolRun {
  id: number;
  project_id: number;
  protocol_name: string;
  status: string;
  base_branch: string;
  worktree_path: string | null;
  description: string | null;
  created_at: string;
  updated_at: string;
  spec_hash: string | null;
  spec_validation_status: "valid" | "invalid" | "missing" | null;
  /** The run actions the server would carry out now. */
  allowed_actions: string[];
}

export interface StepRun {
  id: number;
  protocol_run_id: number;
  step_index: number;
  step_name: string;
  step_type: string;
  status: string;
  retries: number;
  model: string | null;
  engine_id: string | null;
  summary: string | null;
  updated_at: string;
  /** The step actions the server would carry out now. */
  allowed_actions: string[];
}

export interface Usage {
  input: number;
  cached_input: number;
  output: number;
  reasoning: number;
  total: number;
  calls: number;
  estimated_calls: number;
}

export interface RunUsage {
  protocol_run_id: number;
  total: Usage;
  by_phase: { plan: Usage; exec: Usage; qa: Usage };
  steps: { step_run_id: number; step_name: string; status: string; usage: Usage }[];
}

export interface ApiEvent {
  id: number;
  protocol_run_id: number;
  step_run_id: number | null;
  project_id: number;
  event_type: string;
  message: string;
  metadata: Json;
  spec_hash: string | null;
  created_at: string;
}

export interface ActionReply {
  protocol: ProtocolRun;
  step?: StepRun;
  message: string;
}

export interface SpecReply {
  spec: Json | null;
  spec_hash: string | null;
  validation_status: "valid" | "invalid" | "missing";
  validation_errors: { pointer: string; message: string }[];
}

/** A page of `GET /protocols`. */
export interface RunListItem extends ProtocolRun {
  project_name: string;
}
export interface RunList {
  runs: RunListItem[];
  total: number;
  next_cursor: number | null;
}

export interface NextAction {
  action: string | null;
  step: { id: number; name: string } | null;
  command: string;
  label: string;
}

export interface RunSituation {
  status: string;
  headline: string;
  reason: string | null;
  message: string | null;
  since: string | null;
  step: { id: number; name: string; status: string } | null;
  error: string | null;
  check: { name: string; exit_code: number | null; output: string } | null;
  next: NextAction[];
  pr: { url: string; number: number | null } | null;
}

/** `GET /protocols/{id}`. */
export interface RunDetail extends ProtocolRun {
  project_name: string;
  situation: RunSituation;
  pr_url: string | null;
}

/** Tokens (and their cost, once the usage is priced) as the timeline counts them. */
export interface TimelineUsage {
  total: number;
  input: number;
  output: number;
  calls: number;
  estimated: boolean;
  cost_usd?: number | null;
  cost_partial?: boolean;
  unknown_cost_models?: string[];
}

export interface QaOutcome {
  policy: string | null;
  verdict: string;
  reason: string | null;
  duration_ms: number | null;
  failed_checks: { name: string; detail: string; exit_code: number | null }[];
}

export interface Attempt {
  attempt: number;
  started_at: string;
  ended_at: string | null;
  duration_ms: number | null;
  engine_ms: number | null;
  outcome: string;
  engine_id: string | null;
  model: string | null;
  error: string | null;
  qa: QaOutcome | null;
  usage: TimelineUsage;
}

export interface StepTimeline {
  step_run_id: number;
  step_name: string;
  step_index: number;
  status: string;
  attempts: Attempt[];
  loops: number;
  retries: number;
  engine_retries: number;
  started_at: string | null;
  ended_at: string | null;
  duration_ms: number | null;
  usage: TimelineUsage;
}

export interface RunTimeline {
  protocol_run_id: number;
  started_at: string | null;
  ended_at: string | null;
  duration_ms: number | null;
  planning: {
    started_at: string;
    ended_at: string | null;
    duration_ms: number | null;
    outcome: string;
    engine_id: string | null;
    model: string | null;
    usage: TimelineUsage;
  } | null;
  steps: StepTimeline[];
  usage: TimelineUsage;
}

export type TranscriptEntry =
  | { kind: "started"; session_id: string | null; pid: number | null }
  | { kind: "message" | "final" | "stderr" | "other"; text: string }
  | { kind: "tool"; name: string; detail: string }
  | { kind: "tool_output"; name: string | null; text: string; is_error: boolean }
  | {
      kind: "usage";
      input: number;
      output: number;
      cached_input: number;
      estimated: boolean;
      model: string | null;
    }
  | { kind: "error"; error_kind: string; message: string }
  | {
      kind: "result";
      ok: boolean;
      exit_code: number | null;
      duration_ms: number | null;
      error: string | null;
      truncated_bytes: number;
    };

export interface TranscriptCall {
  file: string;
  phase: "exec" | "qa" | "plan";
  attempt: number;
  call: number;
  rerun: boolean;
  truncated_bytes: number;
  entries: TranscriptEntry[];
}

export interface Transcript {
  protocol_run_id: number;
  step_run_id: number | null;
  calls: TranscriptCall[];
  note: string | null;
}

export interface Diff {
  protocol_run_id: number;
  step_run_id: number | null;
  from: string;
  to: string | null;
  files: string[];
  patch: string;
}
