/** Status machines of protocol runs and step runs, and the legal moves between states. */

export const PROTOCOL_STATUSES = [
  "pending",
  "planning",
  "planned",
  "running",
  "paused",
  "blocked",
  "failed",
  "cancelled",
  "completed",
] as const;
export type ProtocolStatus = (typeof PROTOCOL_STATUSES)[number];

export const STEP_STATUSES = [
  "pending",
  "running",
  "needs_qa",
  "completed",
  "failed",
  "cancelled",
  "blocked",
] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

const PROTOCOL_MOVES: Record<ProtocolStatus, readonly ProtocolStatus[]> = {
  pending: ["planning", "planned", "running", "blocked", "cancelled"],
  planning: ["planned", "blocked", "failed", "cancelled"],
  // → paused: held before it starts (the API's pause); resume starts it
  planned: ["running", "planning", "paused", "blocked", "cancelled"],
  running: ["paused", "blocked", "failed", "cancelled", "completed"],
  // → completed: its last steps were approved by hand, or its PR/MR was merged (API, webhooks)
  paused: ["running", "cancelled", "completed"],
  // blocked and failed runs can be retried after the cause is fixed
  blocked: ["running", "planning", "cancelled", "completed"],
  failed: ["running", "cancelled", "completed"],
  cancelled: [],
  completed: [],
};

const STEP_MOVES: Record<StepStatus, readonly StepStatus[]> = {
  // pending → failed/blocked without running: validation errors, budget refusals; → completed: approved by hand
  pending: ["running", "failed", "blocked", "cancelled", "completed"],
  // running → pending: a worker lost its lease and the step is handed back
  running: ["needs_qa", "completed", "failed", "blocked", "cancelled", "pending"],
  needs_qa: ["running", "completed", "failed", "blocked", "cancelled", "pending"],
  // finished steps go back to pending when a loop, trigger or retry re-runs them; CI reports on
  // them after the fact (→ needs_qa for QA again, → failed when CI failed)
  completed: ["pending", "needs_qa", "failed"],
  // → completed: a person approved the step by hand (API approve); → needs_qa: QA asked again (run_qa)
  failed: ["pending", "cancelled", "completed", "needs_qa"],
  blocked: ["pending", "failed", "cancelled", "completed", "needs_qa"],
  cancelled: ["pending"],
};

export function canMoveProtocol(from: ProtocolStatus, to: ProtocolStatus): boolean {
  return PROTOCOL_MOVES[from].includes(to);
}

export function canMoveStep(from: StepStatus, to: StepStatus): boolean {
  return STEP_MOVES[from].includes(to);
}

export const TERMINAL_PROTOCOL_STATUSES: readonly ProtocolStatus[] = ["cancelled", "completed"];
/** Steps in these states count as done when deciding whether a protocol is complete. */
export const DONE_STEP_STATUSES: readonly StepStatus[] = ["completed", "cancelled"];
