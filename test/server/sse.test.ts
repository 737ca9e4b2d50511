/**
 * The live event stream over real HTTP: every event exactly once and in order across a reconnect
 * with Last-Event-ID — on SQLite, and on Postgres with several writers committing at once while
 * one transaction stays open. Messages reach `onmessage` (unnamed) or named listeners (?named=true).
 */
import { randomUUID } from "node:crypto";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Store } from "../../src/store/types.js";
import { dropTestSchemas, PG_URL, postgresReachable } from "../store/store-backends.js";
import { type Api, startApi, TOKEN, until } from "./api-harness.js";

interface Frame {
  id: number;
  event: string | undefined;
  data: { id: number; event_type: string };
}

/** An SSE client: the frames it got, and a way to hang up (as a dropped connection would). */
async function subscribe(url: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const res = await fetch(url, {
    headers: { authorization: `Bearer ${TOKEN}`, ...headers },
    signal: controller.signal,
  });
  expect(res.headers.get("content-type")).toBe("text/event-stream");
  const frames: Frame[] = [];
  const reading = (async () => {
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        let end = buffer.indexOf("\n\n");
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          end = buffer.indexOf("\n\n");
          const fields = new Map<string, string>();
          for (const line of block.split("\n"))
            if (!line.startsWith(":"))
              fields.set(line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 2));
          if (!fields.has("data")) continue;
          frames.push({
            id: Number(fields.get("id")),
            event: fields.get("event"),
            data: JSON.parse(fields.get("data")!),
          });
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    frames,
    /** Resolves when the server ends the stream (or the client hangs up). */
    ended: reading,
    async close() {
      controller.abort();
      await reading;
    },
  };
}

