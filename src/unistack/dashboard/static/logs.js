// The log view: lines from /api/logs/stream kept in a bounded buffer, filtered by level and search text, drawn
// in one batch per animation frame with at most MAX_DOM lines in the page, scrolled to the newest line unless
// the user scrolled up. Owns the logs panel's elements; it knows nothing of the graph or the other panels.

export const MAX_DOM = 5000;
const MAX_BUFFER = 5000; // lines kept for re-filtering (search, level)
const LEVELS = { debug: 0, info: 1, warn: 2, error: 3 };
const ERROR = /\b(error|err|errors|fatal|critical|crit|panic|exception|traceback|failed|failure)\b/i;
const WARN = /\b(warn|warning|warnings|deprecated)\b/i;
const DEBUG = /\b(debug|trace|dbg)\b/i;

/** The level of a line by a simple pattern: error, warn, debug, else info. */
export function levelOf(text) {
  if (ERROR.test(text)) return "error";
  if (WARN.test(text)) return "warn";
  if (DEBUG.test(text)) return "debug";
  return "info";
}

/** A stable colour slot (0..7) per service name. */
function colourSlot(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h % 8;
}

export class LogView {
  constructor({ box, search, level, follow, count, services }) {
    Object.assign(this, { box, searchInput: search, levelSelect: level, followButton: follow, countEl: count });
    this.servicesBox = services;
    this.buffer = []; // {service, text, level}
    this.pending = [];
    this.frame = 0;
    this.following = true;
    this.search = "";
    this.minLevel = 0;
    this.source = null;
    this.selected = new Set(); // empty: all services
    this.known = [];
    this.received = 0;
    box.addEventListener("scroll", () => {
      const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
      if (atBottom !== this.following) this.setFollowing(atBottom);
    });
    follow.addEventListener("click", () => {
      this.setFollowing(true);
      box.scrollTop = box.scrollHeight;
    });
    let timer = 0;
    search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        this.search = search.value.trim().toLowerCase();
        this.redraw();
      }, 120);
    });
    level.addEventListener("change", () => {
      this.minLevel = LEVELS[level.value] ?? 0;
      this.redraw();
    });
  }

  setFollowing(on) {
    this.following = on;
    this.box.dataset.following = String(on);
    this.followButton.hidden = on;
  }

  /** The service checkboxes, once per change of the service list. */
  setServices(names) {
    const sorted = [...names].sort();
    if (sorted.join(",") === this.known.join(",")) return;
    this.known = sorted;
    const legend = this.servicesBox.querySelector("legend");
    this.servicesBox.replaceChildren(legend);
    for (const name of sorted) {
      const label = document.createElement("label");
      label.className = `svc-toggle svc-c${colourSlot(name)}`;
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = name;
      box.checked = this.selected.size === 0 || this.selected.has(name);
      box.dataset.testid = `log-service-${name}`;
      box.addEventListener("change", () => this.onFilterChange());
      label.append(box, document.createTextNode(` ${name}`));
      this.servicesBox.appendChild(label);
    }
    if (!this.source) this.connect();
  }

  onFilterChange() {
    const boxes = [...this.servicesBox.querySelectorAll("input[type=checkbox]")];
    const on = boxes.filter((b) => b.checked).map((b) => b.value);
    this.selected = new Set(on.length === boxes.length ? [] : on);
    this.connect();
  }

  /** (Re)opens the stream for the chosen services; the server sends their last 200 lines first. */
  connect() {
    this.source?.close();
    this.buffer = [];
    this.pending = [];
    this.box.replaceChildren();
    const services = [...this.selected].join(",");
    if (this.known.length && this.selected.size === 0 && this.servicesBox.querySelectorAll("input:checked").length === 0) {
      this.showCount();
      return; // nothing ticked: nothing to show
    }
    const url = `/api/logs/stream?tail=200&services=${encodeURIComponent(services)}`;
    const source = new EventSource(url);
    source.addEventListener("error", () => {
      // closed for good after an answer other than 200: reopen (with the last 200 lines again) a little later
      if (source.readyState === EventSource.CLOSED && this.source === source) {
        setTimeout(() => this.source === source && this.connect(), 2000);
      }
    });
    source.addEventListener("lines", (ev) => {
      let lines;
      try {
        lines = JSON.parse(ev.data);
      } catch {
        return;
      }
      this.add(lines);
    });
    this.source = source;
  }

  add(lines) {
    for (const { service, text } of lines) this.pending.push({ service, text, level: levelOf(text) });
    this.received += lines.length;
    if (this.pending.length > MAX_BUFFER) this.pending.splice(0, this.pending.length - MAX_BUFFER);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  matches(line) {
    return LEVELS[line.level] >= this.minLevel && (!this.search || line.text.toLowerCase().includes(this.search));
  }

  lineElement(line) {
    const div = document.createElement("div");
    div.className = `log-line lvl-${line.level}`;
    div.dataset.testid = "log-line";
    div.dataset.service = line.service;
    div.dataset.level = line.level;
    const name = document.createElement("span");
    name.className = `svc svc-c${colourSlot(line.service)}`;
    name.textContent = line.service;
    div.appendChild(name);
    if (this.search) {
      const lower = line.text.toLowerCase();
      let from = 0;
      for (let at = lower.indexOf(this.search); at >= 0; at = lower.indexOf(this.search, from)) {
        div.appendChild(document.createTextNode(line.text.slice(from, at)));
        const mark = document.createElement("mark");
        mark.textContent = line.text.slice(at, at + this.search.length);
        div.appendChild(mark);
        from = at + this.search.length;
      }
      div.appendChild(document.createTextNode(line.text.slice(from)));
    } else {
      div.appendChild(document.createTextNode(line.text));
    }
    return div;
  }

  /** One animation frame's work: the new lines into the buffer and (those that match) into the page. */
  flush() {
    this.frame = 0;
    const batch = this.pending;
    this.pending = [];
    this.buffer.push(...batch);
    if (this.buffer.length > MAX_BUFFER * 1.2) this.buffer.splice(0, this.buffer.length - MAX_BUFFER);
    const shown = batch.filter((l) => this.matches(l)).slice(-MAX_DOM);
    const fragment = document.createDocumentFragment();
    for (const line of shown) fragment.appendChild(this.lineElement(line));
    if (shown.length >= MAX_DOM) this.box.replaceChildren(fragment);
    else this.box.appendChild(fragment);
    this.trim();
    this.showCount();
    if (this.following) this.box.scrollTop = this.box.scrollHeight;
  }

  trim() {
    let extra = this.box.childElementCount - MAX_DOM;
    while (extra-- > 0) this.box.firstElementChild.remove();
  }

  redraw() {
    const fragment = document.createDocumentFragment();
    for (const line of this.buffer.filter((l) => this.matches(l)).slice(-MAX_DOM)) {
      fragment.appendChild(this.lineElement(line));
    }
    this.box.replaceChildren(fragment);
    this.showCount();
    if (this.following) this.box.scrollTop = this.box.scrollHeight;
  }

  showCount() {
    const shown = this.box.childElementCount;
    const filtered = this.search || this.minLevel ? ` of ${Math.min(this.buffer.length, MAX_BUFFER)}` : "";
    this.countEl.textContent = `${shown}${filtered} lines`;
    this.countEl.dataset.received = String(this.received);
  }
}
