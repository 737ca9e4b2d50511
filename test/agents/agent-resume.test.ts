/**
 * An agent step interrupted in the middle of its work continues the same agent session when the
 * run is resumed: the session id is recorded as soon as the CLI reports it, not only when it ends.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createRunFromSpec } from "../../src/services/create-run.js";
import { inspect, runnerFor, scenario, writeFiles } from "../scenario/harness.js";
import { AGENT_CASES, available, engineConfigEntry, skippedBecause } from "./agent-cases.js";
import { FakeModelServer, type ModelRequest } from "./fake-model-server.js";

const codex = AGENT_CASES.find((c) => c.engineId === "codex")!;

describe.skipIf(!available(codex))(`an interrupted Codex step${skippedBecause(codex)}`, () => {
  let server: FakeModelServer | undefined;
  afterAll(() => server?.close());

  it("resumes the session it was interrupted in", async () => {
    const requests: ModelRequest[] = [];
    server = await FakeModelServer.start((req) => {
      if (req.api !== "responses") return { text: "?" };
      requests.push(req);
      // the first turn starts a long command; the resumed one finishes the work
      if (requests.length === 1)
        return { text: "Starting.", tool: { name: "exec_command", args: { cmd: "sleep 600" } } };
      return { text: "Finished after the interruption." };
    });
    const s = await scenario({ TASKSGODZILLA_DATA_DIR: mkdtempSync(join(tmpdir(), "tgz-data-")) });
    writeFileSync(
      join(s.repo, "tasksgodzilla.config.json"),
      JSON.stringify({ engines: { codex: engineConfigEntry(codex.settings(server.url)) } }),
    );
    writeFiles(s.specDir, {
      "task.md": "Count the files. MARKER-FIRST-TURN",
      "protocol.json": JSON.stringify({
        steps: [
          {
            id: "work",
            engine_id: "codex",
            model: codex.model,
            prompt_ref: "task.md",
            qa: { policy: "skip" },
          },
        ],
      }),
    });
    const { run } = await createRunFromSpec(s.store, {
      repoDir: s.repo,
      specPath: join(s.specDir, "protocol.json"),
    });

    const controller = new AbortController();
    const first = runnerFor(s).run(run.id, { signal: controller.signal });
    let session: string | undefined;
    for (let i = 0; i < 600 && !session; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const [step] = await s.store.listStepRuns(run.id);
      session = typeof step!.runtimeState.session_id === "string" ? step!.runtimeState.session_id : undefined;
    }
    expect(session).toBeTruthy();
    // the command the agent started is running now; stop the run under it
    while (requests.length < 1) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
    controller.abort();
    expect((await first).status).toBe("paused");
    const [interrupted] = await s.store.listStepRuns(run.id);
    expect(interrupted!.runtimeState).toMatchObject({ session_id: session, session_engine: "codex" });

    const resumed = await runnerFor(s).run(run.id, { resume: true });
    expect(resumed.status).toBe("completed");
    const seen = await inspect(s.store, run.id);
    expect(seen.of("step_completed")[0]!.metadata.session_id).toBe(session);
    // the resumed call carried the interrupted turn: the first prompt is in its history
    const last = requests.at(-1)!;
    expect(requests.length).toBeGreaterThanOrEqual(2);
    expect(last.text).toContain("MARKER-FIRST-TURN");
    expect(last.text).toContain("sleep 600");
    await s.close();
  });
});
