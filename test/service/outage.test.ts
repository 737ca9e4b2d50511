/**
 * A database restart under busy workers, with real processes: a Postgres server of the test's own
 * holds the runs, the embedded job queue and the engine slots; two `tgz worker` processes run steps
 * under an engine cap while `tgz server` serves the API. The database goes away for longer than
 * every lease (run 15 s, job 3 s, slot 10 s). While it is away the API answers 503 naming it; once
 * it is back every run completes with each step executed and recorded once, no job dead-lettered,
 * no step recovered or interrupted, nothing queued again.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { StoreQueue } from "../../src/queue/store-queue.js";
import { openStore } from "../../src/store/open-store.js";
import type { Store } from "../../src/store/types.js";
import { gitRepo } from "../scenario/harness.js";
import { type OwnPostgres, ownPostgres, ownPostgresAvailable } from "../support/own-postgres.js";
import { freePort, logLines, type Proc, tgzProcess } from "./process-harness.js";
import { shellRun, until } from "./worker-setup.js";

if (process.env.CI === "true" && !ownPostgresAvailable) throw new Error("initdb is required in CI");

const procs: Proc[] = [];
let pg: OwnPostgres | undefined;
let store: Store | undefined;
afterAll(async () => {
  for (const p of procs) await p.stop("SIGKILL");
  await store?.close().catch(() => undefined);
  await pg?.destroy();
});

const lines = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").trim().split("\n") : []);

describe.skipIf(!ownPostgresAvailable)("a Postgres restart under busy workers", () => {
  it("gives 503s while it lasts, then every run completes with each step run once and no job dead", {
    timeout: 180_000,
  }, async () => {
    pg = await ownPostgres(await freePort());
    await pg.start();
    const schema = `outage_${process.pid}`;
    store = await openStore({ url: pg.url, pgSchema: schema });
    const queue = new StoreQueue(store);
    const repo = gitRepo();
    const log = join(repo, "steps.log");
    const step = (label: string) => ({
      id: label,
      command: `echo "start ${label}" >> ${log}; sleep 3; echo "end ${label}" >> ${log}`,
    });
    const runs = [];
    for (const name of ["r1", "r2", "r3"]) {
      const run = await shellRun(
        store,
        repo,
        [step(`${name}-a`), step(`${name}-b`)],
        `000${name[1]}-${name}`,
      );
      await store.transitionProtocol(run.id, "running", {
        eventType: "resumed",
        message: "queued by the test",
      });
      await queue.enqueue("execute_protocol", { protocol_run_id: run.id }, { singletonKey: `run:${run.id}` });
      runs.push(run);
    }
    const env = {
      TASKSGODZILLA_DB_URL: `${pg.url}?options=${encodeURIComponent(`-c search_path=${schema}`)}`,
      TASKSGODZILLA_REDIS_URL: "",
      TASKSGODZILLA_API_TOKEN: "",
      TASKSGODZILLA_ENGINE_CONCURRENCY: "shell=2",
      TASKSGODZILLA_RECONCILE_SECONDS: "2",
    };
    const server = tgzProcess(["server", "--port", "0", "--no-worker"], env);
    procs.push(server);
    const base = (await server.waitFor(/API on (http:\/\/\S+)/))[1]!;
    const workers = ["a", "b"].map(() => {
      const w = tgzProcess(["worker", "--lease-seconds", "3"], env);
      procs.push(w);
      return w;
    });
    await Promise.all(workers.map((w) => w.waitFor(/worker started/)));
    await until(
      () => lines(log).filter((l) => l.startsWith("start")).length >= 2,
      30_000,
      "two steps started",
    );
    await sleep(500);

    await pg.stop();
    const down = await fetch(`${base}/projects`);
    const body = (await down.json()) as { error: string; detail: string };
    expect([down.status, body.error]).toEqual([503, "database_unavailable"]);
    expect(body.detail).toContain(`127.0.0.1:${pg.port}`);
    // longer than the run lease (15 s), the jobs' leases (3 s) and the engine slots' (10 s)
    await sleep(17_000);
    await pg.start();

    const tails = () => workers.map((w) => w.output.slice(-15).join("\n")).join("\n---\n");
    for (const run of runs)
      await until(
        async () => (await store!.getProtocolRun(run.id)).status === "completed",
        90_000,
        async () => `run ${run.id} completed\n${tails()}`,
      );
    // each step executed once, and recorded once
    const written = lines(log);
    for (const name of ["r1", "r2", "r3"])
      for (const s of ["a", "b"]) {
        expect(
          written.filter((l) => l === `start ${name}-${s}`),
          `${name}-${s}`,
        ).toHaveLength(1);
        expect(
          written.filter((l) => l === `end ${name}-${s}`),
          `${name}-${s}`,
        ).toHaveLength(1);
      }
    for (const run of runs) {
      const events = await store.listEvents({ protocolRunId: run.id });
      const of = (type: string) => events.filter((e) => e.eventType === type);
      expect(of("step_started"), `run ${run.id}`).toHaveLength(2);
      expect(of("step_completed"), `run ${run.id}`).toHaveLength(2);
      for (const type of [
        "step_recovered",
        "step_interrupted",
        "protocol_recovered",
        "job_failed",
        "run_requeued",
      ])
        expect(of(type), `run ${run.id} ${type}`).toEqual([]);
    }
    // no job dead or handed back by a lost lease; the outage was seen, waited for and reported
    expect(await queue.list({ states: ["dead"] })).toEqual([]);
    const said = (msg: string) => workers.flatMap((w) => logLines(w, msg));
    expect(said("job failed; dead-lettered")).toEqual([]);
    expect(said("lease lost; aborting the job")).toEqual([]);
    expect(said("cannot heartbeat and the lease is lapsing; aborting the job")).toEqual([]);
    expect(said("database unreachable; jobs wait for it").length).toBeGreaterThan(0);
    expect(said("heartbeat failed; retrying while the queue is away").length).toBeGreaterThan(0);
    expect((await fetch(`${base}/projects`)).status).toBe(200);
  });
});
