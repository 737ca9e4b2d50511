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
