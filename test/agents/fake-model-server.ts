/**
 * A scripted model server on 127.0.0.1 that speaks the four wire protocols the agent CLIs use:
 * OpenAI Responses SSE (Codex), Anthropic Messages SSE and non-streaming (Claude Code), Chat
 * Completions SSE (opencode) and Gemini streamGenerateContent SSE. Each test scripts replies from the
 * request's content and asserts on the logged requests.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type Api = "responses" | "messages" | "chat" | "gemini";

export interface ModelRequest {
  api: Api;
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: Record<string, unknown>;
  /** Tool results already in the conversation: which turn of the agent loop this is. */
  toolResults: number;
  /** The whole request body as text, for matching on content. */
  text: string;
}

/**
 * A model call's tokens, each API's way: `input` is every prompt token (cache reads and writes
 * included), `cached` the cache reads, `cacheWrite` the tokens written to the cache (Messages API
 * only: the others have no field for it); `output` every output token, `reasoning` the thinking part
 * of it (not in the Messages API, which bills thinking as plain output).
 */
export interface Usage {
  input: number;
  output: number;
  cached?: number;
  cacheWrite?: number;
  reasoning?: number;
}

export type Reply =
  | { text: string; usage?: Usage }
  | { tool: { name: string; args: Record<string, unknown> }; text?: string; usage?: Usage }
  /** An HTTP error; `headers` e.g. `{"retry-after": "3"}`. */
  | { status: number; message: string; headers?: Record<string, string> }
  /** Responses API only: a 200 stream that ends in `response.failed` with this error code. */
  | { failed: { code: string; message: string } }
  | { breakStream: true }
  /** A 200 stream that ends cleanly before its completion event (Claude then asks again without streaming). */
  | { truncateStream: true }
  /** A 200 stream that starts, then sends nothing more and stays open: a provider hung mid-answer. */
  | { hangStream: true };

type Answer = Extract<Reply, { text: string } | { tool: unknown }>;

/** A request that is not a model call (Claude's `HEAD /` connectivity check, probes). */
export interface Probe {
  method: string;
  path: string;
}

export type Script = (req: ModelRequest) => Reply;

export interface FakeServerOptions {
  /**
   * The model a reply says answered, from the one the request asked for: a real provider answers an
   * alias with the dated snapshot it resolved (`claude-opus-4-1` → `claude-opus-4-1-20250805`) and may
   * route a request to another model altogether. Unset: the model asked for.
   */
  answeredBy?: (asked: string) => string;
}

const DEFAULT_USAGE: Usage = { input: 111, output: 22, cached: 33 };

function countToolResults(api: Api, body: Record<string, unknown>): number {
  const arr = (v: unknown) => (Array.isArray(v) ? (v as Record<string, unknown>[]) : []);
  switch (api) {
    case "responses":
      return arr(body.input).filter(
        (i) => i.type === "function_call_output" || i.type === "custom_tool_call_output",
      ).length;
    case "messages":
      return arr(body.messages)
        .flatMap((m) => arr(m.content))
        .filter((c) => c.type === "tool_result").length;
    case "chat":
      return arr(body.messages).filter((m) => m.role === "tool").length;
    case "gemini":
      return arr(body.contents)
        .flatMap((c) => arr(c.parts))
        .filter((p) => p.functionResponse).length;
  }
}

function apiOf(method: string, path: string): Api | undefined {
  if (method !== "POST") return undefined;
  if (path.endsWith("/responses")) return "responses";
  if (path.startsWith("/v1/messages") && !path.includes("count_tokens")) return "messages";
  if (path.endsWith("/chat/completions")) return "chat";
  if (path.includes(":streamGenerateContent") || path.includes(":generateContent")) return "gemini";
  return undefined;
}

/** Starts an SSE answer with `chunks`, leaving it open. */
function sseOpen(res: ServerResponse, chunks: unknown[], named = false): void {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  for (const c of chunks) {
    const type = (c as { type?: string }).type;
    res.write(
      `${named && type ? `event: ${type}\n` : ""}data: ${typeof c === "string" ? c : JSON.stringify(c)}\n\n`,
    );
  }
}

function sse(res: ServerResponse, chunks: unknown[], named = false): void {
  sseOpen(res, chunks, named);
  res.end();
}

let seq = 0;
const id = (p: string) => `${p}_${++seq}`;

function responsesReply(res: ServerResponse, reply: Answer, model: string): void {
  const u = reply.usage ?? DEFAULT_USAGE;
  const items: unknown[] = [];
  if (reply.text)
    items.push({
      type: "message",
      role: "assistant",
      id: id("msg"),
      content: [{ type: "output_text", text: reply.text, annotations: [] }],
    });
  if ("tool" in reply)
    items.push({
      type: "function_call",
      id: id("fc"),
      call_id: id("call"),
      name: reply.tool.name,
      arguments: JSON.stringify(reply.tool.args),
    });
  const rid = id("resp");
  sse(res, [
    { type: "response.created", response: { id: rid, model } },
    ...items.map((item) => ({ type: "response.output_item.done", item })),
    {
      type: "response.completed",
      response: {
        id: rid,
        model,
        usage: {
          input_tokens: u.input,
          input_tokens_details: { cached_tokens: u.cached ?? 0 },
          output_tokens: u.output,
          output_tokens_details: { reasoning_tokens: u.reasoning ?? 0 },
          total_tokens: u.input + u.output,
        },
      },
    },
  ]);
}

