// The designer (api/ui/designer.py serves it): a canvas, a properties form, a JSON view and the version
// history of one process template or step workflow. Every edit goes through `commit`, which keeps the
// undo history and redraws all three views from the one definition; the server validates each change
// (POST …/validate) and its answer is drawn on the nodes and fields its paths name.
import {
  ROLES, addState, changeKind, clone, connectStates, connectSteps, deleteState,
  deleteStep, disconnectStates, disconnectSteps, getAt, graphOf, insertStep, kindOf, lineDiff, mergedGraph,
  newStep, newTemplate, newWorkflow, setAt, stateIndex, states, suggestions, within,
} from "./designer-model.js";

const root = document.getElementById("designer");
const KIND = root.dataset.kind; // "templates" | "workflows"
const CSRF = root.dataset.csrf;
const MAY_SAVE = root.dataset.maySave === "true";
const MAY_START = root.dataset.mayStart === "true";
const NARROW = window.matchMedia("(max-width: 760px)");
const W = 176;
const H = 54;
const SVG = "http://www.w3.org/2000/svg";
const $ = (selector) => root.querySelector(selector);

let name = root.dataset.name; // the stored code or name ("" until saved)
let readOnly = !MAY_SAVE || NARROW.matches;
let def = null; // the definition being edited: exactly the JSON the API stores
let storedJson = null; // the last saved or loaded version, to know whether there is anything to save
let storedVersion = null;
let undoStack = [];
let redoStack = [];
let selected = null; // {node: id} or {edge: [from, to]}
let graph = { nodes: [], edges: [] };
let centres = new Map(); // node id -> {x, y}
const moved = new Map(); // node key -> {x, y}: where a person dragged it (layout keeps it)
let report = null; // the server's last validation report
let reportFor = null; // the JSON it was about
let validationRun = 0;
let comparing = null; // {graph, from, to} while a diff is drawn
let connecting = null; // the node id a keyboard connection starts from
let versions = [];
const tools = new Map();
let toolList = [];
const view = { x: 20, y: 20, k: 1 };

// ------------------------------------------------------------------ talking to the server

async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") { headers["Content-Type"] = "application/json"; headers["X-CSRF-Token"] = CSRF; }
  const answer = await fetch("/ui/designer/api/" + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin",
  });
  const data = await answer.json().catch(() => ({ detail: answer.statusText }));
  if (!answer.ok) {
    const error = new Error(data.detail || "the server refused (" + answer.status + ")");
    error.status = answer.status;
    error.data = data;
    throw error;
  }
  return data;
}

function status(text, tone) {
  const el = $("[data-status]");
  el.textContent = text;
  el.className = "d-status" + (tone ? " " + tone : "");
}

// ------------------------------------------------------------------ edits and history

const json = (value) => JSON.stringify(value, null, 2);

// Apply one edit to a copy of the definition; an edit that changes nothing leaves no history.
function commit(edit, after) {
  if (readOnly || comparing) return undefined;
  const before = JSON.stringify(def);
  const next = clone(def);
  const result = edit(next);
  if (JSON.stringify(next) === before) return result;
  undoStack.push(before);
  if (undoStack.length > 500) undoStack.shift();
  redoStack = [];
  def = next;
  if (after) after(result);
  changed();
  return result;
}

function replaceDefinition(next, note) {
  selected = null; // before the commit, which redraws everything once
  commit((d) => { Object.keys(d).forEach((k) => delete d[k]); Object.assign(d, clone(next)); });
  if (note) status(note);
}

function undo() {
  if (!undoStack.length || readOnly || comparing) return;
  redoStack.push(JSON.stringify(def));
  def = JSON.parse(undoStack.pop());
  keepSelection();
  changed();
}

function redo() {
  if (!redoStack.length || readOnly || comparing) return;
  undoStack.push(JSON.stringify(def));
  def = JSON.parse(redoStack.pop());
  keepSelection();
  changed();
}

function keepSelection() {
  if (selected && selected.node && !graphOf(KIND, def).nodes.some((n) => n.id === selected.node)) selected = null;
}

function changed(options = {}) {
  const shape = graph.nodes.length + ":" + graph.edges.length;
  draw();
  if (shape !== graph.nodes.length + ":" + graph.edges.length && !allInView()) fit();
  renderForm();
  if (!options.keepJson) syncJson();
  updateButtons();
  scheduleValidation();
}

function dirty() {
  return storedJson === null || JSON.stringify(def) !== storedJson;
}

function updateButtons() {
  $("[data-action=undo]").disabled = readOnly || !undoStack.length || Boolean(comparing);
  $("[data-action=redo]").disabled = readOnly || !redoStack.length || Boolean(comparing);
  const valid = report && report.valid && reportFor === JSON.stringify(def);
  const save = $("[data-action=save]");
  save.hidden = !MAY_SAVE || readOnly;
  ["undo", "redo"].forEach((a) => { $(`[data-action=${a}]`).hidden = readOnly; });
  save.disabled = readOnly || Boolean(comparing) || !valid || !dirty();
  save.title = !valid ? "Fix the problems first: a definition with problems cannot be saved"
    : (dirty() ? "Store this as a new version" : "Nothing changed since the last version");
  const tryIt = $("[data-try]");
  const ready = name && !dirty() && MAY_START;
  tryIt.setAttribute("aria-disabled", ready ? "false" : "true");
  tryIt.href = ready ? (KIND === "templates" ? "/ui/instances/new?template=" + encodeURIComponent(name)
    : "/ui/workflows/" + encodeURIComponent(name)) : "#";
  tryIt.title = !MAY_START ? "Your role may not start runs" : (ready ? (KIND === "templates"
    ? "Start an instance of the saved version" : "Execute the saved version") : "Save first: a run uses a saved version");
  $("[data-version]").textContent = storedVersion ? "v" + storedVersion + (dirty() ? " · changed" : "") : "not saved";
  $("[data-title]").textContent = def.name || "New";
  root.querySelectorAll("[data-edit-only]").forEach((el) => { el.hidden = readOnly; });
  $("[data-readonly]").hidden = !readOnly;
}

// ------------------------------------------------------------------ validation by the server

let validationTimer = 0;
function scheduleValidation() {
  clearTimeout(validationTimer);
  status("Checking…"); // the last answer was about the definition before this edit
  validationTimer = setTimeout(validate, 250);
}

async function validate() {
  const run = ++validationRun;
  const sent = JSON.stringify(def);
  status("Checking…");
  try {
    const answer = await call("POST", KIND + "/validate", def);
    if (run !== validationRun) return;
    report = answer;
    reportFor = sent;
    if (answer.valid) status(dirty() ? "Valid: ready to save" : "Valid · saved", "ok");
    else status(answer.problems.length + (answer.problems.length === 1 ? " problem" : " problems") + ": see the marked nodes", "bad");
  } catch (error) {
    if (run !== validationRun) return;
    report = { valid: false, problems: error.data && error.data.problems ? error.data.problems : [] };
    reportFor = sent;
    status("Cannot check: " + error.message, "bad");
  }
  decorate();
  renderProblems();
  markFields();
  updateButtons();
}

// The node a problem's path names: the one whose path is the longest prefix of it.
function nodeOfProblem(field) {
  let best = null;
  graph.nodes.forEach((n) => {
    if (n.path && within(field, n.path) && (!best || n.path.length > best.path.length)) best = n;
  });
  return best;
}

function problemsOf(nodeId) {
  if (!report || comparing) return [];
  return report.problems.filter((p) => { const n = nodeOfProblem(p.field); return n && n.id === nodeId; });
}

function decorate() {
  root.querySelectorAll("g.d-node").forEach((el) => {
    const found = problemsOf(el.dataset.id);
    el.classList.toggle("has-problem", found.length > 0);
    const badge = el.querySelector(".d-badge");
    badge.setAttribute("display", found.length ? "inline" : "none");
    badge.querySelector("text").textContent = String(found.length);
    el.querySelector("title").textContent = el.dataset.label + (found.length ? "\n" + found.map((p) => "• " + p.message).join("\n") : "");
    el.setAttribute("aria-label", el.dataset.label + (found.length ? ", " + found.length + " problem" + (found.length > 1 ? "s" : "") + ": " + found.map((p) => p.message).join("; ") : ""));
  });
}

