/**
 * Full QA on an engine without structured output: the agent is shown the verdict's JSON Schema in
 * its prompt, not only in a repair, and its answer is read from its prose.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runSpec, scenario } from "../scenario/harness.js";
import { AGENT_CASES, available, engineConfigEntry, skippedBecause } from "./agent-cases.js";
import { FakeModelServer, type ModelRequest } from "./fake-model-server.js";

const gemini = AGENT_CASES.find((c) => c.engineId === "gemini")!;

describe.skipIf(!available(gemini))(`full QA on Gemini CLI${skippedBecause(gemini)}`, () => {
  let server: FakeModelServer | undefined;
  afterAll(() => server?.close());

  it("shows the verdict schema in the first QA prompt and reads the verdict from prose", async () => {
    const requests: ModelRequest[] = [];
    server = await FakeModelServer.start((req) => {
      if (req.api === "gemini") requests.push(req);
      return { text: 'Checked it. {"verdict": "pass", "summary": "looks right", "findings": []}' };
    });
    const s = await scenario({ TASKSGODZILLA_DATA_DIR: mkdtempSync(join(tmpdir(), "tgz-data-")) });
    writeFileSync(
      join(s.repo, "tasksgodzilla.config.json"),
      JSON.stringify({ engines: { gemini: engineConfigEntry(gemini.settings(server.url)) } }),
    );
    const r = await runSpec(s, {
      steps: [
        {
          id: "work",
          engine_id: "shell",
          inputs: { command: "echo done > done.txt; echo done" },
          qa: { policy: "full", engine_id: "gemini", model: gemini.model },
        },
      ],
    });
    expect(r.run.status).toBe("completed");
    expect(r.of("qa_verdict")[0]!.metadata).toMatchObject({ verdict: "pass", engine_id: "gemini" });
    expect(r.of("qa_repair_retry")).toHaveLength(0);
    expect(requests).toHaveLength(1);
    expect(requests[0]!.text).toContain("follows this JSON Schema");
    expect(requests[0]!.text).toContain('\\"findings\\"');
    await s.close();
  });
});