function messagesContent(reply: Answer) {
  const content: Record<string, unknown>[] = [];
  if (reply.text) content.push({ type: "text", text: reply.text });
  if ("tool" in reply)
    content.push({ type: "tool_use", id: id("toolu"), name: reply.tool.name, input: reply.tool.args });
  return content;
}

function messagesReply(res: ServerResponse, reply: Answer, stream: boolean, model: string): void {
  const u = reply.usage ?? DEFAULT_USAGE;
  const content = messagesContent(reply);
  const stop = "tool" in reply ? "tool_use" : "end_turn";
  const usage = {
    input_tokens: u.input - (u.cached ?? 0) - (u.cacheWrite ?? 0),
    cache_creation_input_tokens: u.cacheWrite ?? 0,
    cache_read_input_tokens: u.cached ?? 0,
    output_tokens: u.output,
  };
  if (!stream) {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        id: id("msg"),
        type: "message",
        role: "assistant",
        model,
        content,
        stop_reason: stop,
        stop_sequence: null,
        usage,
      }),
    );
    return;
  }
  const chunks: unknown[] = [
    {
      type: "message_start",
      message: {
        id: id("msg"),
        type: "message",
        role: "assistant",
        model,
        content: [],
        stop_reason: null,
        usage: { ...usage, output_tokens: 1 },
      },
    },
  ];
  content.forEach((block, index) => {
    if (block.type === "text") {
      chunks.push({ type: "content_block_start", index, content_block: { type: "text", text: "" } });
      chunks.push({ type: "content_block_delta", index, delta: { type: "text_delta", text: block.text } });
    } else {
      chunks.push({
        type: "content_block_start",
        index,
        content_block: { type: "tool_use", id: block.id, name: block.name, input: {} },
      });
      chunks.push({
        type: "content_block_delta",
        index,
        delta: { type: "input_json_delta", partial_json: JSON.stringify(block.input) },
      });
    }
    chunks.push({ type: "content_block_stop", index });
  });
  chunks.push({
    type: "message_delta",
    delta: { stop_reason: stop, stop_sequence: null },
    usage: { output_tokens: u.output },
  });
  chunks.push({ type: "message_stop" });
  sse(res, chunks, true);
}

function chatReply(res: ServerResponse, reply: Answer, model: string): void {
  const u = reply.usage ?? DEFAULT_USAGE;
  const cid = id("chatcmpl");
  const chunk = (delta: unknown, finish: string | null = null) => ({
    id: cid,
    object: "chat.completion.chunk",
    created: 0,
    model,
    choices: [{ index: 0, delta, finish_reason: finish }],
  });
  const chunks: unknown[] = [chunk({ role: "assistant", content: "" })];
  if (reply.text) chunks.push(chunk({ content: reply.text }));
  if ("tool" in reply) {
    chunks.push(
      chunk({
        tool_calls: [
          { index: 0, id: id("call"), type: "function", function: { name: reply.tool.name, arguments: "" } },
        ],
      }),
    );
    chunks.push(
      chunk({ tool_calls: [{ index: 0, function: { arguments: JSON.stringify(reply.tool.args) } }] }),
    );
  }
  chunks.push(chunk({}, "tool" in reply ? "tool_calls" : "stop"));
  chunks.push({
    id: cid,
    object: "chat.completion.chunk",
    created: 0,
    model,
    choices: [],
    usage: {
      prompt_tokens: u.input,
      completion_tokens: u.output,
      total_tokens: u.input + u.output,
      prompt_tokens_details: { cached_tokens: u.cached ?? 0 },
      completion_tokens_details: { reasoning_tokens: u.reasoning ?? 0 },
    },
  });
  chunks.push("[DONE]");
  sse(res, chunks);
}

function geminiReply(res: ServerResponse, reply: Answer, model: string): void {
  const u = reply.usage ?? DEFAULT_USAGE;
  const parts: unknown[] = [];
  if (reply.text) parts.push({ text: reply.text });
  if ("tool" in reply) parts.push({ functionCall: { name: reply.tool.name, args: reply.tool.args } });
  sse(res, [
    {
      candidates: [{ content: { role: "model", parts }, finishReason: "STOP", index: 0 }],
      usageMetadata: {
        promptTokenCount: u.input,
        candidatesTokenCount: u.output - (u.reasoning ?? 0),
        thoughtsTokenCount: u.reasoning ?? 0,
        totalTokenCount: u.input + u.output,
        cachedContentTokenCount: u.cached ?? 0,
      },
      modelVersion: model,
      responseId: id("r"),
    },
  ]);
}

