import { describe, expect, it } from "vitest";
import { classifyFailure } from "../../src/engines/cli/classify-failure.js";

describe("agent failure classification", () => {
  it.each([
    ["unexpected status 401 Unauthorized: Incorrect API key provided", undefined, "auth", false],
    ["Failed to authenticate. API Error: 401", undefined, "auth", false],
    ["Incorrect API key provided", 401, "auth", false],
    ["Codex ran out of room in the model's context window", undefined, "context_too_long", false],
    [
      "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
      400,
      "context_too_long",
      false,
    ],
    [
      "input length and `max_tokens` exceed context limit: 198000 + 32000 > 200000",
      400,
      "context_too_long",
      false,
    ],
    ["Rate limit reached. Please try again in 20s.", undefined, "rate_limit", true],
    ["Rate limit exceeded for this API key", undefined, "rate_limit", true],
    ["exceeded retry limit, last status: 429 Too Many Requests", undefined, "rate_limit", true],
    ["API Error: 500 scripted 500. This is a server-side issue", undefined, "server_error", true],
    ["We're currently experiencing high demand", undefined, "server_error", true],
    ["stream disconnected before completion", undefined, "server_error", true],
    ["API Error: Unable to connect to API (ECONNRESET)", undefined, "server_error", true],
    ["[API Error: exception TypeError: fetch failed sending request]", undefined, "server_error", true],
    ["something odd happened", undefined, "crash", false],
    ["Attempt 1 failed with status 503. Retrying with backoff...", undefined, "server_error", true],
    [
      '[API Error: {"error":{"code":500,"message":"boom","status":"INTERNAL"}}]',
      undefined,
      "server_error",
      true,
    ],
    ["HTTP/1.1 502 Bad Gateway", undefined, "server_error", true],
    ["Quota exceeded for quota metric 'Generate Content API requests'", undefined, "rate_limit", true],
    ['{"error":{"message":"invalid x-api-key","type":"authentication_error"}}', undefined, "auth", false],
    // numbers and words that only look like a cause
    [
      "gemini exited with code 1: TypeError: Cannot read properties of undefined (reading 'parts')\n    at Turn.run (file:///usr/lib/node_modules/@google/gemini-cli/bundle/gemini.js:512:17)",
      undefined,
      "crash",
      false,
    ],
    [
      "opencode exited with code 1: config error: check your quota page for the limits",
      undefined,
      "crash",
      false,
    ],
    ["claude-code exited with code 1: Invalid API key format in apiKeyHelper", undefined, "crash", false],
    ["processed 500 files in 503 ms", undefined, "crash", false],
  ] as const)("%s (status %s) → %s", (message, status, kind, retryable) => {
    expect(classifyFailure(message, status)).toMatchObject({ kind, retryable, message });
  });

  it("lets the HTTP status decide over the words of the message", () => {
    expect(classifyFailure("Incorrect API key provided", 429).kind).toBe("rate_limit");
    expect(classifyFailure("rate limited by the gateway", 401).kind).toBe("auth");
    // a status no rule knows leaves it to the words
    expect(classifyFailure("API key not valid. Please pass a valid API key.", 400).kind).toBe("auth");
  });

  it("keeps the delay a provider asked for, in the units it used", () => {
    expect(classifyFailure("rate limited, try again in 2.5s").retryAfterMs).toBe(2500);
    expect(classifyFailure("Quota exceeded. Please retry in 20.5s.").retryAfterMs).toBe(20_500);
    expect(classifyFailure("HTTP 429: try again in 300ms").retryAfterMs).toBe(300);
    expect(classifyFailure("rate limit: retry after 2 min").retryAfterMs).toBe(120_000);
    expect(classifyFailure("429 Too Many Requests").retryAfterMs).toBeUndefined();
    expect(classifyFailure("authentication failed (status 401)").hint).toMatch(/API key/);
  });

  it("decides by the first part of what the CLI said that names a cause, the stream's notice before stderr", () => {
    const notice = "exceeded retry limit, last status: 429 Too Many Requests";
    const stderr = "WARNING: proceeding\n    at handler (/opt/cli/server.js:500:3) server error handler";
    expect(classifyFailure(`${notice}\n${stderr}`, undefined, [notice, stderr]).kind).toBe("rate_limit");
    expect(classifyFailure(stderr, undefined, ["Reconnecting... 2/5", stderr]).kind).toBe("server_error");
    expect(classifyFailure("x", undefined, [undefined, "warning only", ""]).kind).toBe("crash");
  });
});
