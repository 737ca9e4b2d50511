/**
 * Orchestrator overhead per step: a protocol of 200 `replay` steps with QA light on SQLite.
 * Overhead = wall time of a step (from the previous step's end to its own end) minus the engine's
 * own duration. Prints median and p95, and events written per second. Target: under 5 ms per step.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../src/config/load-config.js";
import { createDefaultRegistry } from "../src/engines/builtin-engines.js";
import { ProtocolRunner } from "../src/runner/protocol-runner.js";
import { estimateTokens } from "../src/runner/token-estimate.js";
import { createRunFromSpec } from "../src/services/create-run.js";
import { openStore } from "../src/store/open-store.js";

const STEPS = Number(process.env.BENCH_STEPS ?? 200);

const base = mkdtempSync(join(tmpdir(), "tgz-bench-"));
const repo = join(base, "repo");
const specDir = join(base, "spec");
for (const d of [repo, specDir]) mkdirSync(d, { recursive: true });
writeFileSync(join(specDir, "p.md"), "Do step {{step_id}}.");
const spec = {
  steps: Array.from({ length: STEPS }, (_, i) => ({
    id: `s${String(i).padStart(3, "0")}`,
    engine_id: "replay",
    prompt_ref: "p.md",
    inputs: { final: `done ${i}` },
    qa: { policy: "light" },
  })),
};
writeFileSync(join(specDir, "protocol.json"), JSON.stringify(spec));

// the tokenizer loads once per process, at the first prompt: reported apart, not as per-step overhead
const tokenizerStart = performance.now();
estimateTokens("warm up the tokenizer so its one-off load is not counted as per-step overhead");
const tokenizerMs = performance.now() - tokenizerStart;
const store = await openStore({ sqlitePath: join(base, "bench.db") });
const { run } = await createRunFromSpec(store, { repoDir: repo, specPath: join(specDir, "protocol.json") });
const runner = new ProtocolRunner({
  store,
  registry: createDefaultRegistry(),
  configFor: (d) => loadConfig(d, {}),
});
const t0 = performance.now();
const done = await runner.run(run.id);
const wall = performance.now() - t0;
if (done.status !== "completed") throw new Error(`bench protocol ended ${done.status}`);

const events = await store.listEvents({ protocolRunId: run.id, limit: 1_000_000 });
const ends = events.filter((e) => e.eventType === "qa_verdict").map((e) => Date.parse(e.createdAt));
const engineMs = events
  .filter((e) => e.eventType === "step_completed")
  .map((e) => Number(e.metadata.duration_ms));
const startedAt = Date.parse(events.find((e) => e.eventType === "step_started")!.createdAt);
const overhead = ends
  .map((end, i) => end - (i === 0 ? startedAt : ends[i - 1]!) - engineMs[i]!)
  .sort((a, b) => a - b);
const pct = (p: number) => overhead[Math.min(overhead.length - 1, Math.floor((p / 100) * overhead.length))]!;
const runEvents = events.length;

console.log(`steps:                 ${STEPS}`);
console.log(
  `wall time:             ${wall.toFixed(0)} ms (${(wall / STEPS).toFixed(2)} ms/step incl. engine)`,
);
console.log(`engine time (sum):     ${engineMs.reduce((a, b) => a + b, 0)} ms`);
const totalEngine = engineMs.reduce((a, b) => a + b, 0);
console.log(
  `overhead/step mean:    ${((wall - totalEngine) / STEPS).toFixed(2)} ms (wall minus engine time)`,
);
console.log(`overhead/step median:  ${pct(50).toFixed(2)} ms (event timestamps, 1 ms resolution)`);
console.log(`overhead/step p95:     ${pct(95).toFixed(2)} ms`);
console.log(`events written:        ${runEvents} (${((runEvents / wall) * 1000).toFixed(0)} events/s)`);
console.log(`tokenizer load:        ${tokenizerMs.toFixed(0)} ms (once per process, at its first prompt)`);
await store.close();
