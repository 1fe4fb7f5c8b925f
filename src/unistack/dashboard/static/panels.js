// The side panels: one service's detail (with its restart / stop / start buttons), the timeline of events and
// the validate report. Each draws from the data it is given and calls back for actions; none opens a stream.

/** "14:03:07" in the viewer's time zone, the full ISO time in a title. */
export function clock(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString([], { hour12: false });
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return "—";
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function ago(iso) {
  if (!iso) return "";
  const s = (Date.now() - new Date(iso).getTime()) / 1000;
  return Number.isFinite(s) ? ` (${duration(Math.max(0, s))} ago)` : "";
}

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "testid") node.dataset.testid = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

function time(iso) {
  return h("time", { datetime: iso ?? undefined, title: iso ?? undefined }, clock(iso));
}

/** Uptime now: started_at when the row has it, else uptime_s plus the time since the row arrived. */
export function uptimeOf(row, receivedAt) {
  if (!["starting", "running", "healthy", "unhealthy"].includes(row.state)) return null;
  if (row.started_at) return (Date.now() - new Date(row.started_at).getTime()) / 1000;
  if (row.uptime_s !== null && row.uptime_s !== undefined) return row.uptime_s + (Date.now() - receivedAt) / 1000;
  return null;
}

const FIELDS = [
  ["Health", "detail-health"],
  ["Uptime", "detail-uptime"],
  ["Started", "detail-started-at"],
  ["Restarts", "detail-restarts"],
  ["CPU", "detail-cpu"],
  ["Memory", "detail-memory"],
  ["PID", "detail-ident"],
  ["Ports", "detail-ports"],
  ["Entry", "detail-entry"],
  ["Exit code", "detail-exit-code"],
  ["Depends on", "detail-depends"],
  ["Update", "detail-update"],
];
const VERBS = ["restart", "stop", "start"];
const capital = (verb) => `${verb[0].toUpperCase()}${verb.slice(1)}`;

/** One service's detail. Its elements are built once per selected service and then only filled in, so a
 * button stays the same element (and keeps focus, and a click is never lost) while updates stream in. */
export class Detail {
  constructor(host, onAction) {
    this.host = host;
    this.onAction = onAction;
    this.row = null;
    this.receivedAt = 0;
    this.busy = "";
    this.built = "";
    this.parts = {};
    setInterval(() => this.tick(), 1000);
  }

  show(row, receivedAt = Date.now()) {
    this.row = row;
    this.receivedAt = receivedAt;
    if ((row?.service ?? "") !== this.built) this.build(row);
    if (row) this.fill(row);
  }

  setBusy(verb) {
    this.busy = verb;
    for (const v of VERBS) {
      const b = this.parts[`btn-${v}`];
      if (!b) continue;
      b.disabled = Boolean(verb);
      b.textContent = verb === v ? `${capital(v)}ing…` : capital(v);
    }
  }

  tell(message, ok) {
    const p = this.parts.result;
    if (!p) return;
    p.hidden = false;
    p.className = `action-result ${ok ? "ok" : "bad"}`;
    p.textContent = message;
  }

  tick() {
    if (!this.row) return;
    this.parts["detail-uptime"].textContent = duration(uptimeOf(this.row, this.receivedAt));
    if (this.row.last_check) this.parts.checkAgo.textContent = ago(this.row.last_check.at);
  }

