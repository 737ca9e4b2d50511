/**
 * The console's entry: asks for the API token when the server wants one, shows the projects (kept
 * current by the all-runs event stream) and the run named in the address (#/runs/<id>).
 */
import { ApiError, api, onUnauthorized, tokenStore } from "./api-client.js";
import { byId } from "./dom.js";
import { ProjectsView } from "./projects-view.js";
import { RunView } from "./run-view.js";
import { followEvents } from "./sse-reader.js";

const app = byId("app");
const tokenPanel = byId("token-panel");
const tokenForm = byId<HTMLFormElement>("token-form");
const tokenInput = byId<HTMLInputElement>("token-input");
const tokenError = byId("token-error");
const forget = byId<HTMLButtonElement>("forget-token");
const globalState = byId("stream-state");
const fatal = byId("fatal");

const projects = new ProjectsView(byId("projects"));
const runView = new RunView(byId("run"));
let stopGlobal: (() => void) | undefined;

function askForToken(reason: string | undefined): void {
  stopGlobal?.();
  stopGlobal = undefined;
  runView.close();
  app.hidden = true;
  tokenPanel.hidden = false;
  tokenError.hidden = !reason;
  tokenError.textContent = reason ?? "";
  tokenInput.focus();
}

function route(): void {
  const m = /^#\/runs\/(\d+)$/.exec(location.hash);
  const runId = m ? Number(m[1]) : undefined;
  projects.select(runId);
  if (runId === undefined) runView.close();
  else runView.open(runId);
}

async function boot(): Promise<void> {
  forget.hidden = !tokenStore.get();
  let after: number;
  try {
    await projects.load();
    after = await api.latestEventId();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    fatal.textContent = `The API did not answer: ${err instanceof Error ? err.message : String(err)}`;
    fatal.hidden = false;
    return;
  }
  fatal.hidden = true;
  tokenPanel.hidden = true;
  app.hidden = false;
  stopGlobal?.();
  stopGlobal = followEvents({
    path: "/events/stream",
    after,
    onEvent: () => projects.refresh(),
    onState: (state) => {
      globalState.dataset.state = state;
      globalState.textContent = `events: ${state}`;
    },
  });
  route();
}

onUnauthorized(() =>
  askForToken(
    tokenStore.get()
      ? "The server refused the stored token; enter the right one."
      : "This server needs its API token.",
  ),
);
tokenForm.addEventListener("submit", (e) => {
  e.preventDefault();
  tokenStore.set(tokenInput.value.trim());
  tokenInput.value = "";
  void boot();
});
forget.addEventListener("click", () => {
  tokenStore.clear();
  location.reload();
});
window.addEventListener("hashchange", route);
void boot();
