/** The pull request's description: the plan, every step with its QA verdict, and what it cost. */
export interface PrSummary {
  protocolName: string;
  title: string;
  task: string | null;
  /** The plan's summary (markdown), when the run was planned. */
  summary: string | null;
  specHash: string | null;
  steps: { id: string; status: string; verdict: string | null; tokens: number }[];
  totalTokens: number;
  estimatedCalls: number;
}

export function prBody(s: PrSummary): string {
  const rows = s.steps.map((st) => `| \`${st.id}\` | ${st.status} | ${st.verdict ?? "-"} | ${st.tokens} |`);
  return [
    `## ${s.title}`,
    "",
    ...(s.task ? [`**Task:** ${s.task}`, ""] : []),
    ...(s.summary ? ["### Plan", "", s.summary, ""] : []),
    "### Steps",
    "",
    "| Step | Status | QA | Tokens |",
    "|---|---|---|---|",
    ...rows,
    "",
    `**Tokens:** ${s.totalTokens}${s.estimatedCalls > 0 ? ` (${s.estimatedCalls} call(s) estimated)` : ""}  `,
    `**Protocol:** \`${s.protocolName}\`${s.specHash ? ` — spec \`${s.specHash}\`` : ""}`,
    "",
    "Opened by TasksGodzilla; the full event ledger is in the run (`tgz events`).",
  ].join("\n");
}
