/** The committed OpenAPI file (docs/openapi.json): the document of a server built with no listener. */
import { loadConfig } from "../config/load-config.js";
import { StoreQueue } from "../queue/store-queue.js";
import { openStore } from "../store/open-store.js";
import { buildServer } from "./build-server.js";

export async function openApiText(): Promise<string> {
  const store = await openStore({ sqlitePath: ":memory:" });
  const app = buildServer({
    store,
    queue: new StoreQueue(store),
    configFor: (d) => loadConfig(d, {}),
  });
  try {
    const res = await app.inject({ method: "GET", url: "/openapi.json" });
    return `${JSON.stringify(res.json(), null, 2)}\n`;
  } finally {
    await app.close();
    await store.close();
  }
}
