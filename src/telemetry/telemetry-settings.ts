/**
 * Where traces go: the `telemetry` section of tasksgodzilla.config.* over the standard OpenTelemetry
 * variables. With neither naming an endpoint, tracing is off and no OpenTelemetry code is loaded.
 */
import { z } from "zod";
import { InvalidInputError } from "../shared/errors.js";

export const TelemetryConfig = z
  .strictObject({
    enabled: z
      .boolean()
      .optional()
      .describe("false turns tracing off even when the environment names an endpoint."),
    endpoint: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe("OTLP/HTTP base URL (traces go to <endpoint>/v1/traces), like OTEL_EXPORTER_OTLP_ENDPOINT."),
    headers: z
      .record(z.string(), z.string())
      .optional()
      .describe("Headers sent with every export (e.g. an API key of the tracing backend)."),
    service_name: z
      .string()
      .min(1)
      .optional()
      .describe("service.name of the traces (default tasksgodzilla)."),
  })
  .describe("OpenTelemetry tracing of runs.");
export type TelemetryConfig = z.infer<typeof TelemetryConfig>;

export interface TelemetrySettings {
  /** The OTLP/HTTP traces URL; undefined: tracing is off. */
  tracesUrl?: string | undefined;
  headers: Record<string, string>;
  serviceName: string;
}

export const DEFAULT_SERVICE_NAME = "tasksgodzilla";

export class TelemetrySettingsError extends InvalidInputError {}

/** `key=value,key2=value2` with URL-encoded values, as OTEL_EXPORTER_OTLP_HEADERS is written. */
function parseHeaders(name: string, value: string | undefined): Record<string, string> {
  if (!value) return {};
  const headers: Record<string, string> = {};
  for (const pair of value.split(",")) {
    if (!pair.trim()) continue;
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new TelemetrySettingsError(`${name}: "${pair.trim()}" is not key=value`);
    headers[decodeURIComponent(pair.slice(0, eq).trim())] = decodeURIComponent(pair.slice(eq + 1).trim());
  }
  return headers;
}

function httpUrl(name: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TelemetrySettingsError(`${name}=${value}: not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new TelemetrySettingsError(`${name}=${value}: expected an http:// or https:// URL`);
  return value;
}

const tracesPath = (base: string) => `${base.replace(/\/+$/, "")}/v1/traces`;

/**
 * The config file's `telemetry` over the environment: `endpoint` (a base URL) over
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the full traces URL) over OTEL_EXPORTER_OTLP_ENDPOINT (a base
 * URL). Off with `enabled: false`, OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none.
 */
export function telemetrySettings(
  file: TelemetryConfig | undefined,
  env: NodeJS.ProcessEnv = process.env,
): TelemetrySettings {
  const headers = {
    ...parseHeaders("OTEL_EXPORTER_OTLP_HEADERS", env.OTEL_EXPORTER_OTLP_HEADERS),
    ...parseHeaders("OTEL_EXPORTER_OTLP_TRACES_HEADERS", env.OTEL_EXPORTER_OTLP_TRACES_HEADERS),
    ...file?.headers,
  };
  const serviceName = file?.service_name ?? (env.OTEL_SERVICE_NAME || DEFAULT_SERVICE_NAME);
  const off =
    file?.enabled === false ||
    env.OTEL_SDK_DISABLED?.toLowerCase() === "true" ||
    env.OTEL_TRACES_EXPORTER?.toLowerCase() === "none";
  if (off) return { headers, serviceName };
  let tracesUrl: string | undefined;
  if (file?.endpoint) tracesUrl = tracesPath(file.endpoint);
  else if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
    tracesUrl = httpUrl("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  else if (env.OTEL_EXPORTER_OTLP_ENDPOINT)
    tracesUrl = tracesPath(httpUrl("OTEL_EXPORTER_OTLP_ENDPOINT", env.OTEL_EXPORTER_OTLP_ENDPOINT));
  return { tracesUrl, headers, serviceName };
}
