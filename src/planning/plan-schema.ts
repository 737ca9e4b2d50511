/**
 * What a planning agent answers with: the plan, the context it learned, and numbered steps. Two
 * halves: the JSON Schema engines get (written for OpenAI's strict structured output: every object
 * closed, every property required, optional ones nullable, no value constraints) and the validator
 * that checks what the schema cannot say (non-empty text, engines that exist).
 */
import { z } from "zod";
import { QA_POLICIES } from "../spec/schema.js";

const KINDS = ["setup", "work"] as const;

const nullableText = (description: string) => ({ type: ["string", "null"], description });

const PLANNED_STEP_JSON = {
  type: "object",
  additionalProperties: false,
  required: ["slug", "title", "kind", "prompt", "engine", "model", "qa"],
  properties: {
    slug: {
      type: "string",
      description: "Short kebab-case name of the step; becomes part of its file name.",
    },
    title: { type: "string" },
    kind: {
      type: "string",
      enum: [...KINDS],
      description: "setup: scaffolding or a repository scan (QA skip); work: everything else.",
    },
    prompt: { type: "string", description: "Markdown instructions for the agent that executes the step." },
    engine: nullableText("Engine id for this step; null for the project's default engine."),
    model: nullableText("Model for this step; null for the project's default model."),
    qa: {
      anyOf: [{ type: "string", enum: [...QA_POLICIES] }, { type: "null" }],
      description: "QA policy for this step; null for the project's default.",
    },
  },
};

const PLAN_JSON = {
  type: "object",
  additionalProperties: false,
  required: ["title", "summary", "context", "steps"],
  properties: {
    title: { type: "string" },
    summary: { type: "string", description: "The plan in a few paragraphs of markdown." },
    context: {
      type: "string",
      description: "What the planner learned about the repository that the steps need.",
    },
    steps: { type: "array", items: PLANNED_STEP_JSON },
  },
};

/** Published as schemas/protocol-planning.schema.json and sent as the engine's output schema. */
export function planningJsonSchema(): Record<string, unknown> {
  return structuredClone(PLAN_JSON);
}

const text = z.string().trim().min(1);
/** Absent or null: the project's default. */
const optional = <T extends z.ZodType>(schema: T) =>
  schema
    .nullish()
    .transform((v) => v ?? undefined)
    .optional();

export const PlannedStep = z.object({
  slug: text,
  title: text,
  kind: z.enum(KINDS),
  prompt: text,
  engine: optional(text),
  model: optional(text),
  qa: optional(z.enum(QA_POLICIES)),
});

export const PlanOutput = z.object({
  title: text,
  summary: text,
  context: z.string(),
  steps: z.array(PlannedStep).min(1),
});
export type PlanOutput = z.infer<typeof PlanOutput>;
export type PlannedStep = z.infer<typeof PlannedStep>;

/** The validator of a plan for this installation: a step's engine must be one that is registered. */
export function planValidator(knownEngines: readonly string[]) {
  return PlanOutput.superRefine((plan, ctx) => {
    plan.steps.forEach((step, i) => {
      if (step.engine !== undefined && !knownEngines.includes(step.engine)) {
        ctx.addIssue({
          code: "custom",
          path: ["steps", i, "engine"],
          message: `unknown engine "${step.engine}" (known: ${knownEngines.join(", ")}); use null for the default`,
        });
      }
    });
  });
}
