/** What a planning agent answers with: the plan, the context it learned, and numbered steps. */
import { z } from "zod";
import { QA_POLICIES } from "../spec/schema.js";

export const PlannedStep = z.object({
  slug: z.string().min(1).describe("Short name of the step; becomes part of its file name."),
  title: z.string().min(1),
  kind: z.enum(["setup", "work"]).describe("setup steps (scaffolding, repo scans) get QA skip."),
  prompt: z.string().min(1).describe("Markdown instructions for the agent that executes the step."),
  engine: z
    .string()
    .optional()
    .describe("Engine id for this step, when the planner wants another than the default."),
  model: z.string().optional(),
  qa: z.enum(QA_POLICIES).optional(),
});

export const PlanOutput = z.object({
  title: z.string().min(1),
  summary: z.string().min(1).describe("The plan in a few paragraphs of markdown."),
  context: z.string().describe("What the planner learned about the repository that the steps need."),
  steps: z.array(PlannedStep).min(1),
});
export type PlanOutput = z.infer<typeof PlanOutput>;
export type PlannedStep = z.infer<typeof PlannedStep>;

/** Published as schemas/protocol-planning.schema.json and sent as the engine's output schema. */
export function planningJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(PlanOutput, { target: "draft-2020-12", io: "input" }) as Record<string, unknown>;
}