function renderProblems() {
  const list = $("[data-problems]");
  list.replaceChildren();
  const problems = report ? report.problems : [];
  $("[data-problem-count]").textContent = problems.length ? "(" + problems.length + ")" : "";
  if (!problems.length) {
    list.append(el("li", { class: "meta" }, report ? "No problems." : "Not checked yet."));
    return;
  }
  problems.forEach((p) => {
    const node = nodeOfProblem(p.field);
    const button = el("button", { type: "button", class: "linkish" }, p.field);
    button.addEventListener("click", () => { if (node) { select({ node: node.id }); showTab("properties"); } });
    list.append(el("li", {}, button, el("div", {}, p.message)));
  });
}

// ------------------------------------------------------------------ the canvas

function el(tag, attrs = {}, ...children) {
  const svgTags = ["g", "rect", "text", "path", "circle", "title", "line"];
  const node = svgTags.includes(tag) && attrs.svg !== false ? document.createElementNS(SVG, tag) : document.createElement(tag);
  Object.entries(attrs).forEach(([k, v]) => {
    if (k === "svg" || v === undefined || v === null || v === false) return;
    node.setAttribute(k, v === true ? "" : String(v));
  });
  children.flat().forEach((c) => { if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c)); });
  return node;
}

function layout(g) {
  const d = new window.dagre.graphlib.Graph();
  d.setGraph({ rankdir: g.direction, nodesep: 28, ranksep: g.direction === "LR" ? 64 : 44, marginx: 10, marginy: 10 });
  d.setDefaultEdgeLabel(() => ({}));
  g.nodes.forEach((n) => d.setNode(n.id, { width: W, height: H }));
  g.edges.forEach((e) => { if (e.from !== e.to) d.setEdge(e.from, e.to); });
  window.dagre.layout(d);
  const found = new Map();
  g.nodes.forEach((n) => {
    const at = moved.get(n.key) || d.node(n.id);
    found.set(n.id, { x: at.x, y: at.y });
  });
  // The layout's own routes (around the nodes in between), for edges whose ends nobody moved.
  routes = new Map();
  const pinned = new Set(g.nodes.filter((n) => moved.has(n.key)).map((n) => n.id));
  g.edges.forEach((e) => {
    const edge = e.from !== e.to && d.edge(e.from, e.to);
    if (edge && edge.points && !pinned.has(e.from) && !pinned.has(e.to)) routes.set(e.from + "\n" + e.to, edge.points);
  });
  return found;
}

let routes = new Map();

// A smooth line through the layout's points (Catmull-Rom turned into cubic curves).
function routePath(points) {
  let d = `M${points[0].x},${points[0].y}`;
  for (let i = 0; i < points.length - 1; i++) {
    const p0 = points[Math.max(0, i - 1)]; const p1 = points[i]; const p2 = points[i + 1]; const p3 = points[Math.min(points.length - 1, i + 2)];
    d += ` C${p1.x + (p2.x - p0.x) / 6},${p1.y + (p2.y - p0.y) / 6} ${p2.x - (p3.x - p1.x) / 6},${p2.y - (p3.y - p1.y) / 6} ${p2.x},${p2.y}`;
  }
  return d;
}

