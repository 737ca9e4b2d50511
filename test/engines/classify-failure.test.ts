import { describe, expect, it } from "vitest";
import { classifyFailure } from "../../src/engines/cli/classify-failure.js";

describe("agent failure classification", () => {
  it.each([
    ["unexpected status 401 Unauthorized: Incorrect API key provided", undefined, "auth", false],
    ["Failed to authenticate. API Error: 401", undefined, "auth", false],
    ["Incorrect API key provided", 401, "auth", false],
    ["Codex ran out of room in the model's context window", undefined, "context_too_long", false],
    ["Rate limit reached. Please try again in 20s.", undefined, "rate_limit", true],
    ["API Error: 500 scripted 500. This is a server-side issue", undefined, "server_error", true],
    ["We're currently experiencing high demand", undefined, "server_error", true],
    ["stream disconnected before completion", undefined, "server_error", true],
    ["something odd happened", undefined, "crash", false],
  ] as const)("%s → %s", (message, status, kind, retryable) => {
    expect(classifyFailure(message, status)).toMatchObject({ kind, retryable, message });
  });

  it("keeps the delay a provider asked for", () => {
    expect(classifyFailure("rate limited, try again in 2.5s").retryAfterMs).toBe(2500);
    expect(classifyFailure("auth failed 401").hint).toMatch(/API key/);
  });
});
