/** Database rows ↔ the camelCase row types of the Store contract. */
import type { Selectable } from "kysely";
import type { EventsTable, ProjectsTable, ProtocolRunsTable, StepRunsTable } from "./db-schema.js";
import type { ProtocolStatus, StepStatus } from "./status.js";
import type { Event, Json, Project, ProtocolRun, StepRun, TemplateConfig } from "./types.js";

export function parseJson<T>(text: string | null, fallback: T): T {
  return text === null || text === "" ? fallback : (JSON.parse(text) as T);
}

export function toProject(r: Selectable<ProjectsTable>): Project {
  return {
    id: r.id,
    name: r.name,
    gitUrl: r.git_url,
    localPath: r.local_path,
    baseBranch: r.base_branch,
    ciProvider: r.ci_provider,
    defaultModels: parseJson<Json>(r.default_models, {}),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function toProtocolRun(r: Selectable<ProtocolRunsTable>): ProtocolRun {
  return {
    id: r.id,
    projectId: r.project_id,
    protocolName: r.protocol_name,
    status: r.status as ProtocolStatus,
    baseBranch: r.base_branch,
    worktreePath: r.worktree_path,
    protocolRoot: r.protocol_root,
    description: r.description,
    templateConfig: parseJson<TemplateConfig>(r.template_config, {}),
    templateSource: parseJson<Json | null>(r.template_source, null),
    leaseOwner: r.lease_owner,
    leaseExpiresAt: r.lease_expires_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function toStepRun(r: Selectable<StepRunsTable>): StepRun {
  return {
    id: r.id,
    protocolRunId: r.protocol_run_id,
    stepIndex: r.step_index,
    stepName: r.step_name,
    stepType: r.step_type,
    status: r.status as StepStatus,
    retries: r.retries,
    model: r.model,
    engineId: r.engine_id,
    policy: parseJson<Json[]>(r.policy, []),
    runtimeState: parseJson<Json>(r.runtime_state, {}),
    summary: r.summary,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function toEvent(r: Selectable<EventsTable>): Event {
  return {
    id: r.id,
    protocolRunId: r.protocol_run_id,
    stepRunId: r.step_run_id,
    projectId: r.project_id,
    eventType: r.event_type,
    message: r.message,
    metadata: parseJson<Json>(r.metadata, {}),
    specHash: r.spec_hash,
    createdAt: r.created_at,
  };
}
