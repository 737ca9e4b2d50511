/** A notification as a Slack-compatible incoming-webhook message: a text line and a few blocks. */
import { formatCost } from "../cost/call-cost.js";
import type { Notification } from "./notification.js";

const HEADLINE: Record<Notification["type"], string> = {
  "run.completed": ":white_check_mark: completed",
  "run.failed": ":x: failed",
  "run.blocked": ":no_entry: is blocked",
  "run.awaiting_approval": ":raised_hand: is waiting for approval",
  "budget.warning": ":warning: passed a budget warning limit",
};

/** Slack's mrkdwn treats &, < and > as markup. */
function mrkdwn(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

export interface SlackMessage {
  text: string;
  blocks: Record<string, unknown>[];
}

export function slackMessage(n: Notification): SlackMessage {
  const runName = mrkdwn(n.run.name);
  const runRef = n.run.url ? `<${n.run.url}|${runName}>` : runName;
  const headline = `Run ${runRef} ${HEADLINE[n.type]}`;
  const lines = [`*${headline}* in ${mrkdwn(n.project.name)}`];
  if (n.step) lines.push(`Step \`${mrkdwn(n.step.id)}\`: ${mrkdwn(n.step.status)}`);
  if (n.reason) lines.push(`> ${mrkdwn(n.reason)}`);
  if (n.run.pr_url) lines.push(`<${n.run.pr_url}|Pull request>`);
  const context = [`status ${mrkdwn(n.run.status)}`];
  if (n.cost)
    context.push(
      `cost ${mrkdwn(formatCost({ usd: n.cost.usd, partial: n.cost.partial, unknownModels: n.cost.unknown_models }))}`,
    );
  if (n.run.branch) context.push(`branch \`${mrkdwn(n.run.branch)}\``);
  return {
    // Slack formats the text line too: escaped like the blocks
    text: `Run ${runName} ${HEADLINE[n.type].replace(/^:[a-z_]+: /, "")} in ${mrkdwn(n.project.name)}`,
    blocks: [
      { type: "section", text: { type: "mrkdwn", text: lines.join("\n") } },
      { type: "context", elements: [{ type: "mrkdwn", text: context.join(" · ") }] },
    ],
  };
}
