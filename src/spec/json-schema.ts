import { z } from "zod";
import { ProtocolSpec } from "./schema.js";

export const PROTOCOL_SPEC_SCHEMA_ID = "https://tasksgodzilla.dev/schemas/protocol-spec.schema.json";

/** The published JSON Schema of ProtocolSpec, generated from the zod source. */
export function protocolSpecJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(ProtocolSpec, { target: "draft-2020-12", io: "input" }) as Record<
    string,
    unknown
  >;
  return { $id: PROTOCOL_SPEC_SCHEMA_ID, title: "ProtocolSpec", ...schema };
}
