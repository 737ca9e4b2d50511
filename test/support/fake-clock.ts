/**
 * Fake time for leases, heartbeats, backoff and retention (@sinonjs/fake-timers, not installed
 * globally): the code under test gets it as its Clock, the test moves it forward.
 */
import FakeTimers from "@sinonjs/fake-timers";
import type { Clock } from "../../src/shared/clock.js";

export interface FakeClock extends Clock {
  /** Moves time forward by `ms`, running every timer that falls due on the way, in order. */
  advance(ms: number): Promise<void>;
}

export function fakeClock(start = Date.now()): FakeClock {
  const fake = FakeTimers.createClock(start);
  return {
    now: () => fake.now,
    sleep: (ms, signal) =>
      new Promise<void>((resolve) => {
        if (signal?.aborted) return resolve();
        const onAbort = () => {
          fake.clearTimeout(id);
          resolve();
        };
        const id = fake.setTimeout(() => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        }, ms);
        signal?.addEventListener("abort", onAbort, { once: true });
      }),
    every(ms, fn) {
      const id = fake.setInterval(fn, ms);
      return () => fake.clearInterval(id);
    },
    advance: async (ms) => {
      await fake.tickAsync(ms);
    },
  };
}