function edgePath(a, b, direction) {
  if (direction === "LR") {
    const x1 = a.x + W / 2; const y1 = a.y; const x2 = b.x - W / 2; const y2 = b.y;
    const dx = Math.max(30, Math.abs(x2 - x1) / 2);
    return `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
  }
  const x1 = a.x; const y1 = a.y + H / 2; const x2 = b.x; const y2 = b.y - H / 2;
  const dy = Math.max(24, Math.abs(y2 - y1) / 2);
  return `M${x1},${y1} C${x1},${y1 + dy} ${x2},${y2 - dy} ${x2},${y2}`;
}

function clip(text, size) {
  return text.length > size ? text.slice(0, size - 1) + "…" : text;
}

function draw() {
  graph = comparing ? comparing.graph : graphOf(KIND, def);
  centres = layout(graph);
  const edgesLayer = $("[data-edges]");
  const nodesLayer = $("[data-nodes]");
  edgesLayer.replaceChildren();
  nodesLayer.replaceChildren();
  graph.edges.forEach((e) => {
    const a = centres.get(e.from);
    const b = centres.get(e.to);
    if (!a || !b) return;
    const isSelected = selected && selected.edge && selected.edge[0] === e.from && selected.edge[1] === e.to;
    const group = el("g", { class: ["d-edge", e.kind, e.change || "", isSelected ? "selected" : ""].join(" ").trim(), "data-from": e.from, "data-to": e.to });
    const route = routes.get(e.from + "\n" + e.to);
    const d = route ? routePath(route) : edgePath(a, b, graph.direction);
    group.append(el("path", { class: "hit", d }), el("path", { class: "line", d, "marker-end": "url(#d-arrow)" }));
    if (e.label) {
      const mid = route ? route[Math.floor(route.length / 2)] : { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
      group.append(el("text", { class: "d-edge-label", x: mid.x + 4, y: mid.y }, e.label));
    }
    edgesLayer.append(group);
  });
  graph.nodes.forEach((n) => {
    const at = centres.get(n.id);
    const label = (KIND === "templates" ? "State " : "Step ") + n.title + (n.subtitle ? " (" + n.subtitle + ")" : "")
      + (n.change ? ", " + n.change + (n.changedFields ? ": " + n.changedFields.join(", ") : "") : "");
    const classes = ["d-node", "kind-" + n.kind, n.change || "", selected && selected.node === n.id ? "selected" : "",
      connecting === n.id ? "connecting" : ""];
    const group = el("g", {
      class: classes.join(" ").replace(/\s+/g, " ").trim(), "data-id": n.id, "data-key": n.key, "data-label": label,
      tabindex: 0, role: "button", "aria-label": label, "aria-pressed": selected && selected.node === n.id ? "true" : "false",
      transform: `translate(${at.x - W / 2},${at.y - H / 2})`,
    });
    group.append(
      el("title", {}, label),
      el("rect", { class: "box", width: W, height: H, rx: 9 }),
      el("text", { class: "t1", x: 12, y: 22 }, clip(n.title, 21)),
      el("text", { class: "t2", x: 12, y: 40 }, clip(n.subtitle || (KIND === "templates" ? "" : n.kind), 26)),
    );
    if (n.gate) group.append(el("text", { class: "gate", x: W - 22, y: 22 }, KIND === "templates" ? "⚑" : "↺"));
    const badge = el("g", { class: "d-badge", transform: `translate(${W - 6},-6)` }, el("circle", { r: 10 }), el("text", { y: 4 }, ""));
    badge.setAttribute("display", "none");
    group.append(badge);
    if (!readOnly && !comparing) {
      const port = graph.direction === "LR" ? { cx: W, cy: H / 2 } : { cx: W / 2, cy: H };
      group.append(el("circle", { class: "d-port", r: 7, ...port, "data-port": n.id }));
    }
    nodesLayer.append(group);
  });
  applyView();
  decorate();
}

function applyView() {
  $("[data-viewport]").setAttribute("transform", `translate(${view.x},${view.y}) scale(${view.k})`);
}

function allInView() {
  const box = $("[data-canvas]").getBoundingClientRect();
  return [...centres.values()].every((c) => {
    const x = c.x * view.k + view.x; const y = c.y * view.k + view.y;
    return x - (W / 2) * view.k >= 0 && x + (W / 2) * view.k <= box.width && y - (H / 2) * view.k >= 0 && y + (H / 2) * view.k <= box.height;
  });
}

function fit() {
  const svg = $("[data-canvas]");
  const box = svg.getBoundingClientRect();
  if (!centres.size || !box.width) return;
  const xs = [...centres.values()].map((c) => c.x);
  const ys = [...centres.values()].map((c) => c.y);
  const minX = Math.min(...xs) - W / 2 - 20; const maxX = Math.max(...xs) + W / 2 + 20;
  const minY = Math.min(...ys) - H / 2 - 20; const maxY = Math.max(...ys) + H / 2 + 20;
  view.k = Math.min(1, Math.max(0.25, Math.min(box.width / (maxX - minX), box.height / (maxY - minY))));
  view.x = (box.width - (maxX - minX) * view.k) / 2 - minX * view.k;
  view.y = (box.height - (maxY - minY) * view.k) / 2 - minY * view.k;
  applyView();
}

function zoom(factor, cx, cy) {
  const k = Math.min(2.5, Math.max(0.2, view.k * factor));
  view.x = cx - (cx - view.x) * (k / view.k);
  view.y = cy - (cy - view.y) * (k / view.k);
  view.k = k;
  applyView();
}

// Move one node and the edges that touch it, without redrawing the rest (this is what a drag does).
function place(nodeId, x, y) {
  const n = graph.nodes.find((m) => m.id === nodeId);
  if (!n) return;
  centres.set(nodeId, { x, y });
  moved.set(n.key, { x, y });
  const node = root.querySelector(`g.d-node[data-id="${CSS.escape(nodeId)}"]`);
  node.setAttribute("transform", `translate(${x - W / 2},${y - H / 2})`);
  root.querySelectorAll(`g.d-edge[data-from="${CSS.escape(nodeId)}"], g.d-edge[data-to="${CSS.escape(nodeId)}"]`).forEach((edge) => {
    const d = edgePath(centres.get(edge.dataset.from), centres.get(edge.dataset.to), graph.direction);
    edge.querySelectorAll("path").forEach((p) => p.setAttribute("d", d));
    const text = edge.querySelector("text");
    if (text) {
      const a = centres.get(edge.dataset.from); const b = centres.get(edge.dataset.to);
      text.setAttribute("x", (a.x + b.x) / 2 + 4); text.setAttribute("y", (a.y + b.y) / 2);
    }
  });
}

function toGraph(event) {
  const box = $("[data-canvas]").getBoundingClientRect();
  return { x: (event.clientX - box.left - view.x) / view.k, y: (event.clientY - box.top - view.y) / view.k };
}

function nodeAt(event) {
  const hit = document.elementFromPoint(event.clientX, event.clientY);
  const node = hit && hit.closest && hit.closest("g.d-node");
  return node ? node.dataset.id : null;
}

function installCanvas() {
  const svg = $("[data-canvas]");
  let gesture = null;
  let frame = 0;
  let latest = null;
  svg.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    const port = event.target.closest("[data-port]");
    const node = event.target.closest("g.d-node");
    const edge = event.target.closest("g.d-edge");
    svg.setPointerCapture(event.pointerId);
    if (port) {
      gesture = { type: "connect", from: port.dataset.port };
    } else if (node) {
      const at = centres.get(node.dataset.id);
      const p = toGraph(event);
      gesture = { type: "drag", id: node.dataset.id, dx: p.x - at.x, dy: p.y - at.y, x0: event.clientX, y0: event.clientY, moved: false };
    } else if (edge) {
      gesture = null;
      select({ edge: [edge.dataset.from, edge.dataset.to] });
    } else {
      gesture = { type: "pan", x0: event.clientX - view.x, y0: event.clientY - view.y, click: true, sx: event.clientX, sy: event.clientY };
    }
    event.preventDefault();
  });
  svg.addEventListener("pointermove", (event) => {
    if (!gesture) return;
    latest = event;
    if (frame) return;
    // At most one update a frame, however fast the pointer reports.
    frame = requestAnimationFrame(() => {
      frame = 0;
      const e = latest;
      if (!gesture) return;
      if (gesture.type === "drag") {
        if (!gesture.moved && Math.hypot(e.clientX - gesture.x0, e.clientY - gesture.y0) < 3) return;
        gesture.moved = true;
        const p = toGraph(e);
        place(gesture.id, p.x - gesture.dx, p.y - gesture.dy);
      } else if (gesture.type === "pan") {
        if (Math.hypot(e.clientX - gesture.sx, e.clientY - gesture.sy) > 3) gesture.click = false;
        view.x = e.clientX - gesture.x0;
        view.y = e.clientY - gesture.y0;
        applyView();
      } else if (gesture.type === "connect") {
        const a = centres.get(gesture.from);
        const p = toGraph(e);
        const start = graph.direction === "LR" ? [a.x + W / 2, a.y] : [a.x, a.y + H / 2];
        $("[data-ghost]").setAttribute("d", `M${start[0]},${start[1]} L${p.x},${p.y}`);
      }
    });
  });
  svg.addEventListener("pointerup", (event) => {
    const done = gesture;
    gesture = null;
    $("[data-ghost]").setAttribute("d", "");
    if (!done) return;
    if (done.type === "drag" && !done.moved) select({ node: done.id });
    if (done.type === "connect") {
      const target = nodeAt(event);
      if (target && target !== done.from) connect(done.from, target);
    }
    if (done.type === "pan" && done.click) select(null);
  });
  svg.addEventListener("wheel", (event) => {
    event.preventDefault();
    const box = svg.getBoundingClientRect();
    zoom(event.deltaY < 0 ? 1.1 : 1 / 1.1, event.clientX - box.left, event.clientY - box.top);
  }, { passive: false });
  svg.addEventListener("keydown", (event) => {
    const node = event.target.closest && event.target.closest("g.d-node");
    if (!node) return;
    const id = node.dataset.id;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      if (connecting && connecting !== id) { const from = connecting; connecting = null; connect(from, id); return; }
      select({ node: id });
    } else if (event.key.startsWith("Arrow") && !readOnly && !comparing) {
      event.preventDefault();
      const at = centres.get(id);
      const step = event.shiftKey ? 60 : 20;
      const d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[event.key];
      place(id, at.x + d[0], at.y + d[1]);
    } else if ((event.key === "c" || event.key === "C") && !readOnly && !comparing) {
      connecting = id;
      node.classList.add("connecting");
      status("Connect from " + node.dataset.label + ": move to another node with Tab and press Enter (Esc cancels).");
    } else if ((event.key === "a" || event.key === "A") && !event.ctrlKey && !event.metaKey) {
      // Add after the focused node (the document's handler would add after the selected one).
      event.preventDefault();
      event.stopPropagation();
      select({ node: id });
      addNode(KIND === "templates" ? "state" : "tool");
    } else if (event.key === "Delete" || event.key === "Backspace") {
      event.preventDefault();
      event.stopPropagation();
      select({ node: id });
      deleteSelected();
    } else if (event.key === "Escape") {
      connecting = null;
      root.querySelectorAll(".connecting").forEach((x) => x.classList.remove("connecting"));
      status("");
    }
  });
}

function select(what) {
  selected = what;
  connecting = null;
  root.querySelectorAll("g.d-node").forEach((n) => {
    const on = Boolean(what && what.node === n.dataset.id);
    n.classList.toggle("selected", on);
    n.setAttribute("aria-pressed", on ? "true" : "false");
    n.classList.remove("connecting");
  });
  root.querySelectorAll("g.d-edge").forEach((e) => {
    e.classList.toggle("selected", Boolean(what && what.edge && what.edge[0] === e.dataset.from && what.edge[1] === e.dataset.to));
  });
  renderForm();
}

function focusNode(id) {
  reveal(id);
  const node = root.querySelector(`g.d-node[data-id="${CSS.escape(id)}"]`);
  if (node) node.focus({ preventScroll: true });
}

// Bring a node into view: fit the whole graph when it still reads well, else centre on the node.
function reveal(id) {
  const at = centres.get(id);
  const box = $("[data-canvas]").getBoundingClientRect();
  if (!at || !box.width) return;
  const x = at.x * view.k + view.x;
  const y = at.y * view.k + view.y;
  const margin = 20;
  if (x - (W / 2) * view.k >= margin && x + (W / 2) * view.k <= box.width - margin
    && y - (H / 2) * view.k >= margin && y + (H / 2) * view.k <= box.height - margin) return;
  fit();
  if (view.k < 0.6) {
    view.k = 0.8;
    view.x = box.width / 2 - at.x * view.k;
    view.y = box.height / 2 - at.y * view.k;
    applyView();
  }
}

// ------------------------------------------------------------------ graph edits by kind

function stateIdOf(nodeId) {
  return Number(nodeId.slice("state:".length));
}

function connect(from, to) {
  if (readOnly || comparing) return;
  if (KIND === "templates") {
    commit((d) => connectStates(d, stateIdOf(from), stateIdOf(to)));
    status("Connected: " + from.slice(6) + " → " + to.slice(6));
  } else if (from.slice(0, from.lastIndexOf("[")) !== to.slice(0, to.lastIndexOf("["))) {
    status("A step can wait only for steps of its own list (the same lane, arm or body).", "bad");
  } else {
    commit((d) => connectSteps(d, from, to));
  }
}

function addNode(kind) {
  if (readOnly || comparing) return;
  if (KIND === "templates") {
    const after = selected && selected.node ? stateIdOf(selected.node) : null;
    const id = commit((d) => {
      const created = addState(d, after);
      const state = states(d).find((s) => s.id === created);
      if (kind === "approval") state.approval = { roles: ["approver"] };
      if (kind === "success") { state.terminal_flag = true; state.success = true; state.name = uniqueName(d, "Done"); }
      if (kind === "failure") { state.terminal_flag = true; state.success = false; state.name = uniqueName(d, "Failed"); }
      if (kind === "approval") state.name = uniqueName(d, "Approval");
      return created;
    });
    if (id !== undefined) { select({ node: "state:" + id }); focusNode("state:" + id); }
    return;
  }
  const tool = defaultTool();
  const path = commit((d) => {
    const step = newStep(d, kind === "compensation" ? "tool" : kind, tool);
    if (kind === "compensation") return insertStep(d, "compensations", (d.compensations || []).length, step);
    const at = selected && selected.node && !selected.node.startsWith("compensations");
    if (!at) return insertStep(d, "steps", d.steps.length, step);
    const listPath = selected.node.slice(0, selected.node.lastIndexOf("["));
    const index = Number(selected.node.slice(selected.node.lastIndexOf("[") + 1, -1));
    return insertStep(d, listPath, index + 1, step);
  });
  if (path) { select({ node: path }); focusNode(path); }
}

function addInside(listPath) {
  const path = commit((d) => insertStep(d, listPath, (getAt(d, listPath) || []).length, newStep(d, "tool", defaultTool())));
  if (path) select({ node: path });
}

function uniqueName(d, base) {
  const taken = new Set(states(d).map((s) => s.name));
  if (!taken.has(base)) return base;
  let n = 2;
  while (taken.has(base + " " + n)) n++;
  return base + " " + n;
}

function defaultTool() {
  const easy = toolList.find((t) => t.name === "notify.send") || toolList[0];
  return easy ? easy.name : "notify.send";
}

function deleteSelected() {
  if (readOnly || comparing || !selected) return;
  if (selected.edge) {
    const [from, to] = selected.edge;
    if (KIND === "templates") commit((d) => disconnectStates(d, stateIdOf(from), stateIdOf(to)));
    else if (!from.includes("[") || from.slice(0, from.lastIndexOf("[")) !== to.slice(0, to.lastIndexOf("["))) {
      status("This edge shows where a lane or arm begins; delete the step instead.", "bad");
      return;
    } else commit((d) => disconnectSteps(d, from, to));
  } else if (KIND === "templates") {
    commit((d) => deleteState(d, stateIdOf(selected.node)));
  } else {
    commit((d) => deleteStep(d, selected.node));
  }
  selected = null;
  changed();
  $("[data-canvas]").focus();
}

// ------------------------------------------------------------------ the properties form

const caret = new WeakMap(); // a field -> where its caret was when it was left

function field(label, path, type, options = {}) {
  const value = getAt(def, path);
  const id = "f-" + path.replace(/[^A-Za-z0-9]/g, "_");
  let input;
  if (type === "flag") {
    input = el("input", { type: "checkbox", id, "data-path": path, "data-type": type });
    input.checked = options.invert ? value !== false : Boolean(value);
    if (options.invert) input.dataset.type = "enabled";
  } else if (type === "select" || type === "int-select" || type === "tristate") {
    input = el("select", { id, "data-path": path, "data-type": type });
    options.choices.forEach(([v, text]) => input.append(el("option", { value: v }, text)));
    input.value = value === undefined || value === null ? "" : String(value);
  } else if (type === "textarea" || type === "json") {
    input = el("textarea", { id, rows: type === "json" ? 4 : 3, "data-path": path, "data-type": type });
    input.value = value === undefined ? "" : (typeof value === "string" ? value : JSON.stringify(value, null, 2));
  } else {
    input = el("input", { type: type === "int" || type === "float" ? "number" : "text", id, "data-path": path, "data-type": type,
      step: type === "float" ? "any" : undefined, placeholder: options.placeholder });
    input.value = value === undefined || value === null ? "" : (typeof value === "string" ? value : (type === "csv" && Array.isArray(value) ? value.join(", ") : (type === "param" ? JSON.stringify(value) : String(value))));
  }
  if (options.readonly || readOnly || comparing) input.disabled = true;
  const wrap = el("div", { class: "d-field" + (type === "flag" ? " flag" : ""), "data-field": path });
  const labelEl = el("label", { for: id, class: options.required ? "required" : null }, label);
  if (options.required) input.setAttribute("aria-required", "true");
  if (type === "flag") wrap.append(input, labelEl); else wrap.append(labelEl, input);
  if (options.help) wrap.append(el("div", { class: "meta help" }, options.help));
  if (options.refs && !readOnly && !comparing) wrap.append(refsPicker(input, options.refs));
  return wrap;
}

// The `${…}` references this field's step can see, as buttons: one click puts it in the field.
function refsPicker(input, stepPath) {
  const box = el("details", { class: "d-refs" }, el("summary", {}, "Insert a reference ${…}"));
  input.addEventListener("blur", () => {
    if (input.selectionStart !== null) caret.set(input, [input.selectionStart, input.selectionEnd]);
  });
  box.addEventListener("toggle", () => {
    if (!box.open || box.querySelector("ul")) return;
    const list = el("ul", {});
    suggestions(def, stepPath, tools).forEach((ref) => {
      const button = el("button", { type: "button", class: "chip" }, ref);
      button.addEventListener("click", () => {
        // Into the text where the caret was (or over what was selected) when the field was left.
        const text = input.value;
        const start = caret.has(input) ? caret.get(input)[0] : text.length;
        const end = caret.has(input) ? caret.get(input)[1] : text.length;
        input.value = text.slice(0, start) + ref + text.slice(end);
        caret.set(input, [start + ref.length, start + ref.length]);
        input.dispatchEvent(new Event("change", { bubbles: true }));
      });
      list.append(el("li", {}, button));
    });
    box.append(list);
  });
  return box;
}

function convert(input) {
  const type = input.dataset.type;
  const raw = input.value;
  switch (type) {
    case "flag": return input.checked ? true : undefined;
    case "enabled": return input.checked ? undefined : false;
    case "int": case "int-select": return raw.trim() === "" ? undefined : (Number.isInteger(Number(raw)) ? Number(raw) : raw);
    case "float": return raw.trim() === "" ? undefined : Number(raw);
    case "tristate": return raw === "" ? undefined : raw === "true";
    case "csv": { const items = raw.split(",").map((s) => s.trim()).filter(Boolean); return items.length ? items : undefined; }
    case "json": case "param": {
      if (raw.trim() === "") return undefined;
      if (type === "param" && input.dataset.string === "true") return raw;
      try { return JSON.parse(raw); } catch { return raw; }
    }
    default: return raw;
  }
}

function onFormChange(event) {
  const input = event.target;
  if (!input.dataset || !input.dataset.path) return;
  const path = input.dataset.path;
  if (input.dataset.type === "approval") {
    commit((d) => setAt(d, path, input.checked ? { roles: ["approver"] } : undefined));
  } else if (input.dataset.type === "role") {
    commit((d) => {
      const roles = new Set(getAt(d, path) || []);
      if (input.checked) roles.add(input.value); else roles.delete(input.value);
      setAt(d, path, ROLES.filter((r) => roles.has(r)));
    });
  } else if (input.dataset.type === "dependency") {
    commit((d) => {
      const listPath = path.slice(0, path.lastIndexOf("["));
      const list = getAt(d, listPath);
      const step = getAt(d, path);
      const index = list.indexOf(step);
      let deps = Array.isArray(step.dependencies) ? step.dependencies : (index > 0 ? [list[index - 1].name] : []);
      deps = input.checked ? [...new Set([...deps, input.value])] : deps.filter((x) => x !== input.value);
      step.dependencies = deps;
    });
  } else if (input.dataset.type === "kind") {
    commit((d) => changeKind(d, path, input.value, defaultTool()));
  } else if (input.dataset.path.endsWith(".tool") && KIND === "workflows") {
    commit((d) => { setAt(d, path, input.value); setAt(d, path.replace(/\.tool$/, ".params"), {}); });
  } else if (path.endsWith(".name") && KIND === "workflows" && path !== "name") {
    // A step's new name: the steps that waited for it wait for the new name.
    commit((d) => {
      const old = getAt(d, path);
      setAt(d, path, input.value);
      const listPath = path.slice(0, path.lastIndexOf("["));
      (getAt(d, listPath) || []).forEach((s) => {
        if (Array.isArray(s.dependencies)) s.dependencies = s.dependencies.map((x) => (x === old ? input.value : x));
      });
    });
  } else {
    commit((d) => setAt(d, path, convert(input)));
  }
}

function section(title, ...children) {
  return el("fieldset", { class: "d-section" }, el("legend", {}, title), ...children);
}

function actionButton(text, handler, cls = "secondary") {
  const button = el("button", { type: "button", class: cls }, text);
  button.disabled = readOnly || Boolean(comparing);
  button.addEventListener("click", handler);
  return button;
}

function renderForm() {
  const form = $("[data-form]");
  form.replaceChildren();
  if (comparing) {
    form.append(el("p", { class: "meta" }, "Comparing versions: the canvas shows v" + comparing.from + " → v" + comparing.to + ". Green: added, red: removed, amber: changed."));
    const node = selected && selected.node && graph.nodes.find((n) => n.id === selected.node);
    if (node && node.changedFields) form.append(el("p", {}, node.title + " changed: " + node.changedFields.join(", ")));
    return;
  }
  if (selected && selected.edge) {
    form.append(el("h2", {}, KIND === "templates" ? "Transition" : "Order"),
      el("p", { class: "meta" }, labelOf(selected.edge[0]) + " → " + labelOf(selected.edge[1])),
      actionButton("Delete this edge", deleteSelected, "danger"));
    return;
  }
  const node = selected && selected.node && graph.nodes.find((n) => n.id === selected.node);
  if (!node) {
    if (KIND === "templates") templateForm(form); else workflowForm(form);
  } else if (KIND === "templates") {
    stateForm(form, node);
  } else {
    stepForm(form, node);
  }
  markFields();
}

function labelOf(nodeId) {
  const n = graph.nodes.find((m) => m.id === nodeId);
  return n ? n.title : nodeId;
}

function templateForm(form) {
  const stored = Boolean(name);
  form.append(
    el("h2", {}, "Template"),
    el("p", { class: "meta" }, "Select a state to edit it; add states from the palette."),
    field("Code", "code", "text", { required: true, help: stored ? "A new code saves a new template." : "Upper case, e.g. LEAD_TO_PAYMENT." }),
    field("Name", "name", "text", { required: true }),
    field("Industry sector", "industry_sector", "text", { required: true }),
    field("Owner role (alerted when an instance stays too long)", "workflow_graph.owner_role", "select", { choices: ROLES.map((r) => [r, r]) }),
    field("Graph version label", "workflow_graph.workflow_version", "text"),
    field("Expected days until done", "avg_duration_days", "int"),
    field("The default template of its sector", "default_workflow_flag", "flag"),
  );
}

function stateForm(form, node) {
  const index = stateIndex(def, stateIdOf(node.id));
  const state = states(def)[index];
  const p = "workflow_graph.states[" + index + "]";
  const others = states(def).filter((s) => s.id !== state.id);
  const stateChoices = [["", "—"], ...others.map((s) => [String(s.id), s.name])];
  form.append(el("h2", {}, "State " + state.id), nodeProblems(node));
  form.append(
    field("Name", p + ".name", "text", { required: true }),
    field("Description", p + ".descr", "textarea"),
    field("Entity it creates or updates", p + ".entity_name", "text", { placeholder: "e.g. Invoice" }),
    field("Entity status", p + ".entity_status", "text", { placeholder: "e.g. Sent" }),
    field("Expected days in this state", p + ".avg_duration_days", "float"),
    field("Ends the process (terminal)", p + ".terminal_flag", "flag"),
  );
  if (state.terminal_flag) {
    form.append(field("Outcome", p + ".success", "tristate", { choices: [["", "—"], ["true", "success"], ["false", "failure"]] }));
  }
  const next = el("ul", { class: "d-links" });
  (state.child_ids || []).forEach((c) => {
    const target = others.find((s) => s.id === c);
    next.append(el("li", {}, target ? target.name : "#" + c, " ", actionButton("Remove", () => commit((d) => disconnectStates(d, state.id, c)))));
  });
  const choose = el("select", { "aria-label": "A state to move to" });
  others.filter((s) => !(state.child_ids || []).includes(s.id)).forEach((s) => choose.append(el("option", { value: s.id }, s.name)));
  choose.disabled = readOnly;
  form.append(section("Next states", next, el("div", { class: "d-inline" }, choose,
    actionButton("Add transition", () => { if (choose.value) connect(node.id, "state:" + choose.value); }))));
  const gate = el("input", { type: "checkbox", id: "f-gate", "data-path": p + ".approval", "data-type": "approval" });
  gate.checked = Boolean(state.approval);
  gate.disabled = readOnly;
  const gateBox = section("Approval gate", el("div", { class: "d-field flag", "data-field": p + ".approval" }, gate, el("label", { for: "f-gate" }, "Leaving this state needs an approval")));
  if (state.approval) {
    const roles = el("div", { class: "d-field", "data-field": p + ".approval.roles" }, el("div", { class: "meta" }, "Who may approve"));
    ROLES.forEach((r) => {
      const box = el("input", { type: "checkbox", id: "f-role-" + r, value: r, "data-path": p + ".approval.roles", "data-type": "role" });
      box.checked = (state.approval.roles || []).includes(r);
      box.disabled = readOnly;
      roles.append(el("span", { class: "d-check" }, box, el("label", { for: "f-role-" + r }, r)));
    });
    const childChoices = [["", "—"], ...others.filter((s) => (state.child_ids || []).includes(s.id)).map((s) => [String(s.id), s.name])];
    gateBox.append(
      roles,
      field("Decide within (seconds)", p + ".approval.timeout_seconds", "int"),
      field("When no one decides in time", p + ".approval.on_timeout", "select", { choices: [["escalate", "escalate"], ["default_path", "take the default path"]] }),
      field("Default path (a next state)", p + ".approval.default_to_state_id", "int-select", { choices: childChoices }),
      field("On rejection move to", p + ".approval.reject_to_state_id", "int-select", { choices: stateChoices }),
      field("Escalate to (names or roles, comma separated)", p + ".approval.escalate_to", "csv"),
    );
  }
  form.append(gateBox, actionButton("Delete state", deleteSelected, "danger"));
}

function workflowForm(form) {
  form.append(
    el("h2", {}, "Workflow"),
    el("p", { class: "meta" }, "Select a step to edit it; add steps from the palette (after the selected step)."),
    field("Name", "name", "text", { required: true, help: name ? "A new name saves a new workflow." : "lower_snake_case" }),
    field("Description", "description", "textarea"),
    field("Time limit of a run (ms)", "config.timeoutMs", "int"),
    field("Retries of a step without its own", "config.maxRetries", "int"),
    field("Token budget of its agent calls", "config.tokenBudget", "int"),
    field("Continue after a failed step", "config.continueOnError", "flag"),
    field("Enabled (accepts new executions)", "enabled", "flag", { invert: true }),
  );
}

// Problems of the node itself (not of one of its fields): filled in by markFields.
function nodeProblems(node) {
  return el("div", { class: "warn", role: "alert", "data-node-problems": node.path });
}

function stepForm(form, node) {
  const p = node.path;
  const step = getAt(def, p);
  const kind = kindOf(step);
  const listPath = node.listPath;
  const siblings = (getAt(def, listPath) || []).filter((s) => s !== step);
  form.append(el("h2", {}, (node.kind === "compensation" ? "Compensation " : "Step ") + (step.name || "")), nodeProblems(node));
  const kindSelect = el("select", { id: "f-kind", "data-path": p, "data-type": "kind" });
  [["tool", "a tool call"], ["parallel", "parallel lanes"], ["branch", "a branch (if / else)"], ["foreach", "for each item"],
    ["wait_event", "wait for an event"], ["human_task", "a task for a person"]].forEach(([v, t]) => kindSelect.append(el("option", { value: v }, t)));
  kindSelect.value = kind;
  kindSelect.disabled = readOnly;
  form.append(field("Name", p + ".name", "text", { required: true }),
    el("div", { class: "d-field" }, el("label", { for: "f-kind" }, "Kind"), kindSelect));
  if (kind === "tool") {
    const choices = toolList.map((t) => [t.name, t.name + (t.source && t.source !== "trellis" ? " (" + t.source + ")" : "")]);
    if (step.tool && !tools.has(step.tool)) choices.unshift([step.tool, step.tool + " (unknown)"]);
    form.append(field("Tool", p + ".tool", "select", { choices }));
    const tool = tools.get(step.tool);
    if (tool && tool.description) form.append(el("p", { class: "meta" }, tool.description));
    const schema = (tool && tool.params) || {};
    const props = schema.properties || {};
    const required = new Set(schema.required || []);
    const params = section("Parameters");
    Object.entries(props).slice(0, 40).forEach(([key, prop]) => {
      params.append(paramField(p, key, prop, required.has(key)));
    });
    Object.keys(step.params || {}).filter((k) => !(k in props)).forEach((key) => params.append(paramField(p, key, {}, false)));
    if (!Object.keys(props).length && !Object.keys(step.params || {}).length) params.append(el("p", { class: "meta" }, "This tool takes no parameters."));
    form.append(params);
  } else if (kind === "parallel") {
    const lanes = section("Lanes (run at the same time)");
    (step.parallel.branches || []).forEach((b, i) => {
      lanes.append(field("Lane " + (i + 1) + " name", p + ".parallel.branches[" + i + "].name", "text"),
        el("div", { class: "d-inline" },
          actionButton("Add a step to this lane", () => addInside(p + ".parallel.branches[" + i + "].steps")),
          actionButton("Remove lane", () => commit((d) => getAt(d, p).parallel.branches.splice(i, 1)), "danger")));
    });
    lanes.append(actionButton("Add a lane", () => commit((d) => {
      const lanesNow = getAt(d, p).parallel.branches;
      const taken = new Set(lanesNow.map((b) => b.name));
      let n = lanesNow.length;
      let laneName = String.fromCharCode(97 + (n % 26));
      while (taken.has(laneName)) laneName = "lane_" + (++n);
      lanesNow.push({ name: laneName, steps: [newStep(d, "tool", defaultTool())] });
    })));
    form.append(lanes);
  } else if (kind === "branch") {
    form.append(field("Condition (CEL, or ${ref} for truthy)", p + ".branch.condition", "text", { required: true, refs: p }),
      el("div", { class: "d-inline" }, actionButton("Add a step to then", () => addInside(p + ".branch.then")),
        actionButton("Add a step to else", () => addInside(p + ".branch.else"))));
  } else if (kind === "foreach") {
    form.append(field("Items (a reference to a list)", p + ".foreach.items", "text", { required: true, refs: p }),
      field("Each item is called", p + ".foreach.as", "text"),
      field("At the same time (concurrency)", p + ".foreach.concurrency", "int"),
      field("At most items", p + ".foreach.maxItems", "int"),
      actionButton("Add a step to the body", () => addInside(p + ".foreach.steps")));
  } else if (kind === "wait_event") {
    form.append(field("Event source", p + ".wait_event.source", "text", { required: true, help: "Declared in TRELLIS_EVENT_SOURCES" }),
      field("Key the event must carry", p + ".wait_event.key", "text", { required: true, refs: p }),
      field("Condition over the event (CEL)", p + ".wait_event.condition", "text"),
      field("Give up after (ms)", p + ".wait_event.timeoutMs", "int"));
  } else if (kind === "human_task") {
    const assignee = field("Assignee (a person or a role)", p + ".human_task.assignee", "text", { required: true });
    form.append(assignee,
      field("Title", p + ".human_task.title", "text", { refs: p }),
      field("Description", p + ".human_task.description", "textarea", { refs: p }),
      field("Remind after (ms)", p + ".human_task.timeoutMs", "int"));
  }
  const more = section("Flow",
    field("Save the output as", p + ".assign", "text", { placeholder: step.name }),
    field("Run only if", p + ".if", "text", { refs: p, placeholder: "${input.flag} or a CEL expression" }),
    field("Time limit of an attempt (ms)", p + ".timeoutMs", "int"),
    field("Attempts", p + ".retry.maxAttempts", "int"),
    field("When it fails", p + ".onError.strategy", "select", { choices: [["", "fail the run"], ["retry", "retry"], ["compensate", "compensate"], ["escalate", "escalate"], ["skip", "skip it"]] }),
  );
  if (step.onError && step.onError.strategy === "compensate") {
    const names = (def.compensations || []).map((s) => [s.name, s.name]);
    more.append(field("Compensation step", p + ".onError.compensationStep", "select", { choices: [["", "—"], ...names] }));
  }
  if (step.onError && step.onError.strategy === "escalate") more.append(field("Escalate to", p + ".onError.escalationTarget", "text"));
  if (siblings.length) {
    const list = getAt(def, listPath);
    const index = list.indexOf(step);
    const deps = Array.isArray(step.dependencies) ? step.dependencies : (index > 0 ? [list[index - 1].name] : []);
    const box = el("div", { class: "d-field", "data-field": p + ".dependencies" },
      el("div", { class: "meta" }, Array.isArray(step.dependencies) ? "Runs after" : "Runs after (by default, the step before it)"));
    siblings.forEach((s) => {
      const id = "f-dep-" + s.name;
      const check = el("input", { type: "checkbox", id, value: s.name, "data-path": p, "data-type": "dependency" });
      check.checked = deps.includes(s.name);
      check.disabled = readOnly;
      box.append(el("span", { class: "d-check" }, check, el("label", { for: id }, s.name)));
    });
    more.append(box);
  }
  form.append(more, actionButton("Delete step", deleteSelected, "danger"));
}

function paramField(stepPath, key, prop, required) {
  const path = stepPath + ".params." + key;
  const type = Array.isArray(prop.type) ? prop.type.find((t) => t !== "null") : prop.type;
  let wrap;
  if (Array.isArray(prop.enum)) {
    wrap = field(key, path, "select", { required, choices: [["", "—"], ...prop.enum.map((v) => [String(v), String(v)])] });
  } else if (type === "array" && prop.items && (prop.items.type === "string" || prop.items.$ref)) {
    wrap = field(key + " (comma separated)", path, "csv", { required });
  } else if (type === "object" || type === "array") {
    wrap = field(key + " (JSON)", path, "json", { required });
  } else {
    wrap = field(key, path, "param", { required, refs: stepPath, placeholder: type ? type : "" });
    const input = wrap.querySelector("input");
    const value = getAt(def, path);
    if (type === "string" || typeof value === "string") { input.dataset.string = type === "string" ? "true" : "false"; }
    if (typeof value === "string") input.value = value;
  }
  if (prop.description) wrap.insertBefore(el("div", { class: "meta help" }, prop.description), wrap.children[2] || null);
  return wrap;
}

// Each field a problem's path names gets the message under it.
function markFields() {
  const form = $("[data-form]");
  form.querySelectorAll(".d-field-problem").forEach((x) => x.remove());
  form.querySelectorAll("[aria-invalid]").forEach((x) => x.removeAttribute("aria-invalid"));
  const own = form.querySelector("[data-node-problems]");
  if (own) own.textContent = report && !comparing ? report.problems.filter((p) => p.field === own.dataset.nodeProblems).map((p) => p.message).join("; ") : "";
  if (!report || comparing) return;
  const wraps = [...form.querySelectorAll("[data-field]")];
  report.problems.forEach((p) => {
    let best = null;
    wraps.forEach((w) => { if (within(p.field, w.dataset.field) && (!best || w.dataset.field.length > best.dataset.field.length)) best = w; });
    if (!best) return;
    const input = best.querySelector("input, select, textarea");
    if (input) input.setAttribute("aria-invalid", "true");
    best.append(el("div", { class: "d-field-problem", role: "alert" }, p.message));
  });
}

// ------------------------------------------------------------------ the palette

function renderPalette() {
  const palette = $("[data-palette]");
  const items = KIND === "templates"
    ? [["state", "State", "A step of the process"], ["approval", "Approval state", "Leaving it needs an approval"],
      ["success", "Success end", "A terminal state that succeeds"], ["failure", "Failure end", "A terminal state that fails"]]
    : [["tool", "Tool step", "Call a tool (MCP tools too)"], ["parallel", "Parallel", "Lanes that run at the same time"],
      ["branch", "Branch", "If / else"], ["foreach", "For each", "The same steps for each item of a list"],
      ["wait_event", "Wait for event", "Until an event with a key arrives"], ["human_task", "Human task", "A task in someone's inbox"],
      ["compensation", "Compensation", "A step that undoes work when a later one fails"]];
  palette.replaceChildren(el("div", { class: "kind" }, "Add"));
  items.forEach(([kind, label, help]) => {
    const button = el("button", { type: "button", class: "secondary d-add", "data-add": kind, title: help + " (after the selected one)" }, label);
    button.addEventListener("click", () => addNode(kind));
    palette.append(button);
  });
  palette.append(el("p", { class: "meta" }, "Keys: A adds, C connects, Delete removes, arrows move, Ctrl+Z undoes."));
}

// ------------------------------------------------------------------ JSON view

function syncJson() {
  const area = $("[data-json]");
  if (document.activeElement === area) return;
  area.value = json(def);
  area.readOnly = readOnly || Boolean(comparing);
  $("[data-json-error]").textContent = "";
}

function installJson() {
  const area = $("[data-json]");
  let timer = 0;
  area.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      let parsed;
      try {
        parsed = JSON.parse(area.value);
      } catch (error) {
        $("[data-json-error]").textContent = "Not JSON yet: " + error.message;
        return;
      }
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
        $("[data-json-error]").textContent = "A definition is a JSON object.";
        return;
      }
      $("[data-json-error]").textContent = "";
      const before = JSON.stringify(def);
      if (JSON.stringify(parsed) === before) return;
      undoStack.push(before);
      redoStack = [];
      def = parsed;
      keepSelection();
      changed({ keepJson: true });
    }, 400);
  });
  area.addEventListener("blur", () => syncJson());
}

// ------------------------------------------------------------------ versions

async function loadVersions() {
  const box = $("[data-versions]");
  if (!name) { box.replaceChildren(el("p", { class: "meta" }, "Not saved yet.")); $("[data-compare]").hidden = true; return; }
  try {
    versions = await call("GET", KIND + "/" + encodeURIComponent(name) + "/versions");
  } catch (error) {
    box.replaceChildren(el("p", { class: "warn" }, error.message));
    return;
  }
  versions.sort((a, b) => b.version - a.version);
  const table = el("table", { class: "d-versions" }, el("thead", {}, el("tr", {}, el("th", {}, "Version"), el("th", {}, "Saved"), el("th", {}, "Running"), el("th", {}, ""))));
  const body = el("tbody", {});
  versions.forEach((v, i) => {
    const when = new Date(v.created_ts).toLocaleString();
    const actions = el("td", {});
    const open = el("button", { type: "button", class: "secondary small", "data-open-version": v.version }, "Open");
    open.addEventListener("click", () => openVersion(v.version));
    actions.append(open);
    if (MAY_SAVE && i > 0) {
      const restore = el("button", { type: "button", class: "secondary small", "data-restore-version": v.version }, "Restore");
      restore.addEventListener("click", () => restoreVersion(v.version));
      actions.append(" ", restore);
    }
    body.append(el("tr", {}, el("td", {}, "v" + v.version + (v.version === storedVersion ? " (open)" : "")),
      el("td", {}, when, el("div", { class: "meta" }, v.created_by || "")), el("td", {}, String(v.running ?? 0)), actions));
  });
  table.append(body);
  box.replaceChildren(el("p", { class: "meta" }, "Running: instances or executions still open on each version."), table);
  const from = $("[data-compare-from]");
  const to = $("[data-compare-to]");
  [from, to].forEach((s) => s.replaceChildren(...versions.map((v) => el("option", { value: v.version }, "v" + v.version))));
  to.value = String(versions[0].version);
  from.value = String((versions[1] || versions[0]).version);
  $("[data-compare]").hidden = versions.length < 2;
}

function fromStored(answer) {
  if (KIND === "templates") {
    const out = { code: answer.code, name: answer.name, industry_sector: answer.industry_sector, workflow_graph: answer.workflow_graph };
    if (answer.default_workflow_flag) out.default_workflow_flag = true;
    return out;
  }
  const out = clone(answer.definition);
  if (answer.enabled === false) out.enabled = false;
  return out;
}

async function fetchVersion(version) {
  const query = version ? "?version=" + version : "";
  return call("GET", KIND + "/" + encodeURIComponent(name) + query);
}

async function openVersion(version) {
  try {
    const answer = await fetchVersion(version);
    endCompare();
    if (readOnly) { def = fromStored(answer); storedJson = JSON.stringify(def); storedVersion = answer.version; changed(); }
    else replaceDefinition(fromStored(answer), "Opened version " + version + ": saving stores it as a new version.");
  } catch (error) { status(error.message, "bad"); }
}

async function restoreVersion(version) {
  try {
    const answer = await call("POST", KIND + "/" + encodeURIComponent(name) + "/versions/" + version + "/restore");
    def = fromStored(answer);
    storedJson = JSON.stringify(def);
    storedVersion = answer.version;
    undoStack = []; redoStack = [];
    endCompare();
    changed();
    await loadVersions();
    status("Version " + version + " restored as version " + answer.version + ".", "ok");
  } catch (error) { status(error.message, "bad"); }
}

async function compareVersions() {
  const from = Number($("[data-compare-from]").value);
  const to = Number($("[data-compare-to]").value);
  if (from === to) { status("Choose two different versions.", "bad"); return; }
  try {
    const base = KIND + "/" + encodeURIComponent(name);
    const [diff, older, newer] = await Promise.all([
      call("GET", base + "/diff?from=" + from + "&to=" + to), fetchVersion(from), fetchVersion(to),
    ]);
    const a = fromStored(older);
    const b = fromStored(newer);
    comparing = { graph: mergedGraph(KIND, a, b, diff), from, to };
    selected = null;
    const counts = [["added", diff.added_nodes.length], ["removed", diff.removed_nodes.length], ["changed", diff.changed_nodes.length]]
      .map(([k, n]) => n + " " + k).join(", ");
    const banner = $("[data-banner]");
    const back = el("button", { type: "button", class: "secondary small" }, "Back to editing");
    back.addEventListener("click", () => { endCompare(); changed(); });
    banner.replaceChildren("Comparing v" + from + " → v" + to + " (" + (KIND === "templates" ? "states" : "steps") + ": " + counts
      + "; transitions: " + diff.added_edges.length + " added, " + diff.removed_edges.length + " removed) ", back);
    banner.hidden = false;
    const pre = $("[data-jsondiff]");
    pre.replaceChildren(...collapse(lineDiff(json(a), json(b))).map(([mark, line]) => el("span", { class: mark === "+" ? "add" : (mark === "-" ? "del" : (mark === "…" ? "gap" : "same")), svg: false }, mark + " " + line + "\n")));
    pre.hidden = false;
    draw();
    renderForm();
    updateButtons();
    fit();
  } catch (error) { status(error.message, "bad"); }
}

// Unchanged runs longer than six lines shrink to their first and last three.
function collapse(lines) {
  const out = [];
  let run = [];
  const flush = () => {
    if (run.length > 6) out.push(...run.slice(0, 3), ["…", (run.length - 6) + " unchanged lines"], ...run.slice(-3));
    else out.push(...run);
    run = [];
  };
  lines.forEach((l) => { if (l[0] === " ") run.push(l); else { flush(); out.push(l); } });
  flush();
  return out;
}

function endCompare() {
  comparing = null;
  $("[data-banner]").hidden = true;
  $("[data-jsondiff]").hidden = true;
}

// ------------------------------------------------------------------ save, export, import, curl

async function save() {
  if (readOnly || !report || !report.valid) return;
  const button = $("[data-action=save]");
  button.disabled = true;
  status("Saving…");
  try {
    const isNew = KIND === "workflows" && (!name || def.name !== name);
    const answer = await call("POST", KIND + (isNew ? "?new=true" : ""), def);
    name = KIND === "templates" ? answer.code : answer.name;
    storedVersion = answer.version;
    def = fromStored(answer);
    storedJson = JSON.stringify(def);
    history.replaceState(null, "", "/ui/designer/" + KIND + "/" + encodeURIComponent(name));
    changed();
    await loadVersions();
    status("Saved as version " + answer.version + ".", "ok");
  } catch (error) {
    if (error.data && error.data.problems) { report = { valid: false, problems: error.data.problems }; reportFor = JSON.stringify(def); decorate(); renderProblems(); markFields(); }
    status("Not saved: " + error.message, "bad");
    updateButtons();
  }
}

function exportJson() {
  const blob = new Blob([json(def) + "\n"], { type: "application/json" });
  const link = el("a", { href: URL.createObjectURL(blob), download: (KIND === "templates" ? def.code : def.name) + ".json", svg: false });
  document.body.append(link);
  link.click();
  setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
  status("Exported " + link.download + ".");
}

async function importJson(file) {
  if (!file) return;
  if (file.size > 1_000_000) { status("That file is over 1 MB: not a definition.", "bad"); return; }
  try {
    const parsed = JSON.parse(await file.text());
    const fits = KIND === "templates" ? parsed && parsed.workflow_graph : parsed && Array.isArray(parsed.steps);
    if (!fits) { status("That file is not a " + (KIND === "templates" ? "process template (no workflow_graph)" : "step workflow (no steps)") + ".", "bad"); return; }
    endCompare();
    replaceDefinition(parsed, "Imported " + file.name + ": drawn and checked.");
    moved.clear();
    draw();
    fit();
  } catch (error) {
    status("Cannot import " + file.name + ": " + error.message, "bad");
  }
}

function curlCommand() {
  const origin = window.location.origin;
  let method = "POST";
  let url = origin + (KIND === "templates" ? "/api/v1/workflow-template" : "/api/v1/workflows");
  if (KIND === "workflows" && name && def.name === name) { method = "PUT"; url += "/" + name; }
  return `curl -X ${method} '${url}' \\\n  -H "Authorization: Bearer $TRELLIS_API_KEY" \\\n  -H 'Content-Type: application/json' \\\n  --data-binary @- <<'JSON'\n${json(def)}\nJSON\n`;
}

// ------------------------------------------------------------------ dry run

// Run the definition being edited against recorded runs of the saved version (the server does it: a
// template's recorded moves replayed on the new graph; a workflow run in shadow with effects served from
// records), and list per run what would change.
async function dryRun() {
  const box = $("[data-dry-result]");
  if (!name) { box.replaceChildren(el("p", { class: "meta" }, "Save a first version: a dry run compares with its recorded runs.")); return; }
  const lastN = Number($("[data-dry-n]").value) || 10;
  let body;
  if (KIND === "templates") {
    body = { workflow_graph: def.workflow_graph, last_n: lastN };
  } else {
    let stubs;
    try { stubs = JSON.parse($("[data-dry-stubs]").value || "{}"); } catch (error) {
      box.replaceChildren(el("p", { class: "warn" }, "The stubs are not valid JSON: " + error.message)); return;
    }
    body = { definition: def, last_n: lastN, stubs };
  }
  box.replaceChildren(el("p", { class: "meta" }, "Running…"));
  let answer;
  try {
    answer = await call("POST", KIND + "/" + encodeURIComponent(name) + "/dry-run", body);
  } catch (error) {
    box.replaceChildren(el("p", { class: "warn" }, error.message));
    return;
  }
  box.replaceChildren(...(KIND === "templates" ? templateDryRun(answer) : workflowDryRun(answer)));
}

function templateDryRun(answer) {
  const totals = Object.entries(answer.totals).map(([k, v]) => v + " " + k.replace("_", " ")).join(", ");
  const rows = answer.instances.filter((i) => i.verdict !== "same").map((i) =>
    el("li", { "data-dry-instance": i.verdict }, el("strong", {}, i.verdict.replace("_", " ")), " ",
      el("a", { href: "/ui/instances/" + i.instance_id }, i.instance_id.slice(0, 8)), ": " + (i.reason || "")));
  return [
    el("p", {}, "Compared with v" + answer.compared_version + ": " + (totals || "no instance yet") + "."),
    rows.length ? el("ul", { class: "d-problems" }, ...rows) : el("p", { class: "ok" }, "No instance would be refused or end differently."),
  ];
}

function workflowDryRun(answer) {
  const runs = answer.runs.map((r) => {
    const notes = [];
    if (r.status_changed) notes.push("status " + r.recorded_status + " → " + r.dry_status);
    if (r.output_changed) notes.push("output changes");
    if (r.steps_added.length) notes.push("adds " + r.steps_added.join(", "));
    if (r.steps_removed.length) notes.push("drops " + r.steps_removed.join(", "));
    if (r.skipped_differently.length) notes.push("skips differently " + r.skipped_differently.join(", "));
    r.branches_differently.forEach((b) => notes.push(b.path + " takes " + b.now + " (was " + b.recorded + ")"));
    if (r.needs_stub.length) notes.push("needs a stub for " + r.needs_stub.join(", "));
    return el("li", { "data-dry-run": r.execution_id },
      el("a", { href: "/ui/executions/" + r.execution_id }, r.execution_id.slice(0, 8)), ": " + (notes.join("; ") || "the same"));
  });
  return [
    el("p", {}, answer.runs.length + (answer.runs.length === 1 ? " run" : " runs") + " of v" + answer.compared_version + " compared; " + answer.changed + " would change."),
    runs.length ? el("ul", { class: "d-problems" }, ...runs) : el("p", { class: "meta" }, "No ended run to compare with yet."),
  ];
}

// ------------------------------------------------------------------ tabs, keys, start

function showTab(tab) {
  root.querySelectorAll("[data-tab]").forEach((b) => b.setAttribute("aria-selected", b.dataset.tab === tab ? "true" : "false"));
  root.querySelectorAll("[data-panel]").forEach((p) => { p.hidden = p.dataset.panel !== tab; });
}

function installControls() {
  root.querySelectorAll("[data-tab]").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  const actions = {
    undo, redo, save, fit,
    layout: () => { moved.clear(); draw(); fit(); },
    export: exportJson,
    compare: compareVersions,
    "dry-run": dryRun,
    curl: () => { $("[data-curl]").value = curlCommand(); $("[data-curl-dialog]").showModal(); },
    "copy-curl": async () => {
      const area = $("[data-curl]");
      try { await navigator.clipboard.writeText(area.value); status("The curl command is on the clipboard.", "ok"); } catch {
        area.select(); status("Select the command and copy it (the clipboard is not available here).");
      }
    },
    "close-dialog": () => $("[data-curl-dialog]").close(),
    "zoom-in": () => { const b = $("[data-canvas]").getBoundingClientRect(); zoom(1.2, b.width / 2, b.height / 2); },
    "zoom-out": () => { const b = $("[data-canvas]").getBoundingClientRect(); zoom(1 / 1.2, b.width / 2, b.height / 2); },
  };
  root.querySelectorAll("[data-action]").forEach((b) => b.addEventListener("click", () => actions[b.dataset.action]()));
  $("[data-try]").addEventListener("click", (event) => { if ($("[data-try]").getAttribute("aria-disabled") === "true") event.preventDefault(); });
  $("[data-import]").addEventListener("change", (event) => { importJson(event.target.files[0]); event.target.value = ""; });
  $("[data-form]").addEventListener("change", onFormChange);
  $("[data-form]").addEventListener("submit", (event) => event.preventDefault());
  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest && event.target.closest("input, textarea, select, dialog");
    if (typing) return;
    const mod = event.ctrlKey || event.metaKey;
    if (mod && (event.key === "z" || event.key === "Z")) { event.preventDefault(); if (event.shiftKey) redo(); else undo(); }
    else if (mod && (event.key === "y" || event.key === "Y")) { event.preventDefault(); redo(); }
    else if ((event.key === "Delete" || event.key === "Backspace") && selected) { event.preventDefault(); deleteSelected(); }
    else if ((event.key === "a" || event.key === "A") && !mod && root.contains(event.target)) { event.preventDefault(); addNode(KIND === "templates" ? "state" : "tool"); }
  });
  window.addEventListener("beforeunload", (event) => { if (!readOnly && dirty() && undoStack.length) event.preventDefault(); });
  NARROW.addEventListener("change", () => { readOnly = !MAY_SAVE || NARROW.matches; changed(); renderPalette(); });
}

async function start() {
  installCanvas();
  installControls();
  installJson();
  renderPalette();
  try {
    if (KIND === "workflows") {
      const schema = await call("GET", "workflows/schema");
      toolList = schema.tools;
      toolList.forEach((t) => tools.set(t.name, t));
    }
    if (name) {
      const answer = await fetchVersion(null);
      def = fromStored(answer);
      storedJson = JSON.stringify(def);
      storedVersion = answer.version;
      name = KIND === "templates" ? answer.code : answer.name;
    } else {
      def = KIND === "templates" ? newTemplate() : newWorkflow(defaultTool());
    }
  } catch (error) {
    def = KIND === "templates" ? newTemplate() : newWorkflow(defaultTool());
    status(error.message, "bad");
    if (error.status === 404) name = "";
  }
  changed();
  fit();
  await loadVersions();
  root.dataset.ready = "true";
}

start();
