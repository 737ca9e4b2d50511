/**
 * Outgoing webhooks of a project: the `notifications` section of tasksgodzilla.config.*, and the same
 * shape as the API stores it. The signing secret is never written there: `secret_env` names an
 * environment variable, `secret_name` one of the project's secrets (`secrets` of POST /projects).
 */
import { z } from "zod";
import { InvalidInputError } from "../shared/errors.js";

export const NOTIFY_EVENTS = [
  "run.completed",
  "run.failed",
  "run.blocked",
  "run.awaiting_approval",
  "budget.warning",
] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

export const WEBHOOK_FORMATS = ["json", "slack"] as const;
export type WebhookFormat = (typeof WEBHOOK_FORMATS)[number];

export const DEFAULT_WEBHOOK_TIMEOUT_SECONDS = 10;

export const WebhookConfig = z
  .strictObject({
    name: z.string().min(1).optional().describe("A label for events and messages (default: the URL's host)."),
    url: z.url({ protocol: /^https?$/ }).describe("Where the notifications are POSTed."),
    format: z
      .enum(WEBHOOK_FORMATS)
      .default("json")
      .describe("json: the signed payload; slack: a Slack-compatible incoming-webhook message."),
    events: z
      .array(z.enum(NOTIFY_EVENTS))
      .min(1)
      .optional()
      .describe("The events sent (default: all of them)."),
    secret_env: z
      .string()
      .min(1)
      .optional()
      .describe("Environment variable holding the HMAC signing secret."),
    secret_name: z.string().min(1).optional().describe("Project secret holding the HMAC signing secret."),
    timeout_seconds: z
      .number()
      .positive()
      .max(60)
      .optional()
      .describe(`How long a delivery may take (default ${DEFAULT_WEBHOOK_TIMEOUT_SECONDS} s).`),
  })
  .refine((w) => !(w.secret_env && w.secret_name), {
    message: "give the signing secret once: secret_env or secret_name, not both",
  })
  .refine((w) => w.format !== "json" || w.secret_env || w.secret_name, {
    message:
      "a json webhook is signed: set secret_env (an environment variable) or secret_name (a project secret)",
  })
  .describe("One outgoing webhook.");
export type WebhookConfig = z.infer<typeof WebhookConfig>;

export const NotificationsConfig = z
  .strictObject({
    webhooks: z
      .array(WebhookConfig)
      .refine((hooks) => new Set(hooks.map(webhookName)).size === hooks.length, {
        message: "two webhooks have the same name (or URL host): give each a name of its own",
      })
      .default([]),
  })
  .describe("Notifications of a project's runs.");
export type NotificationsConfig = z.infer<typeof NotificationsConfig>;

export function webhookName(w: Pick<WebhookConfig, "name" | "url">): string {
  if (w.name) return w.name;
  try {
    return new URL(w.url).host;
  } catch {
    return w.url;
  }
}

/** A webhook ready to deliver to: its secret resolved. */
export interface WebhookTarget {
  name: string;
  url: string;
  format: WebhookFormat;
  /** Signs the request when set (always for json). */
  secret?: string | undefined;
  timeoutMs: number;
}

export class WebhookSecretError extends InvalidInputError {}

/** Where a webhook's secret is looked up. */
export interface SecretSources {
  env: NodeJS.ProcessEnv;
  /** The project's secret of that name (stored like the project's other secrets), if any. */
  projectSecret(name: string): string | undefined;
}

/** The project's webhooks that send an event, secrets resolved; throws WebhookSecretError naming a missing one. */
export function webhookTargets(
  config: NotificationsConfig,
  event: NotifyEvent,
  secrets: SecretSources,
): WebhookTarget[] {
  return config.webhooks
    .filter((w) => !w.events || w.events.includes(event))
    .map((w) => {
      const name = webhookName(w);
      let secret: string | undefined;
      if (w.secret_env) {
        secret = secrets.env[w.secret_env] || undefined;
        if (!secret)
          throw new WebhookSecretError(
            `webhook ${name}: the environment variable ${w.secret_env} (secret_env) is not set`,
          );
      } else if (w.secret_name) {
        secret = secrets.projectSecret(w.secret_name) || undefined;
        if (!secret)
          throw new WebhookSecretError(
            `webhook ${name}: the project has no secret "${w.secret_name}" (secret_name); set it with the project's secrets`,
          );
      }
      const timeoutMs = (w.timeout_seconds ?? DEFAULT_WEBHOOK_TIMEOUT_SECONDS) * 1000;
      return { name, url: w.url, format: w.format, secret, timeoutMs };
    });
}