function errorBody(api: Api, status: number, message: string): unknown {
  if (api === "messages")
    return { type: "error", error: { type: status === 401 ? "authentication_error" : "api_error", message } };
  if (api === "gemini")
    return { error: { code: status, message, status: status === 401 ? "UNAUTHENTICATED" : "INTERNAL" } };
  return {
    error: {
      message,
      type: status === 401 ? "invalid_request_error" : "server_error",
      code: status === 401 ? "invalid_api_key" : null,
    },
  };
}

/** The first events of a reply, without the event that completes it. */
function truncatedStart(api: Api, model: string): unknown[] {
  if (api === "responses") return [{ type: "response.created", response: { id: id("resp") } }];
  if (api === "messages")
    return [
      {
        type: "message_start",
        message: { id: id("msg"), type: "message", role: "assistant", model, content: [], stop_reason: null },
      },
      { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
    ];
  if (api === "chat") return [{ id: id("chatcmpl"), object: "chat.completion.chunk", choices: [] }];
  return [{ candidates: [] }];
}

/** opencode asks the same model for a session title beside the real turn; it gets a title, not the script. */
function isTitleRequest(api: Api, body: Record<string, unknown>): boolean {
  return api === "chat" && JSON.stringify(body.messages ?? "").includes("You are a title generator");
}

export class FakeModelServer {
  /** The scripted conversation's requests, in arrival order. */
  readonly requests: ModelRequest[] = [];
  /** opencode's session-title requests, answered with a title and kept out of `requests`. */
  readonly titleRequests: ModelRequest[] = [];
  /** Requests that were not model calls, in arrival order. */
  readonly probes: Probe[] = [];
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(script: Script, options: FakeServerOptions = {}): Promise<FakeModelServer> {
    let self: FakeModelServer | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => self!.handle(req, res, Buffer.concat(chunks).toString("utf8"), script, options));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    self = new FakeModelServer(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return self;
  }

  /** The scripted conversation's requests in one API. */
  of(api: Api): ModelRequest[] {
    return this.requests.filter((r) => r.api === api);
  }

  private handle(
    req: IncomingMessage,
    res: ServerResponse,
    raw: string,
    script: Script,
    options: FakeServerOptions,
  ): void {
    const path = req.url ?? "/";
    const api = apiOf(req.method ?? "GET", path);
    if (!api) {
      // Claude's HEAD / connectivity check and any probe: a plain 404 is what a real server says
      this.probes.push({ method: req.method ?? "GET", path });
      res.writeHead(path.includes("count_tokens") ? 200 : 404, { "content-type": "application/json" });
      res.end(path.includes("count_tokens") ? JSON.stringify({ input_tokens: 10 }) : "{}");
      return;
    }
    let body: Record<string, unknown> = {};
    try {
      body = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
    } catch {
      res.writeHead(400).end();
      return;
    }
    // Gemini names the model in the path, the others in the body
    const asked =
      api === "gemini"
        ? (/\/models\/([^:]+):/.exec(path)?.[1] ?? "fake")
        : typeof body.model === "string"
          ? body.model
          : "fake";
    const model = options.answeredBy?.(asked) ?? asked;
    const request: ModelRequest = {
      api,
      method: req.method ?? "POST",
      path,
      headers: req.headers,
      body,
      toolResults: countToolResults(api, body),
      text: raw,
    };
    if (isTitleRequest(api, body)) {
      this.titleRequests.push(request);
      chatReply(res, { text: "Scripted session" }, model);
      return;
    }
    this.requests.push(request);
    const reply = script(request);
    if ("status" in reply) {
      res.writeHead(reply.status, { "content-type": "application/json", ...reply.headers });
      res.end(JSON.stringify(errorBody(api, reply.status, reply.message)));
      return;
    }
    if ("failed" in reply) {
      if (api !== "responses")
        throw new Error(`a scripted response.failed needs the Responses API, not ${api}`);
      const rid = id("resp");
      sse(res, [
        { type: "response.created", response: { id: rid } },
        { type: "response.failed", response: { id: rid, status: "failed", error: reply.failed } },
      ]);
      return;
    }
    if ("breakStream" in reply) {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(
        api === "responses"
          ? `data: ${JSON.stringify({ type: "response.created", response: { id: "broken" } })}\n\n`
          : ": broken\n\n",
      );
      res.destroy();
      return;
    }
    if ("truncateStream" in reply) {
      sse(res, truncatedStart(api, model), api === "messages");
      return;
    }
    if ("hangStream" in reply) {
      // left open: close() ends it with every other connection
      sseOpen(res, truncatedStart(api, model), api === "messages");
      return;
    }
    if (api === "responses") responsesReply(res, reply, model);
    else if (api === "messages") messagesReply(res, reply, body.stream === true, model);
    else if (api === "chat") chatReply(res, reply, model);
    else geminiReply(res, reply, model);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
