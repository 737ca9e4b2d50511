/** What every CLI command shares: the store, the engine registry and the config loader. */

import { storeLocation } from "../config/data-paths.js";
import { loadConfig } from "../config/load-config.js";
import { createDefaultRegistry } from "../engines/builtin-engines.js";
import type { EngineRegistry } from "../engines/engine-registry.js";
import { openStore } from "../store/open-store.js";
import type { Store } from "../store/types.js";

export interface AppContext {
  store: Store;
  registry: EngineRegistry;
  configFor: typeof loadConfig;
}

export interface GlobalOptions {
  db?: string;
}

export async function withApp<T>(opts: GlobalOptions, fn: (app: AppContext) => Promise<T>): Promise<T> {
  const store = await openStore(storeLocation(opts.db));
  try {
    return await fn({
      store,
      registry: createDefaultRegistry(),
      configFor: (dir, env) => loadConfig(dir, env),
    });
  } finally {
    await store.close();
  }
}
