/**
 * The console's entry: asks for the API token when the server wants one, then shows the run list
 * (kept current by the all-runs event stream) and the run named in the address (#/runs/<id>).
 * While the server does not answer, a banner says the page may be stale; it goes once the server is
 * back and the views have reloaded.
 */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, api, onUnauthorized, tokenStore, UNREACHABLE } from "./api-client.js";
import { useConnection } from "./connection.js";
import { clock } from "./format.js";
import { useEventStream } from "./live.js";
import { RunList } from "./run-list.js";
import { RunPage } from "./run-page.js";

const runIdOf = (hash: string): number | undefined => {
  const m = /^#\/runs\/(\d+)$/.exec(hash);
  return m ? Number(m[1]) : undefined;
};

function useRunId(): number | undefined {
  const [runId, setRunId] = useState(runIdOf(location.hash));
  useEffect(() => {
    const onHash = () => setRunId(runIdOf(location.hash));
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  return runId;
}

type Boot =
  | { state: "loading" }
  | { state: "token"; reason: string | null }
  | { state: "ready"; after: number }
  | { state: "failed"; message: string };

function TokenPanel({ reason, onSaved }: { reason: string | null; onSaved: () => void }) {
  const [value, setValue] = useState("");
  return (
    <section id="token-panel" class="panel">
      <form
        id="token-form"
        onSubmit={(e) => {
          e.preventDefault();
          tokenStore.set(value.trim());
          setValue("");
          onSaved();
        }}
      >
        <h2>API token</h2>
        <p>
          This server asks for its bearer token (<code>TASKSGODZILLA_API_TOKEN</code>). The console keeps it
          in this browser's localStorage and sends it as <code>Authorization: Bearer</code> to this server
          only. "Forget token" removes it.
        </p>
        {reason ? (
          <p id="token-error" class="notice error" role="alert">
            {reason}
          </p>
        ) : null}
        <label>
          Token{" "}
          <input
            id="token-input"
            type="password"
            autocomplete="off"
            required
            value={value}
            onInput={(e) => setValue(e.currentTarget.value)}
            ref={(el) => el?.focus()}
          />
        </label>{" "}
        <button type="submit">Use this token</button>
      </form>
    </section>
  );
}

function StaleBanner() {
  const connection = useConnection();
  if (!connection.down) return null;
  return (
    <p id="stale-banner" class="banner" role="alert">
      <strong>Live updates are down</strong> since {clock(new Date(connection.since).toISOString())}:{" "}
      {connection.detail || "the server does not answer"}. What you see may be out of date; the page
      reconnects by itself.
    </p>
  );
}

function Console({ after }: { after: number }) {
  const runId = useRunId();
  const [listTick, setListTick] = useState(0);
  useEventStream("all-runs", "/events/stream", after, () => setListTick((n) => n + 1));
  return (
    <main id="app" class="layout" data-view={runId === undefined ? "list" : "run"}>
      <RunList selected={runId} tick={listTick} />
      {runId === undefined ? (
        <section id="run" class="run empty" aria-label="Protocol run">
          <p class="hint">Pick a run to watch and drive it.</p>
        </section>
      ) : (
        <RunPage key={runId} runId={runId} />
      )}
    </main>
  );
}

function App() {
  const [boot, setBoot] = useState<Boot>({ state: "loading" });
  const [attempt, setAttempt] = useState(0);
  const connection = useConnection();

  useEffect(() => {
    onUnauthorized(() =>
      setBoot({
        state: "token",
        // the panel says why it asks; an error only when a token was refused
        reason: tokenStore.get() ? "The server refused the stored token; enter the right one." : null,
      }),
    );
  }, []);

  useEffect(() => {
    let cancelled = false;
    (async () => {
      try {
        // the newest event id: the all-runs stream follows what happens from now on
        const after = await api.latestEventId();
        if (!cancelled) setBoot({ state: "ready", after });
      } catch (err) {
        if (cancelled || (err instanceof ApiError && err.status === 401)) return;
        if (err instanceof ApiError && err.status === UNREACHABLE) {
          // the banner says so; try again shortly
          setTimeout(() => !cancelled && setAttempt((n) => n + 1), 2000);
          return;
        }
        setBoot({ state: "failed", message: err instanceof Error ? err.message : String(err) });
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [attempt]);

  return (
    <>
      <header class="top">
        <h1>TasksGodzilla</h1>
        <span class="spacer" />
        <span class="live-dot" data-down={connection.down ? "true" : "false"} title="live updates" />
        <a href="/docs">API docs</a>
        {tokenStore.get() ? (
          <button
            id="forget-token"
            type="button"
            onClick={() => {
              tokenStore.clear();
              location.reload();
            }}
          >
            Forget token
          </button>
        ) : null}
      </header>
      <StaleBanner />
      {boot.state === "failed" ? (
        <p id="fatal" class="notice error" role="alert">
          The API did not answer: {boot.message}
        </p>
      ) : null}
      {boot.state === "token" ? (
        <TokenPanel reason={boot.reason} onSaved={() => setAttempt((n) => n + 1)} />
      ) : null}
      {boot.state === "ready" ? <Console after={boot.after} /> : null}
    </>
  );
}

render(<App />, document.getElementById("root")!);
