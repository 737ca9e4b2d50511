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
    ["something odd happened", undefined, "crash", false],
  ] as const)("%s → %s", (message, status, kind, retryable) => {
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
    expect(classifyFailure("429: try again in 300ms").retryAfterMs).toBe(300);
    expect(classifyFailure("rate limit: retry after 2 min").retryAfterMs).toBe(120_000);
    expect(classifyFailure("429 Too Many Requests").retryAfterMs).toBeUndefined();
    expect(classifyFailure("auth failed 401").hint).toMatch(/API key/);
  });
});
