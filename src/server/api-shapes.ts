/** The JSON the API returns: snake_case rows as the original API had them, never a secret. */
import type { Event, Project, ProtocolRun, StepRun } from "../store/types.js";

export const projectOut = (p: Project) => ({
  id: p.id,
  name: p.name,
  git_url: p.gitUrl,
  local_path: p.localPath,
  base_branch: p.baseBranch,
  ci_provider: p.ciProvider,
  default_models: p.defaultModels,
  created_at: p.createdAt,
  updated_at: p.updatedAt,
});

export const protocolOut = (r: ProtocolRun) => ({
  id: r.id,
  project_id: r.projectId,
  protocol_name: r.protocolName,
  status: r.status,
  base_branch: r.baseBranch,
  worktree_path: r.worktreePath,
  protocol_root: r.protocolRoot,
  description: r.description,
  template_config: r.templateConfig,
  template_source: r.templateSource,
  created_at: r.createdAt,
  updated_at: r.updatedAt,
  spec_hash: r.templateConfig.spec_meta?.spec_hash ?? null,
  spec_validation_status: r.templateConfig.spec_meta?.status ?? null,
  spec_validated_at: r.templateConfig.spec_meta?.validated_at ?? null,
});

export const stepOut = (s: StepRun) => ({
  id: s.id,
  protocol_run_id: s.protocolRunId,
  step_index: s.stepIndex,
  step_name: s.stepName,
  step_type: s.stepType,
  status: s.status,
  retries: s.retries,
  model: s.model,
  engine_id: s.engineId,
  policy: s.policy,
  runtime_state: s.runtimeState,
  summary: s.summary,
  created_at: s.createdAt,
  updated_at: s.updatedAt,
});

export const eventOut = (e: Event) => ({
  id: e.id,
  protocol_run_id: e.protocolRunId,
  step_run_id: e.stepRunId,
  project_id: e.projectId,
  event_type: e.eventType,
  message: e.message,
  metadata: e.metadata,
  spec_hash: e.specHash,
  created_at: e.createdAt,
});
