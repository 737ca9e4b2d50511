/**
 * A process that starts tracing a run, sends its first step attempt and dies (SIGKILL) before the run
 * ends: what a worker killed mid-run leaves behind. Run by telemetry.test.ts.
 */
import { engineCallAttributes, engineCallSpanName } from "../../src/telemetry/engine-call-attributes.js";
import { startTelemetry } from "../../src/telemetry/run-trace.js";
import { telemetrySettings } from "../../src/telemetry/telemetry-settings.js";

const telemetry = await startTelemetry(telemetrySettings(undefined, process.env));
const run = telemetry.runTrace({
  runId: 7,
  createdAt: new Date(process.env.RUN_CREATED_AT!),
  name: "0001-demo",
  attributes: { "tgz.project": "demo" },
});
const step = run.stepAttempt({ stepId: "build", attempt: 1 });
const call = step.child(
  engineCallSpanName("codex"),
  engineCallAttributes({ engineId: "codex", phase: "exec", requestedModel: "gpt-5.5" }),
);
call.fail("server_error: scripted 500");
call.end(engineCallAttributes({ errorKind: "server_error" }));
step.end({ "tgz.step.status": "failed" });
await telemetry.flush();
process.kill(process.pid, "SIGKILL");
