/**
 * The labels of the API's actions. Which of them a run or a step allows now is the server's
 * `allowed_actions` on every run and step it serves: the console shows exactly those and decides
 * nothing itself.
 */
const LABELS: Record<string, string> = {
  start: "Start",
  pause: "Pause",
  resume: "Resume",
  cancel: "Cancel",
  run_next_step: "Run next step",
  retry_latest: "Retry latest",
  open_pr: "Open PR",
  run: "Run",
  run_qa: "QA",
  approve: "Approve",
};

/** An action's button label; an action this console does not know yet shows its name. */
export const actionLabel = (action: string): string => LABELS[action] ?? action;
