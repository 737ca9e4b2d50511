/** The console's Server-Sent Events framing, fed the way a network delivers it: in arbitrary pieces. */
import { describe, expect, it } from "vitest";
import { SseParser } from "../../console/src/sse-parser.js";

const STREAM =
  ": connected\nretry: 1000\n\n" +
  'id: 7\ndata: {"id":7}\n\n' +
  ": ping\n\n" +
  "id: 8\r\nevent: step_started\r\ndata: first line\r\ndata: second line\r\n\r\n" +
  // CR-only lines; the last CR is known to end a line only once the next character is not LF
  "data:no space\rid: 9\r\r: ping\n";

const EXPECTED = [
  { id: "7", event: "message", data: '{"id":7}' },
  { id: "8", event: "step_started", data: "first line\nsecond line" },
  { id: "9", event: "message", data: "no space" },
];

describe("SseParser", () => {
  it("reads ids, names, multi-line data and retry, and skips comments", () => {
    const parser = new SseParser();
    expect(parser.feed(STREAM)).toEqual(EXPECTED);
    expect(parser.retryMs).toBe(1000);
  });

  it("gives the same messages whatever the chunks, a CRLF split across two included", () => {
    for (const size of [1, 2, 3, 5, 7, 13]) {
      const parser = new SseParser();
      const out = [];
      for (let i = 0; i < STREAM.length; i += size) out.push(...parser.feed(STREAM.slice(i, i + size)));
      expect(out, `chunks of ${size}`).toEqual(EXPECTED);
    }
  });

  it("keeps a message without a blank line after it until one comes", () => {
    const parser = new SseParser();
    expect(parser.feed("id: 3\ndata: x\n")).toEqual([]);
    expect(parser.feed("\n")).toEqual([{ id: "3", event: "message", data: "x" }]);
  });
});
