/**
 * Which actions the console offers for a run's or a step's status: the "allowed from" column of
 * docs/api.md. The server decides; a button enabled here can still be refused (a checkout missing,
 * a status that changed meanwhile), and the page shows the server's reason.
 */
import type { ProtocolRun, StepRun } from "./api-types.js";

export const PROTOCOL_ACTIONS = [
  ["start", "Start"],
  ["pause", "Pause"],
  ["resume", "Resume"],
  ["cancel", "Cancel"],
  ["run_next_step", "Run next step"],
  ["retry_latest", "Retry latest"],
  ["open_pr", "Open PR"],
] as const;

export const STEP_ACTIONS = [
  ["run", "Run"],
  ["run_qa", "QA"],
  ["approve", "Approve"],
] as const;

export type ProtocolAction = (typeof PROTOCOL_ACTIONS)[number][0];
export type StepAction = (typeof STEP_ACTIONS)[number][0];

/** Runs a person can work on step by step; a running run advances by itself. */
const WORKABLE = ["planned", "paused", "blocked", "failed"];
const RUNNABLE_STEP = ["pending", "blocked", "failed"];

export function protocolActionAllowed(action: ProtocolAction, run: ProtocolRun, steps: StepRun[]): boolean {
  const workable = WORKABLE.includes(run.status);
  switch (action) {
    case "start":
      return ["pending", "planned", "paused"].includes(run.status);
    case "pause":
      return run.status === "planned" || run.status === "running";
    case "resume":
      return run.status === "paused";
    case "cancel":
      return run.status !== "cancelled" && run.status !== "completed";
    case "run_next_step":
      return workable && steps.some((s) => RUNNABLE_STEP.includes(s.status));
    case "retry_latest":
      return workable && steps.some((s) => s.status === "failed" || s.status === "blocked");
    case "open_pr":
      return true;
  }
}

export function stepActionAllowed(action: StepAction, step: StepRun, run: ProtocolRun): boolean {
  const workable = WORKABLE.includes(run.status);
  switch (action) {
    case "run":
      return workable && RUNNABLE_STEP.includes(step.status);
    case "run_qa":
      return workable && ["needs_qa", "failed", "blocked"].includes(step.status);
    case "approve":
      return !["running", "cancelled", "completed"].includes(step.status);
  }
}
