/** Runs one engine call to its end, collecting the events it yielded. */
import type { Engine, EngineEvent, EngineRequest, EngineResult } from "../../src/engines/engine-port.js";

export async function driveEngine(
  engine: Engine,
  request: Partial<EngineRequest> & Pick<EngineRequest, "cwd">,
  signal: AbortSignal = new AbortController().signal,
): Promise<{ result: EngineResult; events: EngineEvent[] }> {
  const events: EngineEvent[] = [];
  const full: EngineRequest = {
    role: "exec",
    prompt: "p",
    inputs: {},
    env: {},
    timeoutMs: 10_000,
    maxOutputBytes: 1 << 20,
    ...request,
  };
  const stream = engine.run(full, signal);
  for (;;) {
    const next = await stream.next();
    if (next.done) return { result: next.value, events };
    events.push(next.value);
  }
}
