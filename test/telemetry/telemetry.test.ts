/**
 * Run tracing with the real OpenTelemetry SDK and OTLP/HTTP exporter, sending to a local receiver that
 * decodes OTLP/JSON: the span tree, the GenAI and our attributes, a run that resumes after its process
 * was killed continuing the same trace; and with nothing set, nothing of OpenTelemetry loaded.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  engineCallAttributes,
  engineCallSpanName,
  genAiSystem,
} from "../../src/telemetry/engine-call-attributes.js";
import { NO_TELEMETRY, runTraceIds, SPAN, startTelemetry } from "../../src/telemetry/run-trace.js";
import { TelemetrySettingsError, telemetrySettings } from "../../src/telemetry/telemetry-settings.js";
import { OtlpReceiver } from "./otlp-receiver.js";

const HERE = import.meta.dirname;

/** Runs a TypeScript file in a node process of its own; resolves with how it ended. */
function runScript(
  file: string,
  env: Record<string, string>,
  args: string[] = [],
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...args, "--import", "tsx", file], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stderr }));
  });
}

describe("run traces over OTLP/HTTP", () => {
  let receiver: OtlpReceiver | undefined;
  afterEach(async () => {
    await receiver?.close();
    receiver = undefined;
  });

  it("sends the span tree of a run that was killed and resumed, one trace from start to end", async () => {
    receiver = await OtlpReceiver.start();
    const createdAt = new Date(Date.now() - 60_000);
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_SERVICE_NAME: "tgz-test",
      OTEL_EXPORTER_OTLP_HEADERS: "x-team=platform",
      RUN_CREATED_AT: createdAt.toISOString(),
    };
    // the first process: step "build" fails once, then the process is killed before the run ends
    const crashed = await runScript(join(HERE, "crashing-run.ts"), env);
    expect(crashed.signal, crashed.stderr).toBe("SIGKILL");
    const { traceId, rootSpanId } = runTraceIds({ runId: 7, createdAt });
    expect(receiver.spans.map((s) => [s.name, s.traceId, s.parentSpanId])).toEqual([
      ["invoke_agent codex", traceId, expect.any(String)],
      ["step build", traceId, rootSpanId],
    ]);

    // the run resumes in this process: the same trace, under the same root
    const telemetry = await startTelemetry(telemetrySettings(undefined, env));
    expect(telemetry.enabled).toBe(true);
    const run = telemetry.runTrace({
      runId: 7,
      createdAt,
      name: "0001-demo",
      resumed: true,
      attributes: { "tgz.project": "demo" },
    });
    expect(run.traceId).toBe(traceId);
    const step = run.stepAttempt({
      stepId: "build",
      attempt: 2,
      attributes: { "tgz.engine": "claude-code" },
    });
    const call = step.child(
      engineCallSpanName("claude-code"),
      engineCallAttributes({
        engineId: "claude-code",
        phase: "exec",
        requestedModel: "claude-opus-4-1",
        specHash: "0123456789ab",
        promptVersion: "build.md@1a2b3c4d",
      }),
    );
    expect(call.logFields()).toEqual({ trace_id: traceId, span_id: call.spanId, trace_flags: "01" });
    call.end(
      engineCallAttributes({
        responseModel: "claude-opus-4-8-20261120",
        sessionId: "sess-1",
        usage: {
          input: 1200,
          cachedInput: 800,
          cacheWrite: 100,
          output: 300,
          reasoning: 0,
          estimated: false,
        },
        cost: { usd: 0.0123, partial: false, unknownModels: [] },
      }),
    );
    const qa = step.child(SPAN.qa, { "tgz.qa.policy": "light" });
    qa.end({ "tgz.verdict": "pass" });
    step.child(SPAN.policy, { "tgz.policy.decision": "continue" }).end();
    step.child(SPAN.checkpoint, { "tgz.git.commit": "abc1234" }).end();
    step.end({ "tgz.step.status": "completed" });
    run.span(SPAN.pullRequest, { "tgz.pr.url": "https://example.invalid/pr/1" }).end();
    run.end({ status: "completed" });
    await telemetry.shutdown();

    const spans = receiver.spans;
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([traceId]));
    const [root] = receiver.named("run 0001-demo");
    expect(root).toMatchObject({
      spanId: rootSpanId,
      parentSpanId: "",
      attributes: { "tgz.run.id": "7", "tgz.run.status": "completed", "tgz.project": "demo" },
      resource: { "service.name": "tgz-test", "service.version": expect.any(String) },
    });
    // the root spans the whole run, from its creation in the first process
    expect(BigInt(root!.startTimeUnixNano)).toBe(BigInt(createdAt.getTime()) * 1_000_000n);
    const byName = (name: string) => spans.filter((s) => s.name === name);
    const [first, second] = byName("step build");
    expect(first).toMatchObject({
      parentSpanId: rootSpanId,
      attributes: { "tgz.attempt": 1, "tgz.step.status": "failed" },
    });
    expect(second).toMatchObject({ parentSpanId: rootSpanId, attributes: { "tgz.attempt": 2 } });
    expect(byName("run resumed")[0]).toMatchObject({ parentSpanId: rootSpanId });
    // the failed first call under the first attempt, with its error
    expect(byName("invoke_agent codex")[0]).toMatchObject({
      parentSpanId: first!.spanId,
      status: { code: 2, message: "server_error: scripted 500" },
      attributes: {
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-5.5",
        "error.type": "server_error",
      },
    });
    expect(byName("invoke_agent claude-code")[0]).toMatchObject({
      parentSpanId: second!.spanId,
      attributes: {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.system": "anthropic",
        "gen_ai.agent.name": "claude-code",
        "gen_ai.request.model": "claude-opus-4-1",
        "gen_ai.response.model": "claude-opus-4-8-20261120",
        "gen_ai.conversation.id": "sess-1",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
        "tgz.usage.cached_input_tokens": 800,
        "tgz.usage.cache_write_tokens": 100,
        "tgz.spec_hash": "0123456789ab",
        "tgz.prompt_version": "build.md@1a2b3c4d",
        "tgz.cost_usd": 0.0123,
        "tgz.cost_partial": false,
        "tgz.phase": "exec",
      },
    });
    for (const name of [SPAN.qa, SPAN.policy, SPAN.checkpoint])
      expect(byName(name)[0], name).toMatchObject({ parentSpanId: second!.spanId });
    expect(byName(SPAN.qa)[0]!.attributes).toMatchObject({ "tgz.verdict": "pass" });
    expect(byName(SPAN.pullRequest)[0]).toMatchObject({ parentSpanId: rootSpanId });
    // OTLP/JSON to <endpoint>/v1/traces, with the configured headers
    expect(receiver.requests.every((r) => r.path === "/v1/traces")).toBe(true);
    expect(receiver.requests[0]!.headers).toMatchObject({
      "content-type": expect.stringMatching(/^application\/json/),
      "x-team": "platform",
    });
  });

  it("marks a run that stops without ending, and a failed run's root span as an error", async () => {
    receiver = await OtlpReceiver.start();
    const telemetry = await startTelemetry({
      tracesUrl: `${receiver.url}/v1/traces`,
      headers: {},
      serviceName: "t",
    });
    const createdAt = new Date();
    const run = telemetry.runTrace({ runId: "r-2", createdAt, name: "0002-x" });
    run.stopped("blocked", "budget exceeded");
    await telemetry.flush();
    // blocked is not an end: no root span yet, the run may resume
    expect(receiver.spans.map((s) => s.name)).toEqual(["run blocked"]);
    expect(receiver.spans[0]!.attributes).toMatchObject({
      "tgz.run.status": "blocked",
      "tgz.reason": "budget exceeded",
    });
    run.end({ status: "failed", reason: "step build failed" });
    await telemetry.shutdown();
    expect(receiver.named("run 0002-x")[0]).toMatchObject({
      spanId: runTraceIds({ runId: "r-2", createdAt }).rootSpanId,
      status: { code: 2, message: "step build failed" },
    });
  });

  it("derives different traces for different runs, the same for the same run", () => {
    const at = new Date("2026-12-01T10:00:00Z");
    const a = runTraceIds({ runId: 1, createdAt: at });
    expect(a.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(a.rootSpanId).toMatch(/^[0-9a-f]{16}$/);
    expect(runTraceIds({ runId: 1, createdAt: new Date(at) })).toEqual(a);
    // a run id reused by another database is another run: its creation time tells them apart
    expect(runTraceIds({ runId: 1, createdAt: new Date("2026-12-02T10:00:00Z") }).traceId).not.toBe(
      a.traceId,
    );
    expect(runTraceIds({ runId: 2, createdAt: at }).traceId).not.toBe(a.traceId);
  });
});

