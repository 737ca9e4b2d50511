/** What each job kind does: the same services the CLI calls, given the job's payload. */
import { importCodemachine } from "../codemachine/import-codemachine.js";
import { planProtocol } from "../planning/plan-protocol.js";
import { openRunPullRequest } from "../pr/open-run-pr.js";
import type { JobKind } from "../queue/job-queue.js";
import { ProtocolRunner } from "../runner/protocol-runner.js";
import type { RunnerDeps } from "../runner/run-context.js";
import { createRunFromSpec } from "../services/create-run.js";
import { auditSpecs } from "../services/spec-audit.js";
import { InvalidInputError } from "../shared/errors.js";
import type { QaPolicy } from "../spec/schema.js";
import type { JobHandler } from "./job-worker.js";

function num(payload: Record<string, unknown>, key: string): number {
  const v = payload[key];
  if (typeof v !== "number" && !(typeof v === "string" && /^\d+$/.test(v)))
    throw new InvalidInputError(`job payload needs ${key}`);
  return Number(v);
}

const text = (payload: Record<string, unknown>, key: string) =>
  typeof payload[key] === "string" ? (payload[key] as string) : undefined;

export function jobHandlers(deps: RunnerDeps): Record<JobKind, JobHandler> {
  return {
    async execute_protocol(job, signal) {
      await new ProtocolRunner(deps).run(num(job.payload, "protocol_run_id"), { signal });
    },
    async plan(job, signal) {
      const task = text(job.payload, "task");
      const repo = text(job.payload, "repo");
      if (!task || !repo) throw new InvalidInputError("plan job needs task and repo");
      const run = await planProtocol(deps, {
        task,
        repoDir: repo,
        name: text(job.payload, "name"),
        base: text(job.payload, "base"),
        engine: text(job.payload, "engine"),
        model: text(job.payload, "model"),
        signal,
      });
      if (job.payload.run === true && run.status === "planned")
        await new ProtocolRunner(deps).run(run.id, { signal });
    },
    async open_pr(job) {
      await openRunPullRequest(deps.store, num(job.payload, "protocol_run_id"), process.env);
    },
    async import(job) {
      const path = text(job.payload, "path");
      const repo = text(job.payload, "repo");
      if (!path || !repo) throw new InvalidInputError("import job needs path and repo");
      const imported = importCodemachine(path, {
        repoDir: repo,
        workflow: text(job.payload, "workflow"),
        qa: text(job.payload, "qa") as QaPolicy | undefined,
      });
      await createRunFromSpec(deps.store, {
        repoDir: repo,
        spec: imported.spec,
        files: imported.files,
        name: text(job.payload, "name") ?? imported.name,
      });
    },
    async spec_audit(job) {
      const project = job.payload.project_id;
      const run = job.payload.protocol_run_id;
      await auditSpecs(deps.store, deps.configFor, {
        projectId: project == null ? undefined : Number(project),
        runId: run == null ? undefined : Number(run),
        backfill: job.payload.backfill === true,
      });
    },
  };
}
