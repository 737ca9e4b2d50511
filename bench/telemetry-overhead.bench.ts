/**
 * What tracing adds per step: the spans the runner opens for one step attempt (the attempt, its engine
 * call with the GenAI attributes, QA, a policy decision, the checkpoint), timed with tracing off
 * (nothing loaded: no-ops) and on (the OpenTelemetry SDK batching to an OTLP/HTTP receiver on
 * 127.0.0.1 that answers 200). Prints the median and p95 per step in microseconds.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { engineCallAttributes, engineCallSpanName } from "../src/telemetry/engine-call-attributes.js";
import { SPAN, startTelemetry, type Telemetry } from "../src/telemetry/run-trace.js";

const STEPS = Number(process.env.BENCH_STEPS ?? 2000);
const usage = { input: 12_000, cachedInput: 8_000, output: 900, reasoning: 100, estimated: false };

function traceSteps(telemetry: Telemetry): number[] {
  const run = telemetry.runTrace({ runId: "bench", createdAt: new Date(), name: "0001-bench" });
  const times: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    const t0 = performance.now();
    const step = run.stepAttempt({ stepId: `s${i}`, attempt: 1 });
    const call = step.child(
      engineCallSpanName("codex"),
      engineCallAttributes({
        engineId: "codex",
        phase: "exec",
        requestedModel: "gpt-5.5",
        specHash: "0123456789ab",
      }),
    );
    call.end(
      engineCallAttributes({
        responseModel: "gpt-5.5",
        usage,
        cost: { usd: 0.01, partial: false, unknownModels: [] },
      }),
    );
    step.child(SPAN.qa).end({ "tgz.verdict": "pass" });
    step.child(SPAN.policy).end();
    step.child(SPAN.checkpoint).end();
    step.end();
    times.push((performance.now() - t0) * 1000);
  }
  run.end({ status: "completed" });
  return times;
}

function report(label: string, micros: number[]): void {
  const sorted = [...micros].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(1);
  console.log(`${label}: median ${at(0.5)} µs, p95 ${at(0.95)} µs per step (${STEPS} steps)`);
}

const off = await startTelemetry({ headers: {}, serviceName: "bench" });
report("tracing off", traceSteps(off));

const receiver = createServer((req, res) => {
  req.resume();
  req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"));
});
await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/traces`;
const on = await startTelemetry({ tracesUrl: url, headers: {}, serviceName: "bench" });
report("tracing on ", traceSteps(on));
await on.shutdown();
receiver.close();