  build(row) {
    this.built = row?.service ?? "";
    this.host.dataset.service = this.built;
    this.parts = {};
    if (!row) {
      this.host.replaceChildren(h("p", { class: "empty" }, "Click a service in the graph to see its details."));
      return;
    }
    const p = this.parts;
    p.state = h("span", { class: "badge state", testid: "detail-state" });
    for (const v of VERBS) {
      p[`btn-${v}`] = h(
        "button",
        { type: "button", testid: `btn-${v}`, class: v === "stop" ? "danger" : "", onclick: () => this.onAction(row.service, v) },
        capital(v),
      );
    }
    p.result = h("p", { class: "action-result", testid: "action-result", role: "status", hidden: true });
    p.reason = h("p", { class: "reason", testid: "detail-reason", hidden: true });
    const facts = h("dl", { class: "facts" });
    for (const [label, testid] of FIELDS) {
      const dt = h("dt", {}, label);
      const dd = h("dd", { testid });
      p[testid] = dd;
      p[`${testid}-label`] = dt;
      facts.append(dt, dd);
    }
    p.checkHead = h("p");
    p.checkAgo = h("span", { testid: "detail-check-ago" });
    p.checkOutput = h("pre", { testid: "detail-check-output" });
    p.check = h("div", { class: "check", testid: "detail-check" }, p.checkHead, p.checkOutput);
    p.history = h("ol", { class: "restarts", testid: "detail-restart-history", reversed: true });
    p.noHistory = h("p", { class: "muted" }, "No restarts.");
    this.host.replaceChildren(
      h("div", { class: "detail-head" }, h("h3", {}, row.service), p.state),
      h("div", { class: "actions" }, VERBS.map((v) => p[`btn-${v}`])),
      p.result,
      p.reason,
      facts,
      h("h4", {}, "Last health check"),
      p.check,
      h("h4", {}, "Restart history"),
      p.history,
      p.noHistory,
    );
    this.setBusy(this.busy);
  }

  fill(row) {
    const p = this.parts;
    const set = (testid, value, shown = true) => {
      p[testid].replaceChildren(value);
      p[testid].hidden = !shown;
      p[`${testid}-label`].hidden = !shown;
    };
    p.state.className = `badge state tone-${row._tone}`;
    p.state.dataset.state = row.state;
    p.state.textContent = row._stateText;
    p.reason.hidden = !row.reason;
    p.reason.textContent = row.reason ?? "";
    const stats = row.stats ?? {};
    const cpu = stats.cpu_percent;
    set("detail-health", row.health);
    set("detail-uptime", duration(uptimeOf(row, this.receivedAt)));
    set("detail-started-at", row.started_at ? time(row.started_at) : "—");
    p["detail-started-at"].dataset.value = row.started_at ?? "";
    set("detail-restarts", String(row.restarts));
    set("detail-cpu", cpu === null || cpu === undefined ? "—" : `${cpu.toFixed(1)} %`);
    set("detail-memory", bytes(stats.memory_bytes));
    p["detail-ident-label"].textContent = row.container ? "Container" : "PID";
    set("detail-ident", row.container ? row.container.slice(0, 12) : String(row.pid ?? "—"));
    const ports = (row.ports ?? []).map((x) => `${x.host_ip || "0.0.0.0"}:${x.host_port} → ${x.target}/${x.protocol}`);
    set("detail-ports", ports.join(", ") || "—");
    set("detail-entry", row.entry ? h("a", { href: row.entry, target: "_blank", rel: "noopener" }, row.entry) : "—");
    set("detail-exit-code", String(row.exit_code ?? ""), row.exit_code !== null && row.exit_code !== undefined);
    const deps = Object.entries(row.depends_on ?? {});
    set("detail-depends", deps.map(([d, c]) => `${d} (${c})`).join(", "), deps.length > 0);
    set("detail-update", row.update ?? "", Boolean(row.update));
    const check = row.last_check;
    if (check) {
      p.check.className = `check ${check.ok ? "ok" : "bad"}`;
      p.checkAgo.textContent = ago(check.at);
      p.checkHead.replaceChildren(
        check.ok ? "✓ passed at " : "✗ failed at ",
        time(check.at),
        p.checkAgo,
        check.exit_code !== null ? ` · exit ${check.exit_code}` : "",
      );
      p.checkOutput.textContent = check.output || "(no output)";
      p.checkOutput.hidden = false;
    } else {
      p.check.className = "check muted";
      p.checkHead.replaceChildren("No health check has run (or the service has none).");
      p.checkOutput.hidden = true;
    }
    const history = row.restart_history?.length
      ? row.restart_history
      : (row.restarted_at ?? []).map((at) => ({ at, exit_code: null }));
    p.history.replaceChildren(
      ...[...history].reverse().map((r) => h("li", {}, time(r.at), r.exit_code === null || r.exit_code === undefined ? "" : ` · exit ${r.exit_code}`)),
    );
    p.history.hidden = history.length === 0;
    p.noHistory.hidden = history.length > 0;
  }
}

