/** Read-only views of the store: `status`, `steps`, `events`. */
import { eventOut } from "../../server/api-shapes.js";
import { actionsAllowedNow } from "../../services/action-rules.js";
import { usageJson } from "../../store/usage-json.js";
import type { AppContext } from "../app-context.js";
import { eventLine, runLine, stepsJson, stepsTable, table } from "../format.js";
import { parseRunId } from "../run-id.js";

const print = (text: string) => process.stdout.write(`${text}\n`);

export async function statusCommand(
  app: AppContext,
  runId: string | undefined,
  opts: { json?: boolean },
): Promise<number> {
  if (runId) {
    const run = await app.store.getProtocolRun(parseRunId(runId));
    const steps = await app.store.listStepRuns(run.id);
    const usage = await app.store.sumUsage({ protocolRunId: run.id });
    const allowed = await actionsAllowedNow(app.store, run);
    if (opts.json)
      print(
        JSON.stringify(
          {
            run_id: run.id,
            protocol_name: run.protocolName,
            status: run.status,
            spec_meta: run.templateConfig.spec_meta ?? null,
            usage: usageJson(usage),
            steps: stepsJson(steps).map((st) => ({
              ...st,
              allowed_actions: allowed.steps.get(st.step_run_id) ?? [],
            })),
            allowed_actions: allowed.run,
          },
          null,
          2,
        ),
      );
    else
      print(
        `${runLine(run)}\n${stepsTable(steps)}\ntokens: ${usage.total}\nactions: ${allowed.run.join(", ") || "none"}`,
      );
    return 0;
  }
  const runs = await app.store.listProtocolRuns();
  if (opts.json) {
    print(
      JSON.stringify(
        runs.map((r) => ({
          run_id: r.id,
          project_id: r.projectId,
          protocol_name: r.protocolName,
          status: r.status,
          updated_at: r.updatedAt,
        })),
        null,
        2,
      ),
    );
  } else {
    print(
      table([
        ["RUN", "PROTOCOL", "STATUS", "UPDATED"],
        ...runs.map((r) => [String(r.id), r.protocolName, r.status, r.updatedAt]),
      ]),
    );
  }
  return 0;
}

export async function stepsCommand(
  app: AppContext,
  runId: string,
  opts: { json?: boolean },
): Promise<number> {
  const steps = await app.store.listStepRuns((await app.store.getProtocolRun(parseRunId(runId))).id);
  print(opts.json ? JSON.stringify(stepsJson(steps), null, 2) : stepsTable(steps));
  return 0;
}

/** Events fetched per query; the ledger is read page by page, so nothing is cut off. */
const EVENT_PAGE = 500;

export async function eventsCommand(
  app: AppContext,
  runId: string,
  opts: { json?: boolean; follow?: boolean; type?: string[] },
): Promise<number> {
  const run = await app.store.getProtocolRun(parseRunId(runId));
  let names = new Map<number, string>();
  let cursor = 0;
  for (;;) {
    const events = await app.store.listEvents({
      protocolRunId: run.id,
      afterId: cursor,
      limit: EVENT_PAGE,
      ...(opts.type ? { eventTypes: opts.type } : {}),
    });
    if (events.some((e) => e.stepRunId !== null && !names.has(e.stepRunId)))
      names = new Map((await app.store.listStepRuns(run.id)).map((s) => [s.id, s.stepName]));
    for (const e of events) {
      cursor = e.id;
      // the same snake_case shape the HTTP API returns
      print(opts.json ? JSON.stringify(eventOut(e)) : eventLine(e, names));
    }
    if (events.length === EVENT_PAGE) continue;
    if (!opts.follow) return 0;
    const { status } = await app.store.getProtocolRun(run.id);
    if (events.length === 0 && !["running", "planning", "pending"].includes(status)) return 0;
    await new Promise((r) => setTimeout(r, 300));
  }
}
