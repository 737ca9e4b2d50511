/** The queue a process uses: BullMQ when a redis:// URL is given, else the embedded queue in the store. */
import type { Store } from "../store/types.js";
import { BullmqQueue } from "./bullmq-queue.js";
import type { JobQueue } from "./job-queue.js";
import { StoreQueue } from "./store-queue.js";

export function openQueue(store: Store, redisUrl?: string | undefined, prefix?: string): JobQueue {
  return redisUrl ? new BullmqQueue({ url: redisUrl, ...(prefix ? { prefix } : {}) }) : new StoreQueue(store);
}