/** A client that asks for a stream and then never reads from its socket. */
async function stalledClient(base: string, path: string): Promise<Socket> {
  const { hostname, port } = new URL(base);
  const socket = connect(Number(port), hostname);
  await new Promise((resolve) => socket.once("connect", resolve));
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`);
  socket.pause();
  return socket;
}

const ids = (frames: Frame[]) => frames.map((f) => f.id);
const allIds = async (store: Store, runId: number) =>
  (await store.listEvents({ protocolRunId: runId, limit: 10_000 })).map((e) => e.id);

/** Reads the stream, hangs up halfway, writes more, reconnects with Last-Event-ID: exactly once, in order. */
async function resumeExactlyOnce(api: Api, write: (runId: number, round: number) => Promise<void>) {
  const { run } = await api.newRun();
  const url = `${api.base}/protocols/${run.id}/events/stream`;
  const first = await subscribe(url);
  await write(run.id, 0);
  const halfway = (await allIds(api.store, run.id)).length;
  await until(async () => first.frames.length >= halfway);
  await first.close();
  const seen = ids(first.frames);
  await write(run.id, 1);
  const second = await subscribe(url, { "last-event-id": String(seen.at(-1)) });
  await write(run.id, 2);
  const total = (await allIds(api.store, run.id)).length;
  await until(async () => seen.length + second.frames.length >= total, 15_000);
  await new Promise((r) => setTimeout(r, 600)); // a duplicate would arrive within a poll or two
  await second.close();
  const received = [...seen, ...ids(second.frames)];
  const expected = await allIds(api.store, run.id);
  expect(new Set(received).size, "no event twice").toBe(received.length);
  expect(received, "every event once, in ledger order").toEqual(expected);
  expect(first.frames.every((f) => f.data.id === f.id && f.event === undefined)).toBe(true);
}

describe("SSE on SQLite", () => {
  let api: Api;
  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(async () => {
    await api.close();
  });

  it("delivers every event exactly once across a reconnect with Last-Event-ID", async () => {
    await resumeExactlyOnce(api, async (runId, round) => {
      for (let i = 0; i < 5; i++)
        await api.store.appendEvent({
          protocolRunId: runId,
          eventType: "directive",
          message: `r${round}-${i}`,
        });
    });
  });

  it("sends unnamed messages (onmessage) by default, named ones with ?named=true, and filters by type", async () => {
    const { run } = await api.newRun();
    const plain = await subscribe(`${api.base}/protocols/${run.id}/events/stream`);
    const named = await subscribe(`${api.base}/protocols/${run.id}/events/stream?named=true`);
    const typed = await subscribe(
      `${api.base}/events/stream?event_type=planned&project_id=${run.project_id}`,
    );
    const total = (await allIds(api.store, run.id)).length;
    await until(
      async () => plain.frames.length >= total && named.frames.length >= total && typed.frames.length >= 1,
    );
    for (const s of [plain, named, typed]) await s.close();
    expect(plain.frames.map((f) => [f.event, f.data.event_type])).toEqual([
      [undefined, "protocol_created"],
      [undefined, "planned"],
    ]);
    expect(named.frames.map((f) => f.event)).toEqual(["protocol_created", "planned"]);
    expect(typed.frames.map((f) => f.data.event_type)).toEqual(["planned"]);
  });
});

describe("SSE streams and their clients", () => {
  it("answers 400 to a Last-Event-ID that is no event id, rather than replaying the whole ledger", async () => {
    const api = await startApi();
    try {
      const { run } = await api.newRun();
      for (const bad of ["abc", "-1", "1.5", "12abc"]) {
        const res = await fetch(`${api.base}/protocols/${run.id}/events/stream`, {
          headers: { authorization: `Bearer ${TOKEN}`, "last-event-id": bad },
        });
        expect(res.status, bad).toBe(400);
        expect(await res.json(), bad).toMatchObject({
          detail: `Last-Event-ID: ${JSON.stringify(bad)} is not an event id`,
        });
      }
      const fromStart = await subscribe(`${api.base}/protocols/${run.id}/events/stream`, {
        "last-event-id": "0",
      });
      await until(async () => fromStart.frames.length === 2);
      await fromStart.close();
    } finally {
      await api.close();
    }
  });

  it("lets the server close at once with streams open, a reading client's and a stalled one's", async () => {
    const api = await startApi();
    const { run } = await api.newRun();
    const reading = await subscribe(`${api.base}/events/stream`);
    const stalled = await stalledClient(api.base, `/protocols/${run.id}/events/stream`);
    await until(async () => reading.frames.length >= 2);
    const closing = Date.now();
    await api.app.close();
    expect(Date.now() - closing).toBeLessThan(2000);
    // the reading client saw its stream end (and would reconnect with Last-Event-ID)
    await reading.ended;
    stalled.destroy();
    await api.store.close();
  });

  it("waits for a client that does not read instead of buffering the ledger for it, and closes on it", {
    timeout: 60_000,
  }, async () => {
    const api = await startApi();
    try {
      const { run } = await api.newRun();
      // ~20 MB of events, far more than the sockets' buffers hold
      const padding = "x".repeat(2000);
      await api.store.transaction(async (tx) => {
        for (let i = 0; i < 10_000; i++)
          await tx.appendEvent({
            protocolRunId: run.id,
            eventType: "directive",
            message: `${i}`,
            metadata: { padding },
          });
      });
      const sockets: Socket[] = [];
      api.app.server.on("connection", (s: Socket) => sockets.push(s));
      const stalled = await stalledClient(api.base, `/protocols/${run.id}/events/stream`);
      await new Promise((r) => setTimeout(r, 2000));
      const buffered = Math.max(...sockets.map((s) => s.writableLength));
      expect(buffered).toBeLessThan(1024 * 1024);
      // nor does it hold a closing server open for what it has not read
      const closing = Date.now();
      await api.app.close();
      expect(Date.now() - closing).toBeLessThan(2000);
      stalled.destroy();
    } finally {
      await api.close();
    }
  });
});

describe.skipIf(!(await postgresReachable()))("SSE on Postgres with concurrent writers", () => {
  let api: Api;
  beforeAll(async () => {
    api = await startApi({}, { url: PG_URL, pgSchema: `t_${process.pid}_${Date.now()}_sse` });
  });
  afterAll(async () => {
    await api.close();
    await dropTestSchemas();
  });

  it("loses nothing when events commit out of id order: one transaction held open while others commit", async () => {
    await resumeExactlyOnce(api, async (runId, round) => {
      let release!: () => void;
      const held = new Promise<void>((r) => {
        release = r;
      });
      // takes its id first and commits last
      const slow = api.store.transaction(async (tx) => {
        await tx.appendEvent({ protocolRunId: runId, eventType: "directive", message: `r${round}-slow` });
        await held;
      });
      await new Promise((r) => setTimeout(r, 50));
      // others write meanwhile (in transactions and alone); whether they commit first or wait for the
      // slow one is the store's business, the stream must deliver every event once either way
      const others = Promise.all([
        ...Array.from({ length: 4 }, (_, w) =>
          api.store.transaction(async (tx) => {
            for (let i = 0; i < 3; i++)
              await tx.appendEvent({
                protocolRunId: runId,
                eventType: "directive",
                message: `r${round}-w${w}-${i}`,
              });
          }),
        ),
        ...Array.from({ length: 3 }, (_, i) =>
          api.store.appendEvent({
            protocolRunId: runId,
            eventType: "directive",
            message: `r${round}-alone-${randomUUID()}-${i}`,
          }),
        ),
      ]);
      // the stream polls while the slow transaction is still open
      await new Promise((r) => setTimeout(r, 700));
      release();
      await Promise.all([slow, others]);
    });
  });
});
