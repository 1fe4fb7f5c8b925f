// The dependency graph: a layered layout (dependencies first: left, or top in a narrow window) computed here,
// drawn as SVG boxes and arrows, coloured by state and health. Owns the #graph element only; it never fetches.

const SVG = "http://www.w3.org/2000/svg";
const BOX_W = 156;
const BOX_H = 58;
const GAP_LAYER = 84; // between layers (the arrows run here)
const GAP_ROW = 22; // between boxes of one layer
const PAD = 14;

/** The colour family of a service row: ok, warn, bad or idle (the text beside always says the state too). */
export function tone(row) {
  const { state, health, exit_code: code } = row;
  if (state === "unhealthy" || state === "fatal" || state === "blocked" || health === "unhealthy") return "bad";
  if (state === "exited") return code === 0 || code === null ? "idle" : "bad";
  if (state === "stopped" || state === "created") return "idle";
  if (state === "starting" || state === "restarting" || health === "starting") return "warn";
  if (state === "healthy" || state === "running") return "ok";
  return "warn";
}

/** The short state text shown in a box: "healthy", "exited 137", "starting (waiting)". */
export function stateText(row) {
  if (row.state === "exited") return row.exit_code === null ? "exited" : `exited ${row.exit_code}`;
  if (row.update) return `${row.state}, updating`;
  if (row.state === "running" && row.health !== "none") return `running, ${row.health}`;
  return row.state;
}

/** Layers by longest path from a service with no dependency; within a layer, ordered by the mean position of
 * the dependencies (fewer crossings), then by name. Edges to services not in the list are ignored; a cycle
 * (the loader refuses them) cannot hang this: depth is capped by the number of services. */
export function layout(names, edges) {
  const known = new Set(names);
  const deps = new Map(names.map((n) => [n, []]));
  for (const e of edges) if (known.has(e.from) && known.has(e.to) && e.from !== e.to) deps.get(e.from).push(e.to);
  const depth = new Map();
  const visit = (name, seen) => {
    if (depth.has(name)) return depth.get(name);
    if (seen.size > names.length || seen.has(name)) return 0;
    seen.add(name);
    let d = 0;
    for (const dep of deps.get(name)) d = Math.max(d, visit(dep, seen) + 1);
    seen.delete(name);
    depth.set(name, d);
    return d;
  };
  for (const n of names) visit(n, new Set());
  const layers = [];
  for (const n of [...names].sort()) {
    const d = depth.get(n);
    (layers[d] ??= []).push(n);
  }
  const position = new Map();
  layers.forEach((layer, i) => {
    if (i > 0) {
      const mean = (n) => {
        const ps = deps.get(n).map((d) => position.get(d)).filter((p) => p !== undefined);
        return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : 0;
      };
      layer.sort((a, b) => mean(a) - mean(b) || a.localeCompare(b));
    }
    layer.forEach((n, j) => position.set(n, j - (layer.length - 1) / 2));
  });
  return layers.filter(Boolean);
}

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

