/** Server-Sent Events framing, free of browser APIs so it is tested under Node as well. */

export interface SseMessage {
  id: string | undefined;
  event: string;
  data: string;
}

/** Fed text as it arrives; returns the messages it completed (WHATWG rules: CR, LF or CRLF lines). */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  /** The last `id:` seen; like EventSource, it carries over to later messages without one. */
  private id: string | undefined;
  retryMs: number | undefined;

  feed(chunk: string): SseMessage[] {
    let text = this.buffer + chunk;
    // a closing \r may be the first half of \r\n: keep it until the next chunk says
    const held = text.endsWith("\r") ? "\r" : "";
    if (held) text = text.slice(0, -1);
    const lines = text.split(/\r\n|\n|\r/);
    this.buffer = (lines.pop() ?? "") + held;
    const out: SseMessage[] = [];
    for (const line of lines) {
      const message = this.line(line);
      if (message) out.push(message);
    }
    return out;
  }

  private line(line: string): SseMessage | undefined {
    if (line === "") {
      const message = this.data.length
        ? { id: this.id, event: this.event || "message", data: this.data.join("\n") }
        : undefined;
      this.data = [];
      this.event = "";
      return message;
    }
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    const raw = colon === -1 ? "" : line.slice(colon + 1);
    const value = raw.startsWith(" ") ? raw.slice(1) : raw;
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
    return undefined;
  }
}