const KIND_TONE = {
  healthy: "ok",
  started: "ok",
  adopted: "ok",
  starting: "warn",
  waiting: "warn",
  restarting: "warn",
  check_failed: "warn",
  stopping: "idle",
  stopped: "idle",
  setup: "idle",
  install: "idle",
  update: "info",
  notify: "info",
  unhealthy: "bad",
  exited: "bad",
  fatal: "bad",
  blocked: "bad",
  killed: "bad",
  error: "bad",
  notify_failed: "bad",
};
const MAX_EVENTS = 300;

export class Timeline {
  constructor(host) {
    this.host = host;
    this.events = [];
    this.seen = new Set();
    this.frame = 0;
  }

  /** Adds events (from the first fetch or the stream, in any order); drawn newest first, once per frame. */
  add(events) {
    for (const e of events) {
      const key = `${e.at}|${e.kind}|${e.service}|${e.message}`;
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      this.events.push(e);
    }
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  render() {
    this.frame = 0;
    this.events.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
    if (this.events.length > MAX_EVENTS) {
      for (const e of this.events.splice(0, this.events.length - MAX_EVENTS)) {
        this.seen.delete(`${e.at}|${e.kind}|${e.service}|${e.message}`);
      }
    }
    const items = [...this.events].reverse().map((e) => {
      const tone = e.kind === "exited" && e.data?.exit_code === 0 ? "idle" : (KIND_TONE[e.kind] ?? "info");
      return h(
        "li",
        { class: `event tone-${tone}`, testid: "event", "data-kind": e.kind, "data-service": e.service ?? "" },
        time(e.at),
        h("span", { class: "kind" }, e.kind.replaceAll("_", " ")),
        e.service ? h("strong", { class: "event-service" }, e.service) : null,
        h("span", { class: "message" }, e.message),
      );
    });
    this.host.replaceChildren(...items);
  }
}

const VERDICTS = {
  pass: { mark: "✓", said: "passed" },
  fail: { mark: "✗", said: "failed" },
  skip: { mark: "–", said: "skipped" },
};

/** A check's verdict: validate's own word (pass, fail, skip), or from `ok` for a report without one. */
export function verdictOf(check) {
  return VERDICTS[check.verdict] ? check.verdict : check.ok ? "pass" : "fail";
}

/** "✓ 5 passed · 1 skipped" or "✗ 1 of 6 failed · 4 passed · 1 skipped": each verdict counted on its own. */
export function summaryOf(checks) {
  const n = { pass: 0, fail: 0, skip: 0 };
  for (const c of checks) n[verdictOf(c)] += 1;
  const skipped = n.skip ? ` · ${n.skip} skipped` : "";
  if (n.fail) return `✗ ${n.fail} of ${checks.length} failed · ${n.pass} passed${skipped}`;
  return `✓ ${n.pass === checks.length ? "all " : ""}${n.pass} passed${skipped}`;
}

/** The validate report: {ok, checks: [{name, component, ok, verdict, message, duration_s}]}, or null. */
export function renderValidate(host, report, note = "") {
  host.dataset.ok = report ? String(report.ok) : "";
  if (!report) {
    host.replaceChildren(h("p", { class: note ? "bad" : "empty" }, note || "No validate run from this dashboard yet."));
    return;
  }
  const checks = report.checks ?? [];
  host.replaceChildren(
    h(
      "p",
      { class: `summary ${report.ok ? "ok" : "bad"}`, testid: "validate-summary" },
      summaryOf(checks),
      report.finished_at ? h("span", { class: "muted" }, " at ", time(report.finished_at)) : "",
    ),
    h(
      "ul",
      { class: "checks" },
      checks.map((c) => {
        const verdict = verdictOf(c);
        return h(
          "li",
          { class: verdict, testid: "validate-check", "data-ok": String(c.ok), "data-verdict": verdict },
          h("span", { class: "mark", "aria-hidden": "true" }, VERDICTS[verdict].mark),
          h("span", { class: "verdict" }, VERDICTS[verdict].said),
          h("strong", {}, c.name),
          c.component ? h("span", { class: "muted" }, ` ${c.component}`) : "",
          c.duration_s !== undefined && c.duration_s !== null ? h("span", { class: "muted" }, ` ${c.duration_s.toFixed(2)} s`) : "",
          c.message ? h("div", { class: "check-message" }, c.message) : "",
        );
      }),
    ),
    note ? h("p", { class: "bad" }, note) : "",
  );
}
