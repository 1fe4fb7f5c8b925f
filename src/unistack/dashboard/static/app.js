// The dashboard page: reads the instance once, then lives on two event streams (/api/stream: services, events,
// the daemon's presence; /api/logs/stream in logs.js) and hands their data to the graph and the panels; sends
// the actions (restart / stop / start, validate) as same-origin POSTs. Owns the header and the theme toggle.

import { Graph, stateText, tone } from "./graph.js";
import { LogView } from "./logs.js";
import { Detail, Timeline, renderValidate } from "./panels.js";

const $ = (id) => document.getElementById(id);
const THEME_KEY = "unistack-dashboard-theme";

const state = { services: [], edges: [], byName: new Map(), selected: null, receivedAt: 0 };

// The token came in the URL; the server has set its cookie by now, so the address bar (and any screenshot or
// shared screen) need not show it. A reload still works through the cookie.
if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", location.pathname);

// ------------------------------------------------------------------ theme

function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  const dark = theme ? theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  const button = $("theme-toggle");
  button.textContent = dark ? "Light theme" : "Dark theme";
  button.setAttribute("aria-pressed", String(dark));
}

$("theme-toggle").addEventListener("click", () => {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === "dark"
    : matchMedia("(prefers-color-scheme: dark)").matches;
  const next = dark ? "light" : "dark";
  try {
    localStorage.setItem(THEME_KEY, next);
  } catch {
    // storage refused (a private window): the toggle still works for this page
  }
  applyTheme(next);
});
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => applyTheme(storedTheme()));

function storedTheme() {
  try {
    const t = localStorage.getItem(THEME_KEY);
    return t === "light" || t === "dark" ? t : null;
  } catch {
    return null;
  }
}
applyTheme(storedTheme());

// ------------------------------------------------------------------ requests

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

/** A POST from this page: same origin, so the browser sends its Origin and the cookie. */
async function post(path) {
  const response = await fetch(path, { method: "POST", credentials: "same-origin", headers: { Accept: "application/json" } });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = { ok: false, error: `${response.status} ${response.statusText}` };
  }
  return { status: response.status, body };
}

// ------------------------------------------------------------------ header

function showInstance(info) {
  $("project").textContent = info.project;
  document.title = `${info.project} · unistack dashboard`;
  $("runtime").textContent = info.runtime === "docker" ? "containers" : "host processes";
  if (info.environment) {
    $("environment").hidden = false;
    $("environment").textContent = info.environment;
  }
  if (info.entry) {
    const a = $("entry");
    a.hidden = false;
    a.href = info.entry;
    a.textContent = info.entry;
  }
  showDaemon(info.daemon ?? { connected: false, pid: null });
}

let streamUp = false;
let daemon = { connected: false, pid: null };

function showDaemon(next) {
  daemon = next;
  const el = $("daemon-status");
  const connected = Boolean(next.connected) && streamUp;
  el.dataset.connected = String(connected);
  el.dataset.stream = String(streamUp);
  const text = !streamUp
    ? "dashboard server unreachable: retrying…"
    : next.connected
      ? `daemon connected${next.pid ? ` (pid ${next.pid})` : ""}`
      : "daemon away: reconnecting…";
  el.querySelector(".status-text").textContent = text;
  el.title = text;
}

// ------------------------------------------------------------------ services

const graph = new Graph($("graph"), select);
const detail = new Detail($("detail"), act);
const timeline = new Timeline($("timeline"));
const logs = new LogView({
  box: $("logs"),
  search: $("log-search"),
  level: $("log-level"),
  follow: $("log-follow"),
  count: $("log-count"),
  services: $("log-services"),
});

function showServices({ services, edges }) {
  state.receivedAt = Date.now();
  state.services = services.map((row) => ({ ...row, _tone: tone(row), _stateText: stateText(row) }));
  state.edges = edges ?? [];
  state.byName = new Map(state.services.map((r) => [r.service, r]));
  graph.update(state.services, state.edges);
  showBlocking();
  logs.setServices(state.services.map((r) => r.service));
  if (state.selected && !state.byName.has(state.selected)) state.selected = null;
  if (!state.selected && state.services.length) select(pickFirst(), false);
  else detail.show(state.byName.get(state.selected) ?? null, state.receivedAt);
}

// What an event says a service's state is now. The event stream carries every line of the event log, while
// the services snapshots come from a poll (~0.5 s): a restart that takes less than a poll (a container comes
// back in a second) would never show in the graph without this. The next snapshot has the last word.
const EVENT_STATES = {
  starting: { state: "starting" },
  healthy: { state: "healthy", health: "healthy" },
  unhealthy: { state: "unhealthy", health: "unhealthy" },
  exited: { state: "exited", health: "none" },
  restarting: { state: "restarting", health: "none" },
  fatal: { state: "fatal", health: "none" },
  blocked: { state: "blocked", health: "none" },
  stopped: { state: "stopped", health: "none" },
};

