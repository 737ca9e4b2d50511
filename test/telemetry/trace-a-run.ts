/** Traces a small run with the settings of the environment, then exits. Run by telemetry.test.ts. */
import { SPAN, startTelemetry } from "../../src/telemetry/run-trace.js";
import { telemetrySettings } from "../../src/telemetry/telemetry-settings.js";

const telemetry = await startTelemetry(telemetrySettings(undefined, process.env));
const run = telemetry.runTrace({ runId: 1, createdAt: new Date(), name: "0001-x" });
run.stepAttempt({ stepId: "s", attempt: 1 }).child(SPAN.qa).end();
run.end({ status: "completed" });
// nothing listens on the endpoint of the "on" case: the export fails quietly and is not waited for
