/** A local REST endpoint (127.0.0.1, a free port) that records every call and answers like GitHub or GitLab. */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedCall {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: Record<string, unknown>;
}

/** `reply` answers each call by its method and its place among the calls (0 first). */
export async function recordingApi(
  reply: (method: string, index: number) => { status: number; body: unknown },
) {
  const calls: RecordedCall[] = [];
  const server = createServer((req, res) => {
    let raw = "";
    req.on("data", (c) => (raw += c));
    req.on("end", () => {
      const method = req.method ?? "";
      calls.push({ method, url: req.url ?? "", headers: req.headers, body: raw ? JSON.parse(raw) : {} });
      const r = reply(method, calls.length - 1);
      res.writeHead(r.status, { "content-type": "application/json" }).end(JSON.stringify(r.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    calls,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