function truncate(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export class Graph {
  /** @param {HTMLElement} host  @param {(name: string) => void} onSelect */
  constructor(host, onSelect) {
    this.host = host;
    this.onSelect = onSelect;
    this.key = "";
    this.nodes = new Map();
    this.edgeEls = new Map();
    this.selected = null;
    this.vertical = false;
    this.last = null;
    new ResizeObserver(() => {
      const vertical = this.host.clientWidth < 560;
      if (vertical !== this.vertical && this.last) {
        this.vertical = vertical;
        this.key = "";
        this.update(this.last.services, this.last.edges);
      }
    }).observe(host);
  }

  /** Draws (or, with the same services and edges, only recolours) the graph. */
  update(services, edges) {
    this.last = { services, edges };
    this.vertical = this.host.clientWidth > 0 && this.host.clientWidth < 560;
    const names = services.map((s) => s.service);
    const shown = edges.filter((e) => names.includes(e.from) && names.includes(e.to));
    const key = `${this.vertical}|${[...names].sort().join(",")}|${shown.map((e) => `${e.from}>${e.to}`).join(",")}`;
    if (key !== this.key) this.build(names, shown, key);
    for (const row of services) this.paintNode(row);
    for (const e of shown) this.paintEdge(e);
  }

  select(name) {
    this.selected = name;
    for (const [n, g] of this.nodes) g.classList.toggle("selected", n === name);
  }

  build(names, edges, key) {
    this.key = key;
    this.host.replaceChildren();
    this.nodes.clear();
    this.edgeEls.clear();
    if (!names.length) {
      const p = document.createElement("p");
      p.className = "empty";
      p.textContent = "This instance has no services.";
      this.host.appendChild(p);
      return;
    }
    const layers = layout(names, edges);
    const widest = Math.max(...layers.map((l) => l.length));
    // positions on two axes: "main" runs across the layers (x, or y when vertical), "cross" along one layer
    const mainSize = this.vertical ? BOX_H : BOX_W;
    const crossSize = this.vertical ? BOX_W : BOX_H;
    const place = new Map(); // name -> {layer, main, cross} (top-left corner)
    const occupied = []; // per layer: [lowest cross, highest cross + size]
    layers.forEach((layer, i) => {
      layer.forEach((name, j) => {
        const offset = (widest - layer.length) / 2 + j;
        place.set(name, { layer: i, main: i * (mainSize + GAP_LAYER), cross: offset * (crossSize + GAP_ROW) });
      });
      const crosses = layer.map((n) => place.get(n).cross);
      occupied[i] = [Math.min(...crosses), Math.max(...crosses) + crossSize];
    });
    const point = (main, cross) => (this.vertical ? `${cross},${main}` : `${main},${cross}`);
    let lowCross = 0;
    let highCross = widest * (crossSize + GAP_ROW) - GAP_ROW;
    let lanesBelow = 0;
    let lanesAbove = 0;
    const geometry = edges.map((e) => {
      // drawn from the dependency (e.to) to the dependent (e.from): readiness flows along the arrow
      const a = place.get(e.to);
      const b = place.get(e.from);
      const m1 = a.main + mainSize;
      const c1 = a.cross + crossSize / 2;
      const m2 = b.main - 2;
      const c2 = b.cross + crossSize / 2;
      const bend = GAP_LAYER / 2;
      if (b.layer - a.layer <= 1) {
        const d = `M${point(m1, c1)} C${point(m1 + bend, c1)} ${point(m2 - bend, c2)} ${point(m2, c2)}`;
        return { e, d, mid: [(m1 + m2) / 2, (c1 + c2) / 2] };
      }
      // a long edge goes round the boxes of the layers between, in a lane beside them
      const between = occupied.slice(a.layer + 1, b.layer);
      const lo = Math.min(...between.map((r) => r[0])) - GAP_ROW / 2;
      const hi = Math.max(...between.map((r) => r[1])) + GAP_ROW / 2;
      const straight = (c1 + c2) / 2;
      let lane = straight;
      if (straight > lo && straight < hi) {
        lane = straight - lo < hi - straight ? lo - 7 * lanesAbove++ : hi + 7 * lanesBelow++;
      }
      lowCross = Math.min(lowCross, lane - 6);
      highCross = Math.max(highCross, lane + 6);
      const p1 = m1 + GAP_LAYER;
      const p2 = b.main - GAP_LAYER;
      const d =
        `M${point(m1, c1)} C${point(m1 + bend, c1)} ${point(m1 + bend, lane)} ${point(p1, lane)} ` +
        `L${point(p2, lane)} C${point(p2 + bend, lane)} ${point(m2 - bend, c2)} ${point(m2, c2)}`;
      return { e, d, mid: [(p1 + p2) / 2, lane] };
    });
    const mainLength = layers.length * (mainSize + GAP_LAYER) - GAP_LAYER;
    const [minX, minY, w, h] = this.vertical
      ? [lowCross - PAD, -PAD, highCross - lowCross + 2 * PAD, mainLength + 2 * PAD]
      : [-PAD, lowCross - PAD, mainLength + 2 * PAD, highCross - lowCross + 2 * PAD];
    const svg = el("svg", {
      viewBox: `${minX} ${minY} ${w} ${h}`,
      width: w,
      height: h,
      role: "group",
      "aria-label": "dependency graph of the services",
      class: "graph-svg",
    });
    const defs = el("defs", {}, svg);
    for (const kind of ["plain", "blocking"]) {
      const marker = el(
        "marker",
        {
          id: `arrow-${kind}`,
          viewBox: "0 0 10 10",
          refX: 9,
          refY: 5,
          markerUnits: "userSpaceOnUse",
          markerWidth: kind === "blocking" ? 14 : 9,
          markerHeight: kind === "blocking" ? 14 : 9,
          orient: "auto",
        },
        defs,
      );
      el("path", { d: "M0,0 L10,5 L0,10 z", class: `arrowhead ${kind}` }, marker);
    }
    const edgeLayer = el("g", { class: "edges" }, svg);
    for (const { e, d, mid } of geometry) {
      const g = el("g", { class: "edge", "data-testid": `edge-${e.from}-${e.to}` }, edgeLayer);
      const title = el("title", {}, g);
      const path = el("path", { d, class: "edge-line" }, g);
      const [lx, ly] = this.vertical ? [mid[1] + 6, mid[0]] : [mid[0], mid[1] - 6];
      const label = el("text", { x: lx, y: ly, class: "edge-label", "text-anchor": this.vertical ? "start" : "middle" }, g);
      this.edgeEls.set(`${e.from}>${e.to}`, { g, title, label, path });
    }
    const nodeLayer = el("g", { class: "nodes" }, svg);
    for (const name of names) {
      const { main, cross } = place.get(name);
      const [x, y] = this.vertical ? [cross, main] : [main, cross];
      const g = el(
        "g",
        { class: "node", "data-testid": `service-${name}`, "data-service": name, tabindex: 0, role: "button", transform: `translate(${x},${y})` },
        nodeLayer,
      );
      const title = el("title", {}, g);
      el("rect", { width: BOX_W, height: BOX_H, rx: 8, class: "box" }, g);
      el("rect", { width: 6, height: BOX_H, rx: 3, class: "stripe" }, g);
      const label = el("text", { x: 16, y: 23, class: "node-name" }, g);
      label.textContent = truncate(name, 18);
      const state = el("text", { x: 16, y: 43, class: "node-state", "data-testid": `service-${name}-state` }, g);
      const activate = () => this.onSelect(name);
      g.addEventListener("click", activate);
      g.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          activate();
        }
      });
      this.nodes.set(name, Object.assign(g, { _title: title, _state: state }));
    }
    this.host.replaceChildren(svg);
    this.select(this.selected);
  }

  paintNode(row) {
    const g = this.nodes.get(row.service);
    if (!g) return;
    const t = tone(row);
    const text = stateText(row);
    g.setAttribute("class", `node tone-${t}${row.service === this.selected ? " selected" : ""}`);
    g.setAttribute("data-state", row.state);
    g.setAttribute("data-health", row.health);
    g.setAttribute("data-restarts", String(row.restarts));
    g.setAttribute("aria-label", `${row.service}: ${text}, health ${row.health}. Show details.`);
    const restarts = row.restarts ? ` · ${row.restarts}↻` : "";
    g._state.textContent = truncate(text, 20 - restarts.length) + restarts;
    g._title.textContent = `${row.service}: ${text}${row.reason ? `\n${row.reason}` : ""}`;
  }

  paintEdge(e) {
    const found = this.edgeEls.get(`${e.from}>${e.to}`);
    if (!found) return;
    found.g.setAttribute("class", `edge${e.blocking ? " blocking" : ""}`);
    found.g.setAttribute("data-blocking", String(Boolean(e.blocking)));
    found.path.setAttribute("marker-end", `url(#arrow-${e.blocking ? "blocking" : "plain"})`);
    const why = e.reason || (e.blocking ? `${e.from} waits for ${e.to}` : "");
    found.title.textContent = `${e.from} depends on ${e.to} (${e.condition})${why ? `: ${why}` : ""}`;
    found.label.textContent = e.blocking ? "blocks" : "";
  }
}