function applyEvent(e) {
  const change = EVENT_STATES[e.kind];
  const old = e.service ? state.byName.get(e.service) : undefined;
  if (!change || !old) return;
  const row = { ...old, ...change };
  if (e.kind === "starting" && old.health !== "none") row.health = "starting";
  if (e.kind === "exited") row.exit_code = typeof e.data?.exit_code === "number" ? e.data.exit_code : null;
  row._tone = tone(row);
  row._stateText = stateText(row);
  state.services = state.services.map((r) => (r.service === row.service ? row : r));
  state.byName.set(row.service, row);
  graph.update(state.services, state.edges);
  if (state.selected === row.service) detail.show(row, state.receivedAt);
}

/** The service shown first: one that needs attention, else the one nothing depends on (the entry, usually). */
function pickFirst() {
  const bad = state.services.find((r) => r._tone === "bad");
  if (bad) return bad.service;
  const depended = new Set(state.edges.map((e) => e.to));
  const top = state.services.filter((r) => !depended.has(r.service));
  return (top[0] ?? state.services[0]).service;
}

function showBlocking() {
  const blocking = state.edges.filter((e) => e.blocking && state.byName.has(e.from));
  const box = $("blocking");
  box.replaceChildren(
    ...blocking.map((e) => {
      const li = document.createElement("li");
      li.dataset.testid = "blocking-reason";
      li.textContent = `${e.from} waits for ${e.to}: ${e.reason || `${e.condition} not met yet`}`;
      return li;
    }),
  );
  box.hidden = blocking.length === 0;
}

function select(name, focusDetail = true) {
  state.selected = name;
  graph.select(name);
  detail.show(state.byName.get(name) ?? null, state.receivedAt);
  if (focusDetail && matchMedia("(max-width: 820px)").matches) $("detail").scrollIntoView({ block: "nearest" });
}

async function act(service, verb) {
  detail.setBusy(verb);
  try {
    const { status, body } = await post(`/api/services/${encodeURIComponent(service)}/${verb}`);
    if (body?.services) showServices({ services: body.services, edges: state.edges });
    if (status < 300 && body?.ok !== false) detail.tell(`${service}: ${verb} done`, true);
    else detail.tell(`${service}: ${verb} failed: ${body?.error ?? status}`, false);
  } catch (err) {
    detail.tell(`${service}: ${verb} failed: ${err.message}`, false);
  } finally {
    detail.setBusy("");
  }
}

// ------------------------------------------------------------------ validate

async function runValidate() {
  const button = $("validate-run");
  button.disabled = true;
  button.textContent = "Validating…";
  $("validate-result").dataset.running = "true";
  try {
    const { status, body } = await post("/api/validate");
    if (status === 409) renderValidate($("validate-result"), null, "A validate is already running; try again when it ends.");
    else if (body && Array.isArray(body.checks)) renderValidate($("validate-result"), body);
    else renderValidate($("validate-result"), null, `validate failed: ${body?.error ?? status}`);
  } catch (err) {
    renderValidate($("validate-result"), null, `validate failed: ${err.message}`);
  } finally {
    $("validate-result").dataset.running = "false";
    button.disabled = false;
    button.textContent = "Run validate";
  }
}
$("validate-run").addEventListener("click", runValidate);

// ------------------------------------------------------------------ the live stream

let retryDelay = 500;

function connect() {
  const source = new EventSource("/api/stream");
  source.addEventListener("open", () => {
    streamUp = true;
    retryDelay = 500;
    showDaemon(daemon);
  });
  source.addEventListener("error", () => {
    streamUp = false;
    showDaemon(daemon);
    // EventSource retries by itself after a dropped connection, but gives up after an answer other than 200
    // (the server restarted: a 401 for an old token, or a 502 from something in between): then retry here.
    if (source.readyState === EventSource.CLOSED) {
      source.close();
      fetch("/api/instance", { credentials: "same-origin" })
        .then((r) => {
          if (r.status === 401) tokenRefused();
          else setTimeout(connect, retryDelay);
        })
        .catch(() => setTimeout(connect, retryDelay));
      retryDelay = Math.min(retryDelay * 2, 5000);
    }
  });
  const parse = (handler) => (ev) => {
    try {
      handler(JSON.parse(ev.data));
    } catch (err) {
      console.debug("unistack dashboard: a bad message", err);
    }
  };
  source.addEventListener("services", parse(showServices));
  source.addEventListener(
    "event",
    parse((e) => {
      timeline.add([e]);
      applyEvent(e);
    }),
  );
  source.addEventListener("daemon", parse(showDaemon));
}

function tokenRefused() {
  const el = $("daemon-status");
  el.dataset.connected = "false";
  el.querySelector(".status-text").textContent =
    "this dashboard's token is no longer valid: open the address `unistack dashboard` printed";
  logs.source?.close();
  logs.source = null;
}

async function start() {
  try {
    showInstance(await getJSON("/api/instance"));
  } catch (err) {
    $("project").textContent = "(unreachable)";
    console.debug(err);
  }
  connect();
  getJSON("/api/events?limit=200")
    .then((body) => timeline.add(body.events ?? []))
    .catch((err) => console.debug(err));
  getJSON("/api/validate")
    .then((report) => renderValidate($("validate-result"), report && Array.isArray(report.checks) ? report : null))
    .catch((err) => console.debug(err));
}

start();
