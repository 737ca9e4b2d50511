/**
 * The web console: its page at / and /console, its modules and stylesheet under /console/static/,
 * all from dist/console (built by `npm run build`). Open like /docs: the files hold no data and no
 * secret; the API they call asks for the token. Files are revalidated on every load (ETag), so a
 * rebuilt console shows at once, and a Content-Security-Policy keeps the page to this server.
 */
import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { route, type ServerContext } from "../server-context.js";

/** Where `npm run build` puts the console (the same place from src/ under tsx and from dist/). */
export const CONSOLE_DIR = fileURLToPath(new URL("../../../dist/console/", import.meta.url));

const NOT_BUILT = "the console is not built: run npm run build";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** A plain file name: no folder, no `..`, nothing hidden. */
const FILE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;

async function sendFile(
  req: FastifyRequest,
  reply: FastifyReply,
  path: string,
  missing: () => FastifyReply,
): Promise<FastifyReply> {
  const type = TYPES[extname(path)];
  const info = await stat(path).catch(() => undefined);
  if (!type || !info?.isFile()) return missing();
  const etag = `W/"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
  void reply
    .header("content-type", type)
    .header("cache-control", "no-cache")
    .header("etag", etag)
    .header("x-content-type-options", "nosniff")
    .header("content-security-policy", CSP)
    .header("referrer-policy", "no-referrer");
  if (req.headers["if-none-match"] === etag) return reply.status(304).send();
  return reply.send(await readFile(path));
}

export function consoleRoutes(app: FastifyInstance, ctx: ServerContext, dir = CONSOLE_DIR): void {
  const notFound = (req: FastifyRequest, reply: FastifyReply, detail: string) =>
    reply.status(404).send({ error: "not_found", detail, request_id: req.id });
  const page = {
    method: "GET" as const,
    tag: "console",
    auth: "none" as const,
    responses: {
      200: {
        description: "The console's page (HTML; it holds no data and no token)",
        contentType: "text/html",
      },
      404: { description: NOT_BUILT },
    },
  };
  const index = async (req: FastifyRequest, reply: FastifyReply) =>
    sendFile(req, reply, join(dir, "index.html"), () => notFound(req, reply, NOT_BUILT));

  route(app, ctx, { ...page, url: "/", summary: "The web console" }, async (_input, req, reply) =>
    index(req, reply),
  );
  route(
    app,
    ctx,
    { ...page, url: "/console", summary: "The web console (same page as /)" },
    async (_input, req, reply) => index(req, reply),
  );
  route(
    app,
    ctx,
    {
      method: "GET",
      url: "/console/static/{file}",
      tag: "console",
      summary: "The console's modules and stylesheet",
      auth: "none",
      params: z.object({ file: z.string().describe("A file of dist/console/static, e.g. main.js.") }),
      responses: {
        200: { description: "The file (JavaScript, CSS or an image)", contentType: "text/javascript" },
        404: { description: "No such file, or the console is not built" },
      },
    },
    async ({ params }, req, reply) => {
      const missing = () =>
        notFound(
          req,
          reply,
          existsSync(join(dir, "index.html"))
            ? `console file ${JSON.stringify(params.file)} not found`
            : NOT_BUILT,
        );
      if (!FILE_NAME.test(params.file)) return missing();
      return sendFile(req, reply, join(dir, "static", params.file), missing);
    },
  );
}
