/**
 * Refreshes driven by events: a burst of events makes at most one refresh under way and one after it,
 * never one request per event.
 */
export function coalesced(task: () => Promise<void>): () => void {
  let running = false;
  let again = false;
  const loop = async () => {
    running = true;
    do {
      again = false;
      await task();
    } while (again);
    running = false;
  };
  return () => {
    if (running) again = true;
    else void loop();
  };
}