describe("tracing off", () => {
  it("is a set of no-ops with no ids, so log lines carry none", async () => {
    const telemetry = await startTelemetry(telemetrySettings(undefined, {}));
    expect(telemetry).toBe(NO_TELEMETRY);
    const run = telemetry.runTrace({ runId: 1, createdAt: new Date(), name: "x" });
    const span = run.stepAttempt({ stepId: "s", attempt: 1 }).child(SPAN.qa);
    span.end({ a: 1 });
    expect([run.traceId, span.traceId, span.spanId]).toEqual([undefined, undefined, undefined]);
    expect(span.logFields()).toEqual({});
    run.end({ status: "completed" });
  });

  it("loads no OpenTelemetry module with nothing set, and loads the SDK when an endpoint is set", async () => {
    const log = join(mkdtempSync(join(tmpdir(), "tgz-imports-")), "imports.log");
    const hooks = ["--import", join(HERE, "record-imports.mjs")];
    const off = await runScript(
      join(HERE, "trace-a-run.ts"),
      { TGZ_IMPORT_LOG: log, OTEL_EXPORTER_OTLP_ENDPOINT: "" },
      hooks,
    );
    expect(off.code, off.stderr).toBe(0);
    const offImports = readFileSync(log, "utf8");
    // the hook saw the run-trace module itself, and nothing of OpenTelemetry
    expect(offImports).toMatch(/src\/telemetry\/run-trace\.ts/);
    expect(offImports).not.toMatch(/@opentelemetry|otel-telemetry/);

    const onLog = `${log}.on`;
    const on = await runScript(
      join(HERE, "trace-a-run.ts"),
      { TGZ_IMPORT_LOG: onLog, OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9" },
      hooks,
    );
    expect(on.code, on.stderr).toBe(0);
    expect(readFileSync(onLog, "utf8")).toMatch(/@opentelemetry\/sdk-trace/);
  });
});

describe("telemetry settings", () => {
  it("take the config file's endpoint over OTEL_EXPORTER_OTLP_TRACES_ENDPOINT over OTEL_EXPORTER_OTLP_ENDPOINT", () => {
    expect(telemetrySettings(undefined, {})).toEqual({ headers: {}, serviceName: "tasksgodzilla" });
    expect(
      telemetrySettings(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" }).tracesUrl,
    ).toBe("http://collector:4318/v1/traces");
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://traces:4318/custom/path",
      OTEL_SERVICE_NAME: "ci-runner",
      OTEL_EXPORTER_OTLP_HEADERS: "api-key=a%20b,x-tenant=t1",
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: "x-tenant=t2",
    };
    expect(telemetrySettings(undefined, env)).toEqual({
      tracesUrl: "http://traces:4318/custom/path",
      headers: { "api-key": "a b", "x-tenant": "t2" },
      serviceName: "ci-runner",
    });
    expect(
      telemetrySettings(
        { endpoint: "https://otel.example.com", headers: { "x-tenant": "t3" }, service_name: "tgz-prod" },
        env,
      ),
    ).toEqual({
      tracesUrl: "https://otel.example.com/v1/traces",
      headers: { "api-key": "a b", "x-tenant": "t3" },
      serviceName: "tgz-prod",
    });
  });

  it("are off with enabled: false, OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none", () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" };
    expect(telemetrySettings({ enabled: false }, env).tracesUrl).toBeUndefined();
    expect(telemetrySettings(undefined, { ...env, OTEL_SDK_DISABLED: "true" }).tracesUrl).toBeUndefined();
    expect(telemetrySettings(undefined, { ...env, OTEL_TRACES_EXPORTER: "none" }).tracesUrl).toBeUndefined();
  });

  it("refuse an endpoint that is not an http(s) URL and headers that are not key=value", () => {
    expect(() => telemetrySettings(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" })).toThrow(
      TelemetrySettingsError,
    );
    expect(() => telemetrySettings(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: "grpc://c:4317" })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT=grpc:\/\/c:4317: expected an http:\/\/ or https:\/\/ URL/,
    );
    expect(() =>
      telemetrySettings(undefined, {
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://c",
        OTEL_EXPORTER_OTLP_HEADERS: "novalue",
      }),
    ).toThrow(/OTEL_EXPORTER_OTLP_HEADERS: "novalue" is not key=value/);
  });
});

describe("GenAI attributes", () => {
  it("name the provider from the model's prefix, else from the engine", () => {
    expect(genAiSystem("codex")).toBe("openai");
    expect(genAiSystem("claude-code", "claude-opus-4-8")).toBe("anthropic");
    expect(genAiSystem("gemini")).toBe("gcp.gemini");
    expect(genAiSystem("opencode", "anthropic/claude-sonnet-4-5")).toBe("anthropic");
    expect(genAiSystem("opencode", "fake/fake-model")).toBe("opencode");
    expect(genAiSystem("shell")).toBe("shell");
  });

  it("leave out what is not known", () => {
    expect(engineCallAttributes({ verdict: "fail" })).toEqual(
      expect.objectContaining({ "tgz.verdict": "fail", "gen_ai.system": undefined }),
    );
  });
});
