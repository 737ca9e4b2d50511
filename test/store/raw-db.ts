/**
 * The query builder under a store, for tests that set up what the store port never writes (a
 * dropped table, a lease lapsed long ago, a slot taken by someone else). Test code only: nothing in
 * `src/` outside the store reaches past its port.
 */
import type { Kysely } from "kysely";
import type { Database } from "../../src/store/db-schema.js";
import { KyselyStore } from "../../src/store/kysely-store.js";
import type { Store } from "../../src/store/types.js";

export function rawDb(store: Store): Kysely<Database> {
  if (!(store instanceof KyselyStore)) throw new Error("not a KyselyStore");
  return (store as unknown as { db: Kysely<Database> }).db;
}
