/** Table shapes as Kysely sees them. JSON is stored as TEXT and timestamps as ISO strings on both dialects. */
import type { Generated } from "kysely";

export interface ProjectsTable {
  id: Generated<number>;
  name: string;
  git_url: string;
  local_path: string | null;
  base_branch: string;
  ci_provider: string | null;
  default_models: string;
  created_at: string;
  updated_at: string;
}

export interface ProtocolRunsTable {
  id: Generated<number>;
  project_id: number;
  protocol_name: string;
  status: string;
  base_branch: string;
  worktree_path: string | null;
  protocol_root: string | null;
  description: string | null;
  template_config: string;
  template_source: string | null;
  lease_owner: string | null;
  lease_expires_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface StepRunsTable {
  id: Generated<number>;
  protocol_run_id: number;
  step_index: number;
  step_name: string;
  step_type: string;
  status: string;
  retries: number;
  model: string | null;
  engine_id: string | null;
  policy: string;
  runtime_state: string;
  summary: string | null;
  created_at: string;
  updated_at: string;
}

export interface EventsTable {
  id: Generated<number>;
  protocol_run_id: number;
  step_run_id: number | null;
  project_id: number;
  event_type: string;
  message: string;
  metadata: string;
  spec_hash: string | null;
  created_at: string;
}

export interface TokenUsageTable {
  id: Generated<number>;
  protocol_run_id: number;
  step_run_id: number | null;
  project_id: number;
  phase: string;
  engine_id: string;
  model: string | null;
  input_tokens: number;
  cached_input_tokens: number;
  output_tokens: number;
  reasoning_tokens: number;
  estimated: number;
  created_at: string;
}

export interface JobsTable {
  id: Generated<number>;
  kind: string;
  payload: string;
  state: string;
  priority: number;
  run_at: string;
  attempts: number;
  max_attempts: number;
  backoff_ms: number;
  singleton_key: string | null;
  lease_token: string | null;
  lease_expires_at: string | null;
  worker_id: string | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
}

export interface ConcurrencySlotsTable {
  slot_key: string;
  slot_no: number;
  holder: string;
  token: string;
  expires_at: string;
}

export interface ProjectSecretsTable {
  project_id: number;
  name: string;
  /** The value as JSON. */
  value: string;
}

export interface WebhookDeliveriesTable {
  provider: string;
  delivery_id: string;
  protocol_run_id: number;
  received_at: string;
}

export interface Database {
  projects: ProjectsTable;
  protocol_runs: ProtocolRunsTable;
  step_runs: StepRunsTable;
  events: EventsTable;
  token_usage: TokenUsageTable;
  jobs: JobsTable;
  concurrency_slots: ConcurrencySlotsTable;
  project_secrets: ProjectSecretsTable;
  webhook_deliveries: WebhookDeliveriesTable;
}
