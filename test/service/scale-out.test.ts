/**
 * Scale-out with real processes on Postgres + Redis: a server and two workers (two jobs each) run
 * three protocols at once under an engine cap of 1 (checked from the steps' own timestamps) across a
 * server restart; a worker killed with SIGKILL mid-step loses its jobs to another after the lease,
 * its engines are killed by the runner that takes over, and each step is run again or failed by its
 * declared crash policy.
 */
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deleteRedisKeys } from "../queue/redis-keys.js";
import { gitRepo } from "../scenario/harness.js";
import { postgresReachable } from "../store/store-backends.js";
import { groupMembers } from "../support/processes.js";
import { logLines, type Proc, pgSchema, tgzProcess } from "./process-harness.js";

const pgUp = await postgresReachable();
const REDIS_URL = process.env.TASKSGODZILLA_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
if (process.env.CI === "true" && !pgUp) throw new Error("Postgres is required in CI");

describe.skipIf(!pgUp)("server and workers on Postgres + Redis", () => {
  const procs: Proc[] = [];
  const prefix = `tgz-scale-${randomUUID()}`;
  let schema: Awaited<ReturnType<typeof pgSchema>>;
  let env: NodeJS.ProcessEnv;
  let base = "";
  const TOKEN = "scale-token";

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { "content-type": "application/json" } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return (await res.json()) as any;
  };
  const start = (args: string[], extra: NodeJS.ProcessEnv = {}) => {
    const p = tgzProcess(args, { ...env, ...extra });
    procs.push(p);
    return p;
  };
  const startServer = async () => {
    const server = start(["server", "--port", "0"]);
    base = (await server.waitFor(/API on (http:\/\/\S+)/))[1]!;
    return server;
  };
  const startWorker = async (leaseSeconds: number, concurrency = 1) => {
    const w = start([
      "worker",
      "--lease-seconds",
      String(leaseSeconds),
      "--concurrency",
      String(concurrency),
    ]);
    await w.waitFor(/worker started/);
    return w;
  };
  const waitStatus = async (runId: number, status: string, ms = 60_000) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if ((await api("GET", `/protocols/${runId}`)).status === status) return;
      await sleep(200);
    }
    const tails = procs.map((p) => p.output.slice(-8).join("\n")).join("\n---\n");
    throw new Error(
      `run ${runId} never became ${status}: ${(await api("GET", `/protocols/${runId}`)).status}\n${tails}`,
    );
  };
  const events = async (runId: number) =>
    (await api("GET", `/protocols/${runId}/events?after=0&limit=1000`)) as {
      event_type: string;
      step_run_id: number | null;
      metadata: Record<string, unknown>;
    }[];
  const shellStep = (id: string, command: string, extra: Record<string, unknown> = {}) => ({
    id,
    engine_id: "shell",
    qa: { policy: "skip" },
    inputs: { command },
    ...extra,
  });

  beforeAll(async () => {
    schema = await pgSchema(`scale_${process.pid}_${Date.now()}`);
    env = {
      TASKSGODZILLA_DB_URL: schema.url,
      TASKSGODZILLA_REDIS_URL: REDIS_URL,
      TASKSGODZILLA_QUEUE_PREFIX: prefix,
      TASKSGODZILLA_API_TOKEN: TOKEN,
      TASKSGODZILLA_ENGINE_CONCURRENCY: "shell=1",
    };
  });
  afterAll(async () => {
    for (const p of procs) await p.stop("SIGKILL");
    await schema?.drop();
    await deleteRedisKeys(REDIS_URL, prefix);
  });

  it("runs three protocols at once on two workers with never two shell calls at once, across a server restart", {
    timeout: 120_000,
  }, async () => {
    let server = await startServer();
    // four job slots for three runs: all three are in flight together, held to one shell call by the cap
    const workers = [await startWorker(5, 2), await startWorker(5, 2)];
    const repo = gitRepo();
    const timeline = join(repo, "calls.log");
    const project = await api("POST", "/projects", { name: "scale", git_url: repo, local_path: repo });
    // each call records its own start and end (ns) and the worker it ran in ($PPID)
    const step = (label: string) =>
      shellStep(
        label.split("/")[1]!,
        `echo "start ${label} $(date +%s%N) $PPID" >> ${timeline}; sleep 0.4; echo "end ${label} $(date +%s%N)" >> ${timeline}`,
      );
    const runs = [];
    for (let i = 0; i < 3; i++)
      runs.push(
        await api("POST", `/projects/${project.id}/protocols`, {
          protocol_name: `p${i}`,
          spec: { steps: [step(`p${i}/a`), step(`p${i}/b`)] },
        }),
      );
    for (const r of runs) await api("POST", `/protocols/${r.id}/actions/start`);
    // the server goes away and comes back while the workers keep going
    await server.stop();
    server = await startServer();
    for (const r of runs) await waitStatus(r.id, "completed");

    const calls = new Map<string, { start: bigint; end?: bigint; worker: number }>();
    for (const line of readFileSync(timeline, "utf8").trim().split("\n")) {
      const [what, label, ns, ppid] = line.split(" ");
      if (what === "start") {
        expect(calls.has(label!)).toBe(false); // every step ran once
        calls.set(label!, { start: BigInt(ns!), worker: Number(ppid) });
      } else calls.get(label!)!.end = BigInt(ns!);
    }
    expect([...calls.keys()].sort()).toEqual(["p0/a", "p0/b", "p1/a", "p1/b", "p2/a", "p2/b"]);
    const spans = [...calls.values()].sort((x, y) => (x.start < y.start ? -1 : 1));
    for (let i = 1; i < spans.length; i++) expect(spans[i]!.start).toBeGreaterThanOrEqual(spans[i - 1]!.end!);
    // both workers ran steps
    const workerPids = workers.map((w) => w.child.pid);
    expect(new Set(spans.map((s) => s.worker))).toEqual(new Set(workerPids));
    for (const w of workers) expect(logLines(w, "job completed").length).toBeGreaterThanOrEqual(1);
    // the three runs were in flight at once: three of their jobs active together, from the workers' logs
    const edges = workers.flatMap((w) => [
      ...logLines(w, "job started")
        .filter((l) => l.kind === "execute_protocol")
        .map((l) => ({ at: Number(l.time), by: 1 })),
      ...["job completed", "job handed back", "run busy; job handed back"].flatMap((msg) =>
        logLines(w, msg)
          .filter((l) => l.kind === "execute_protocol")
          .map((l) => ({ at: Number(l.time), by: -1 })),
      ),
    ]);
    let active = 0;
    let most = 0;
    for (const e of edges.sort((a, b) => a.at - b.at || a.by - b.by)) {
      active += e.by;
      most = Math.max(most, active);
    }
    expect(most).toBe(3);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/tasksgodzilla_step_duration_seconds_count 6/);
    for (const w of workers) await w.stop();
  });

  it("hands the steps of a worker killed with SIGKILL to another, run again or failed by their crash policy", {
    timeout: 120_000,
  }, async () => {
    if (!base) await startServer();
    // no cap here: both steps are mid-call when the worker dies
    const uncapped = { TASKSGODZILLA_ENGINE_CONCURRENCY: "" };
    const victim = start(["worker", "--lease-seconds", "3", "--concurrency", "2"], uncapped);
    await victim.waitFor(/worker started/);
    const repo = gitRepo();
    const out = join(repo, "out.txt");
    const project = await api("POST", "/projects", { name: "crash", git_url: repo, local_path: repo });
    // the first attempt hangs (recording its process group, to clean up); a later one is quick
    const attempt = (label: string) =>
      `n=$(($(cat ${label}.attempts 2>/dev/null || echo 0) + 1)); echo $n > ${label}.attempts; ` +
      `echo "start ${label} $n $PPID $$" >> ${out}; if [ $n = 1 ]; then sleep 60; else sleep 0.3; fi; echo "end ${label} $n" >> ${out}`;
    const rerun = await api("POST", `/projects/${project.id}/protocols`, {
      protocol_name: "rerun",
      spec: {
        steps: [shellStep("slow", attempt("rerun")), shellStep("after", `echo "after rerun" >> ${out}`)],
      },
    });
    const strict = await api("POST", `/projects/${project.id}/protocols`, {
      protocol_name: "no-crash-retry",
      spec: { steps: [shellStep("slow", attempt("strict"), { retry: { crashes: 0 } })] },
    });
    for (const r of [rerun, strict]) await api("POST", `/protocols/${r.id}/actions/start`);
    const lines = () => (existsSync(out) ? readFileSync(out, "utf8").trim().split("\n") : []);
    const end = Date.now() + 20_000;
    while (lines().length < 2 && Date.now() < end) await sleep(100);
    expect(
      lines()
        .map((l) => l.split(" ").slice(0, 3).join(" "))
        .sort(),
    ).toEqual(["start rerun 1", "start strict 1"]);
    await victim.stop("SIGKILL");
    const orphans = lines().map((l) => Number(l.split(" ")[4]));
    expect(orphans.every((pgid) => groupMembers(pgid).length > 0)).toBe(true);
    const rescuer = start(["worker", "--lease-seconds", "3"], uncapped);
    await waitStatus(rerun.id, "completed", 90_000);
    await waitStatus(strict.id, "blocked", 90_000);
    // the runner that took over killed what the dead worker's engines left running
    expect(orphans.map((pgid) => groupMembers(pgid).length)).toEqual([0, 0]);
    const written = lines().map((l) => l.split(" "));
    // exactly the executions expected: the killed ones, one re-run of the step that allows it, then the next step
    expect(written.map((w) => w.slice(0, 3).join(" ")).sort()).toEqual(
      ["start rerun 1", "start strict 1", "start rerun 2", "end rerun 2", "after rerun"].sort(),
    );
    const ranIn = (label: string, n: string) => Number(written.find((w) => w[1] === label && w[2] === n)![3]);
    expect(ranIn("rerun", "1")).toBe(victim.child.pid);
    expect(ranIn("strict", "1")).toBe(victim.child.pid);
    expect(ranIn("rerun", "2")).toBe(rescuer.child.pid);

    const rerunEvents = await events(rerun.id);
    const rerunTypes = rerunEvents.map((e) => e.event_type);
    expect(
      rerunEvents.filter((e) => e.event_type === "step_recovered").map((e) => e.metadata.orphan_killed),
    ).toEqual([true]);
    expect(rerunTypes.filter((t) => t === "step_started")).toHaveLength(3);
    expect(rerunTypes.filter((t) => t === "step_completed")).toHaveLength(2);
    expect(rerunTypes.filter((t) => t === "protocol_completed")).toHaveLength(1);
    const strictEvents = await events(strict.id);
    const strictTypes = strictEvents.map((e) => e.event_type);
    expect(strictTypes.filter((t) => t === "step_started")).toHaveLength(1);
    expect(strictEvents.find((e) => e.event_type === "step_failed")?.metadata).toMatchObject({
      reason: "crashed",
      orphan_killed: true,
    });
    expect(strictEvents.find((e) => e.event_type === "protocol_blocked")?.metadata.reason).toBe("crashed");
  });
});
