/** Outgoing webhooks against local receivers: signatures, retryable failures, Slack messages, time limits. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config/load-config.js";
import { deliverWebhook, retryDelayMs, WEBHOOK_RETRY } from "../../src/notify/deliver-webhook.js";
import { buildNotification, type Notification } from "../../src/notify/notification.js";
import { NotificationsConfig, WebhookSecretError, webhookTargets } from "../../src/notify/notify-config.js";
import { verifyWebhookSignature } from "../../src/notify/webhook-signature.js";

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A receiver on 127.0.0.1 that records each request and answers as `answer` says. */
async function receiver(answer: (req: Received, res: ServerResponse) => void) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const r = { path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") };
      received.push(r);
      answer(r, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = () => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  };
  closers.push(close);
  return { url, received };
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

const SECRET = "whsec-test-0123456789";
const now = new Date("2026-12-07T22:00:00Z");

const notification: Notification = buildNotification(
  {
    type: "run.blocked",
    project: { id: 3, name: "web-app" },
    run: {
      id: 42,
      name: "0001-add-login",
      status: "blocked",
      branch: "0001-add-login",
      url: "http://127.0.0.1:8010/console#/runs/42",
    },
    step: { id: "build", status: "failed" },
    reason: "run money budget $5.00 (strict): $4.90 spent + $0.30 estimated for the next call",
    cost: { usd: 4.9, partial: true, unknownModels: ["gpt-5.6-sol"] },
    budget: {
      scope: "protocol",
      mode: "strict",
      kind: "over_limit",
      checkpoint: "before_call",
      limitUsd: 5,
      spentUsd: 4.9,
      callUsd: 0.3,
      partial: true,
      unknownModels: ["gpt-5.6-sol"],
    },
  },
  { id: "6f1c5c1e-0000-4000-8000-000000000001", now },
);

const target = (url: string, extra: Partial<Parameters<typeof deliverWebhook>[0]> = {}) => ({
  name: "ops",
  url,
  format: "json" as const,
  secret: SECRET,
  timeoutMs: 5_000,
  ...extra,
});

describe("a signed JSON notification", () => {
  it("arrives with its documented shape and headers, and the receiver verifies its signature", async () => {
    const r = await receiver((_, res) => res.writeHead(204).end());
    const outcome = await deliverWebhook(target(`${r.url}/hooks/tgz`), notification, { now: () => now });
    expect(outcome).toMatchObject({ ok: true, status: 204 });
    const [req] = r.received;
    expect(req!.path).toBe("/hooks/tgz");
    expect(req!.headers).toMatchObject({
      "content-type": "application/json",
      "x-tasksgodzilla-event": "run.blocked",
      "x-tasksgodzilla-delivery": notification.id,
      "x-tasksgodzilla-timestamp": String(now.getTime() / 1000),
      "x-tasksgodzilla-signature": expect.stringMatching(/^sha256=[0-9a-f]{64}$/),
    });
    expect(JSON.parse(req!.body)).toEqual({
      schema_version: 1,
      id: "6f1c5c1e-0000-4000-8000-000000000001",
      type: "run.blocked",
      created_at: "2026-12-07T22:00:00.000Z",
      project: { id: 3, name: "web-app" },
      run: {
        id: 42,
        name: "0001-add-login",
        status: "blocked",
        branch: "0001-add-login",
        url: "http://127.0.0.1:8010/console#/runs/42",
        pr_url: null,
      },
      step: { id: "build", status: "failed" },
      reason: "run money budget $5.00 (strict): $4.90 spent + $0.30 estimated for the next call",
      cost: { usd: 4.9, partial: true, unknown_models: ["gpt-5.6-sol"] },
      budget: {
        scope: "protocol",
        kind: "over_limit",
        mode: "strict",
        limit_usd: 5,
        spent_usd: 4.9,
        call_usd: 0.3,
        partial: true,
      },
    });
    const check = (over: Partial<Parameters<typeof verifyWebhookSignature>[0]>) =>
      verifyWebhookSignature({
        secret: SECRET,
        body: req!.body,
        timestamp: req!.headers["x-tasksgodzilla-timestamp"] as string,
        signature: req!.headers["x-tasksgodzilla-signature"] as string,
        now: new Date(now.getTime() + 30_000),
        ...over,
      });
    expect(check({})).toEqual({ ok: true });
    // a changed body, another secret, a replay an hour later, a missing header: all refused
    expect(check({ body: req!.body.replace("blocked", "completed") })).toEqual({
      ok: false,
      reason: "signature does not match",
    });
    expect(check({ secret: "another" })).toMatchObject({ ok: false });
    expect(check({ now: new Date(now.getTime() + 3_600_000) })).toEqual({
      ok: false,
      reason: "timestamp outside the tolerance (a replayed or delayed request)",
    });
    // the timestamp is signed: a replay with a fresh timestamp does not match
    expect(
      check({ timestamp: String(now.getTime() / 1000 + 3000), now: new Date(now.getTime() + 3_000_000) }),
    ).toEqual({
      ok: false,
      reason: "signature does not match",
    });
    expect(check({ signature: undefined })).toEqual({
      ok: false,
      reason: "no X-TasksGodzilla-Signature header",
    });
  });
});

describe("delivery outcomes", () => {
  it("reports a 500 as retryable, with the receiver's words", async () => {
    const r = await receiver((_, res) =>
      res.writeHead(500, { "content-type": "text/plain" }).end("database down"),
    );
    const outcome = await deliverWebhook(target(r.url), notification);
    expect(outcome).toMatchObject({
      ok: false,
      retryable: true,
      status: 500,
      error: "HTTP 500: database down",
    });
  });

  it("passes on the delay a 429 asks for, and backs off without going below it", async () => {
    const r = await receiver((_, res) => res.writeHead(429, { "retry-after": "120" }).end());
    const outcome = await deliverWebhook(target(r.url), notification);
    expect(outcome).toMatchObject({ ok: false, retryable: true, status: 429, retryAfterMs: 120_000 });
    // the first retry would be ~30 s; the receiver asked for 120 s
    expect(retryDelayMs(1, outcome, () => 0.5)).toBe(120_000);
  });

  it("reports a 4xx other than 408/425/429 as not worth retrying", async () => {
    const r = await receiver((_, res) => res.writeHead(404).end("no such hook"));
    const outcome = await deliverWebhook(target(r.url), notification);
    expect(outcome).toMatchObject({ ok: false, retryable: false, status: 404 });
    expect(retryDelayMs(1, outcome)).toBeUndefined();
  });

  it("does not follow a redirect with the signed body", async () => {
    const r = await receiver((req, res) =>
      req.path === "/moved" ? res.writeHead(200).end() : res.writeHead(307, { location: "/moved" }).end(),
    );
    const outcome = await deliverWebhook(target(r.url), notification);
    expect(outcome).toMatchObject({ ok: false, retryable: false, status: 307 });
    expect(outcome.ok === false && outcome.error).toMatch(/redirected to \/moved, which is not followed/);
    expect(r.received.map((x) => x.path)).toEqual(["/"]);
  });

  it("reports a receiver that is not there as retryable", async () => {
    const r = await receiver((_, res) => res.end());
    await closers.pop()!();
    const outcome = await deliverWebhook(target(r.url), notification);
    expect(outcome).toMatchObject({ ok: false, retryable: true });
    expect(outcome.ok === false && outcome.error).toMatch(/ECONNREFUSED/);
  });

  it("gives up on a receiver that never answers at its time limit, and leaves it hanging", async () => {
    const r = await receiver(() => {
      // takes the request and never answers
    });
    const outcome = await deliverWebhook(target(r.url, { timeoutMs: 300 }), notification);
    expect(outcome).toMatchObject({ ok: false, retryable: true, error: "no answer within 0.3 s" });
    expect(r.received).toHaveLength(1);
  });

  it("does not wait for the body of a success, nor past its time limit for the body of an error", async () => {
    const ok = await receiver((_, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("accepted, and then nothing more");
    });
    expect(await deliverWebhook(target(ok.url, { timeoutMs: 300 }), notification)).toMatchObject({
      ok: true,
      status: 200,
    });
    const failing = await receiver((_, res) => {
      res.writeHead(503, { "content-type": "text/plain" });
      res.write("overloaded");
    });
    expect(await deliverWebhook(target(failing.url, { timeoutMs: 300 }), notification)).toMatchObject({
      ok: false,
      retryable: true,
      status: 503,
      error: "HTTP 503",
    });
  });

  it("retries with growing delays, then stops after the last attempt", () => {
    const failed = { ok: false as const, retryable: true, error: "HTTP 502", durationMs: 1 };
    const mid = () => 0.5;
    expect([1, 2, 3, 4, 5].map((n) => retryDelayMs(n, failed, mid))).toEqual([
      30_000, 120_000, 480_000, 1_920_000, 3_600_000,
    ]);
    expect(retryDelayMs(WEBHOOK_RETRY.maxAttempts, failed, mid)).toBeUndefined();
    // jittered within ±20 %
    expect(retryDelayMs(1, failed, () => 0)).toBe(24_000);
    expect(retryDelayMs(1, failed, () => 1)).toBe(36_000);
    expect(retryDelayMs(1, { ok: true, status: 200, durationMs: 1 })).toBeUndefined();
  });
});

describe("the Slack format", () => {
  it("posts an incoming-webhook message: a text line and blocks, markup escaped", async () => {
    const r = await receiver((_, res) => res.writeHead(200).end("ok"));
    const tricky = buildNotification(
      {
        type: "run.failed",
        project: { id: 1, name: "a<b>&c" },
        run: {
          id: 9,
          name: "0009-fix",
          status: "failed",
          url: "https://tgz.example.com/runs/9",
          prUrl: "https://github.com/o/r/pull/5",
        },
        step: { id: "test", status: "failed" },
        reason: "tests failed: expected <div> & got <span>",
        cost: { usd: 0.42, partial: false, unknownModels: [] },
      },
      { now },
    );
    const outcome = await deliverWebhook(target(r.url, { format: "slack", secret: undefined }), tricky);
    expect(outcome).toMatchObject({ ok: true });
    const [req] = r.received;
    expect(req!.headers["x-tasksgodzilla-signature"]).toBeUndefined();
    expect(JSON.parse(req!.body)).toEqual({
      text: "Run 0009-fix failed in a&lt;b&gt;&amp;c",
      blocks: [
        {
          type: "section",
          text: {
            type: "mrkdwn",
            text: [
              "*Run <https://tgz.example.com/runs/9|0009-fix> :x: failed* in a&lt;b&gt;&amp;c",
              "Step `test`: failed",
              "> tests failed: expected &lt;div&gt; &amp; got &lt;span&gt;",
              "<https://github.com/o/r/pull/5|Pull request>",
            ].join("\n"),
          },
        },
        { type: "context", elements: [{ type: "mrkdwn", text: "status failed · cost $0.42" }] },
      ],
    });
  });

  it("shows a partial cost as a lower bound", async () => {
    const r = await receiver((_, res) => res.writeHead(200).end("ok"));
    await deliverWebhook(target(r.url, { format: "slack" }), notification);
    const body = JSON.parse(r.received[0]!.body) as { blocks: { elements?: { text: string }[] }[] };
    expect(body.blocks[1]!.elements![0]!.text).toBe(
      "status blocked · cost ≥ $4.90 (no price for gpt-5.6-sol) · branch `0001-add-login`",
    );
    // a Slack hook with a secret is signed too
    expect(r.received[0]!.headers["x-tasksgodzilla-signature"]).toMatch(/^sha256=/);
  });
});

describe("a project's webhooks", () => {
  const config = NotificationsConfig.parse({
    webhooks: [
      { name: "ops", url: "https://hooks.example.com/tgz", secret_env: "TGZ_OPS_SECRET" },
      {
        url: "https://hooks.slack.com/services/T/B/X",
        format: "slack",
        events: ["run.failed", "run.blocked"],
        timeout_seconds: 3,
      },
      {
        name: "audit",
        url: "http://127.0.0.1:9000/audit",
        secret_name: "audit_webhook",
        events: ["budget.warning"],
      },
    ],
  });
  const secrets = {
    env: { TGZ_OPS_SECRET: "s-env" },
    projectSecret: (name: string) => (name === "audit_webhook" ? "s-project" : undefined),
  };

  it("are the ones that send the event, their secrets resolved from the environment or the project's secrets", () => {
    expect(webhookTargets(config, "run.completed", secrets)).toEqual([
      {
        name: "ops",
        url: "https://hooks.example.com/tgz",
        format: "json",
        secret: "s-env",
        timeoutMs: 10_000,
      },
    ]);
    expect(
      webhookTargets(config, "run.blocked", secrets).map((t) => [t.name, t.format, t.timeoutMs]),
    ).toEqual([
      ["ops", "json", 10_000],
      ["hooks.slack.com", "slack", 3_000],
    ]);
    expect(webhookTargets(config, "budget.warning", secrets).map((t) => [t.name, t.secret])).toEqual([
      ["ops", "s-env"],
      ["audit", "s-project"],
    ]);
  });

  it("name a secret that is missing", () => {
    expect(() => webhookTargets(config, "run.completed", { ...secrets, env: {} })).toThrow(
      new WebhookSecretError("webhook ops: the environment variable TGZ_OPS_SECRET (secret_env) is not set"),
    );
    expect(() =>
      webhookTargets(config, "budget.warning", { ...secrets, projectSecret: () => undefined }),
    ).toThrow(/webhook audit: the project has no secret "audit_webhook" \(secret_name\)/);
  });

  it("are read from the config file, and bad ones refused with the field that is wrong", () => {
    const repo = (yaml: string) => {
      const dir = mkdtempSync(join(tmpdir(), "tgz-notify-"));
      writeFileSync(join(dir, "tasksgodzilla.config.yaml"), yaml);
      return dir;
    };
    const ok = loadConfig(
      repo(
        "notifications:\n  webhooks:\n    - { url: https://h.example.com/x, secret_env: S, events: [run.completed] }\n",
      ),
      {},
    );
    expect(ok.notifications.webhooks).toEqual([
      { url: "https://h.example.com/x", secret_env: "S", events: ["run.completed"], format: "json" },
    ]);
    expect(loadConfig(repo("engine: codex\n"), {}).notifications).toEqual({ webhooks: [] });
    const bad = (hooks: string) => () => loadConfig(repo(`notifications:\n  webhooks:\n${hooks}`), {});
    expect(bad("    - { url: https://h.example.com/x }\n")).toThrow(
      /\/notifications\/webhooks\/0: a json webhook is signed: set secret_env/,
    );
    expect(bad("    - { url: https://h.example.com/x, secret_env: A, secret_name: b }\n")).toThrow(
      /give the signing secret once/,
    );
    expect(bad("    - { url: https://h.example.com/x, format: slack, events: [run.started] }\n")).toThrow(
      /\/notifications\/webhooks\/0\/events\/0: .*"run\.completed"/,
    );
    expect(bad("    - { url: ftp://h.example.com/x, format: slack }\n")).toThrow(
      /\/notifications\/webhooks\/0\/url/,
    );
    expect(bad("    - { url: https://h.example.com/x, format: teams }\n")).toThrow(
      /\/notifications\/webhooks\/0\/format/,
    );
    expect(
      bad(
        "    - { url: https://h.example.com/a, format: slack }\n    - { url: https://h.example.com/b, format: slack }\n",
      ),
    ).toThrow(/\/notifications\/webhooks: two webhooks have the same name/);
    expect(bad("    - { url: https://h.example.com/x, format: slack, timeout_seconds: 600 }\n")).toThrow(
      ConfigError,
    );
  });
});
