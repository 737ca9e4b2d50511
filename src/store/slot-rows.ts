/** Engine concurrency slots in `concurrency_slots`: one row per held slot, keyed (slot key, slot number). */
import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import type { Clock } from "../shared/clock.js";
import type { Database } from "./db-schema.js";
import type { OutageWatch } from "./outage-watch.js";
import type { SlotsRepository } from "./repositories.js";

const iso = (ms: number) => new Date(ms).toISOString();

export class SlotRows implements SlotsRepository {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: Clock,
    private readonly outages: OutageWatch,
  ) {}

  async acquire(key: string, cap: number, holder: string, leaseMs: number): Promise<string | undefined> {
    const now = this.clock.now();
    await this.db
      .deleteFrom("concurrency_slots")
      .where("slot_key", "=", key)
      .where("expires_at", "<", this.outages.lapsedBefore())
      .execute();
    const token = randomUUID();
    for (let slot = 0; slot < cap; slot++) {
      const inserted = await this.db
        .insertInto("concurrency_slots")
        .values({ slot_key: key, slot_no: slot, holder, token, expires_at: iso(now + leaseMs) })
        .onConflict((oc) => oc.columns(["slot_key", "slot_no"]).doNothing())
        .returning("token")
        .executeTakeFirst();
      if (inserted) return token;
    }
    return undefined;
  }

  async renew(key: string, token: string, leaseMs: number): Promise<boolean> {
    const r = await this.db
      .updateTable("concurrency_slots")
      .set({ expires_at: iso(this.clock.now() + leaseMs) })
      .where("slot_key", "=", key)
      .where("token", "=", token)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async release(key: string, token: string): Promise<void> {
    await this.db
      .deleteFrom("concurrency_slots")
      .where("slot_key", "=", key)
      .where("token", "=", token)
      .execute();
  }
}
