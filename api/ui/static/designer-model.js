// The designer's model: a definition (a process template or a step workflow, exactly the JSON the API
// stores) seen as a graph of nodes and edges, and every edit as a function from one definition to the
// next. Nothing here touches the page, so the canvas, the forms and the JSON view share one truth.
"use strict";

export const ROLES = ["operator", "approver", "admin", "viewer"];
export const CONSTRUCTS = ["parallel", "branch", "foreach", "wait_event", "human_task"];

export function clone(value) {
  return JSON.parse(JSON.stringify(value));
}

// ------------------------------------------------------------------ paths: "steps[2].params.url"

export function parsePath(path) {
  const parts = [];
  const re = /([^.[\]]+)|\[(\d+)\]/g;
  let m;
  while ((m = re.exec(path)) !== null) {
    parts.push(m[2] !== undefined ? Number(m[2]) : m[1]);
  }
  return parts;
}

export function getAt(root, path) {
  let value = root;
  for (const part of parsePath(path)) {
    if (value === null || typeof value !== "object") return undefined;
    value = value[part];
  }
  return value;
}

// Set a value (undefined or "" removes an optional field), creating objects on the way.
export function setAt(root, path, value) {
  const parts = parsePath(path);
  let target = root;
  for (let i = 0; i < parts.length - 1; i++) {
    if (target[parts[i]] === undefined || target[parts[i]] === null) {
      target[parts[i]] = typeof parts[i + 1] === "number" ? [] : {};
    }
    target = target[parts[i]];
  }
  const last = parts[parts.length - 1];
  if (value === undefined || value === "") {
    if (Array.isArray(target)) target.splice(last, 1);
    else delete target[last];
  } else {
    target[last] = value;
  }
}

// Whether a problem at `field` concerns the thing at `path` (the path itself or something inside it).
export function within(field, path) {
  return field === path || field.startsWith(path + ".") || field.startsWith(path + "[");
}

// ------------------------------------------------------------------ process templates

export function newTemplate() {
  return {
    code: "NEW_PROCESS",
    name: "New process",
    industry_sector: "general",
    workflow_graph: {
      workflow_version: "1.0",
      owner_role: "operator",
      states: [{ id: 1, name: "Start", parent_ids: [], child_ids: [] }],
    },
  };
}

export function states(def) {
  return (def.workflow_graph && Array.isArray(def.workflow_graph.states)) ? def.workflow_graph.states : [];
}

function templateGraph(def) {
  const list = states(def);
  const ids = new Set(list.map((s) => s.id));
  const nodes = list.map((s, i) => {
    let kind = "state";
    if (s.terminal_flag) kind = s.success === false ? "failure" : "success";
    const bits = [];
    if (s.entity_name) bits.push(s.entity_name + (s.entity_status ? " · " + s.entity_status : ""));
    if (s.approval) bits.push("approval");
    return {
      id: "state:" + s.id,
      key: String(s.id),
      path: "workflow_graph.states[" + i + "]",
      title: s.name || "(no name)",
      subtitle: bits.join(" · ") || (s.terminal_flag ? (s.success === false ? "ends: failure" : "ends: success") : ""),
      kind,
      gate: Boolean(s.approval),
    };
  });
  const edges = [];
  list.forEach((s) => (s.child_ids || []).forEach((c) => {
    if (ids.has(c)) edges.push({ from: "state:" + s.id, to: "state:" + c, key: s.id + "->" + c, kind: "transition" });
  }));
  return { nodes, edges, direction: "LR" };
}

export function stateIndex(def, id) {
  return states(def).findIndex((s) => s.id === id);
}

export function addState(def, afterId) {
  const list = states(def);
  const id = list.reduce((m, s) => Math.max(m, Number(s.id) || 0), 0) + 1;
  const names = new Set(list.map((s) => s.name));
  let n = list.length + 1;
  while (names.has("State " + n)) n++;
  const state = { id, name: "State " + n, parent_ids: [], child_ids: [] };
  list.push(state);
  const from = list.find((s) => s.id === afterId);
  if (from && !from.terminal_flag) connectStates(def, from.id, id);
  return id;
}

export function connectStates(def, fromId, toId) {
  if (fromId === toId) return false;
  const list = states(def);
  const a = list.find((s) => s.id === fromId);
  const b = list.find((s) => s.id === toId);
  if (!a || !b) return false;
  a.child_ids = a.child_ids || [];
  b.parent_ids = b.parent_ids || [];
  if (a.child_ids.includes(toId)) return false;
  a.child_ids.push(toId);
  if (!b.parent_ids.includes(fromId)) b.parent_ids.push(fromId);
  return true;
}

export function disconnectStates(def, fromId, toId) {
  const list = states(def);
  const a = list.find((s) => s.id === fromId);
  const b = list.find((s) => s.id === toId);
  if (a) a.child_ids = (a.child_ids || []).filter((c) => c !== toId);
  if (b) b.parent_ids = (b.parent_ids || []).filter((p) => p !== fromId);
  if (a && a.approval) {
    if (a.approval.default_to_state_id === toId) delete a.approval.default_to_state_id;
  }
}

export function deleteState(def, id) {
  const graph = def.workflow_graph;
  graph.states = states(def).filter((s) => s.id !== id);
  graph.states.forEach((s) => {
    s.child_ids = (s.child_ids || []).filter((c) => c !== id);
    s.parent_ids = (s.parent_ids || []).filter((p) => p !== id);
    if (s.approval) {
      if (s.approval.default_to_state_id === id) delete s.approval.default_to_state_id;
      if (s.approval.reject_to_state_id === id) delete s.approval.reject_to_state_id;
    }
  });
}

// ------------------------------------------------------------------ step workflows

export function newWorkflow(tool) {
  return { name: "new_workflow", description: "", steps: [newStep({ steps: [] }, "tool", tool)], config: {} };
}

// Every step name in the definition (names are unique across the whole workflow).
function allNames(def) {
  const names = new Set();
  walkSteps(def, (step) => names.add(step.name));
  return names;
}

export function freshName(def, base) {
  const names = allNames(def);
  let n = 1;
  while (names.has(base + "_" + n)) n++;
  return base + "_" + n;
}

// A new step of a kind, named so no other step has the name: a tool step calls `tool`.
export function newStep(def, kind, tool) {
  const name = freshName(def, kind === "tool" ? "step" : kind);
  const taken = allNames(def);
  taken.add(name);
  const inner = () => {
    let n = 1;
    while (taken.has("step_" + n)) n++;
    taken.add("step_" + n);
    return { name: "step_" + n, tool, params: {} };
  };
  switch (kind) {
    case "parallel":
      return { name, parallel: { branches: [{ name: "a", steps: [inner()] }, { name: "b", steps: [inner()] }] } };
    case "branch":
      return { name, branch: { condition: "true", then: [inner()], else: [] } };
    case "foreach":
      return { name, foreach: { items: "${input.items}", as: "item", steps: [inner()] } };
    case "wait_event":
      return { name, wait_event: { source: "", key: "${input.key}" } };
    case "human_task":
      return { name, human_task: { assignee: "operator", title: "Review" } };
    default:
      return { name, tool, params: {} };
  }
}

export function kindOf(step) {
  if (step && step.tool !== undefined) return "tool";
  return CONSTRUCTS.find((k) => step && step[k] !== undefined) || "tool";
}

// The step lists inside a step, each with its path suffix and the name the diff gives its prefix.
export function childLists(step, path) {
  const found = [];
  if (step.parallel && Array.isArray(step.parallel.branches)) {
    step.parallel.branches.forEach((b, i) => {
      found.push({ path: path + ".parallel.branches[" + i + "].steps", label: b.name || "lane " + (i + 1), diff: b.name || "?" });
    });
  }
  if (step.branch) {
    found.push({ path: path + ".branch.then", label: "then", diff: "then" });
    found.push({ path: path + ".branch.else", label: "else", diff: "else" });
  }
  if (step.foreach) {
    found.push({ path: path + ".foreach.steps", label: "each " + (step.foreach.as || "item"), diff: null });
  }
  return found;
}

// Visit every step, depth first in written order: (step, path, list path, index, diff key).
export function walkSteps(def, visit) {
  function list(steps, listPath, prefix) {
    if (!Array.isArray(steps)) return;
    steps.forEach((step, i) => {
      if (!step || typeof step !== "object") return;
      const path = listPath + "[" + i + "]";
      const key = prefix + (step.name || "?");
      visit(step, path, listPath, i, key);
      childLists(step, path).forEach((c) => {
        list(getAt(def, c.path), c.path, c.diff === null ? key + "." : key + "." + c.diff + ".");
      });
    });
  }
  list(def.steps, "steps", "");
  list(def.compensations, "compensations", "compensations.");
}

// The positions a step waits for, transitively: its dependencies, or the step before it.
function ancestors(steps, index) {
  const position = new Map(steps.map((s, i) => [s.name, i]));
  const found = new Set();
  const todo = [index];
  while (todo.length) {
    const current = steps[todo.pop()];
    const i = position.get(current.name);
    const direct = Array.isArray(current.dependencies)
      ? current.dependencies.filter((d) => position.has(d)).map((d) => position.get(d))
      : (i > 0 ? [i - 1] : []);
    direct.forEach((p) => {
      if (!found.has(p) && p !== index) { found.add(p); todo.push(p); }
    });
  }
  return found;
}

// What a step's output leaves visible after it: itself, and the steps nested in it (not a foreach's).
function produced(step) {
  const names = [step.name, step.assign || step.name];
  if (!step.foreach) {
    [step.parallel && step.parallel.branches && step.parallel.branches.flatMap((b) => b.steps || []),
      step.branch && [...(step.branch.then || []), ...(step.branch.else || [])]]
      .filter(Boolean).flat().forEach((inner) => names.push(...produced(inner)));
  }
  return names;
}

// The variables a step at `path` may refer to (the server decides; this is what the form suggests).
export function visibleAt(def, path) {
  const parts = parsePath(path);
  let seen = ["input", "context"];
  let steps = null;
  let listPath = "";
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (typeof part === "number") {
      const at = part;
      if (Array.isArray(steps)) {
        ancestors(steps, at).forEach((a) => { seen = seen.concat(produced(steps[a])); });
        const step = steps[at];
        if (step && step.foreach && i < parts.length - 1) {
          seen = seen.concat([step.foreach.as || "item", (step.foreach.as || "item") + "_index"]);
        }
      }
      listPath += "[" + part + "]";
    } else {
      listPath += (listPath ? "." : "") + part;
      const value = getAt(def, listPath);
      steps = Array.isArray(value) ? value : null;
    }
  }
  return [...new Set(seen)];
}

// References a field of the step at `path` may use: input and context fields already used in the
// definition, and each visible step's variable with its tool's output fields.
export function suggestions(def, path, tools) {
  const used = new Set();
  JSON.stringify(def).replace(/\$\{((?:input|context)\.[A-Za-z0-9_.]+)\}/g, (_, ref) => { used.add(ref); return ""; });
  const found = [...used].sort().map((r) => "${" + r + "}");
  const byVariable = new Map();
  walkSteps(def, (step) => byVariable.set(step.assign || step.name, step));
  for (const name of visibleAt(def, path)) {
    if (name === "input" || name === "context") continue;
    found.push("${" + name + "}");
    const step = byVariable.get(name);
    const tool = step && step.tool && tools.get(step.tool);
    const props = tool && tool.output && tool.output.properties;
    if (props) Object.keys(props).slice(0, 12).forEach((p) => found.push("${" + name + "." + p + "}"));
    if (step && step.human_task) ["approved", "comment", "actor"].forEach((p) => found.push("${" + name + "." + p + "}"));
  }
  if (!found.some((r) => r.startsWith("${input."))) found.unshift("${input.id}");
  return [...new Set(found)].slice(0, 60);
}

function workflowGraph(def) {
  const nodes = [];
  const edges = [];
  const byPath = new Map();
  walkSteps(def, (step, path, listPath, index, key) => {
    const kind = kindOf(step);
    const detail = {
      tool: step.tool || "",
      parallel: "parallel · " + ((step.parallel && step.parallel.branches) || []).length + " lanes",
      branch: "if " + ((step.branch && step.branch.condition) || ""),
      foreach: "for each " + ((step.foreach && step.foreach.items) || ""),
      wait_event: "wait for " + ((step.wait_event && step.wait_event.source) || "an event"),
      human_task: "task for " + ((step.human_task && step.human_task.assignee) || "?"),
    }[kind];
    const node = {
      id: path, key, path, listPath, index,
      title: step.name || "(no name)",
      subtitle: detail.length > 40 ? detail.slice(0, 39) + "…" : detail,
      kind: listPath === "compensations" || listPath.startsWith("compensations[") ? "compensation" : kind,
      gate: Boolean(step.onError),
    };
    nodes.push(node);
    byPath.set(path, node);
  });
  // Within a list: a step follows the one before it, or its dependencies.
  const lists = new Map();
  nodes.forEach((n) => { if (!lists.has(n.listPath)) lists.set(n.listPath, []); lists.get(n.listPath).push(n); });
  lists.forEach((members, listPath) => {
    const steps = getAt(def, listPath) || [];
    const byName = new Map(members.map((n) => [steps[n.index].name, n]));
    members.forEach((n) => {
      const deps = steps[n.index].dependencies;
      if (Array.isArray(deps)) {
        deps.forEach((d) => {
          const from = byName.get(d);
          if (from) edges.push({ from: from.id, to: n.id, key: from.key + "->" + n.key, kind: "dependency" });
        });
      } else if (n.index > 0) {
        const from = members.find((m) => m.index === n.index - 1);
        if (from) edges.push({ from: from.id, to: n.id, key: from.key + "->" + n.key, kind: "sequence" });
      }
    });
  });
  // A construct opens into its lanes, arms or body: an edge to each list's first steps.
  nodes.forEach((n) => {
    const step = getAt(def, n.path);
    childLists(step, n.path).forEach((c) => {
      (lists.get(c.path) || []).forEach((m) => {
        const deps = (getAt(def, c.path)[m.index] || {}).dependencies;
        if ((Array.isArray(deps) && deps.length === 0) || (!Array.isArray(deps) && m.index === 0)) {
          edges.push({ from: n.id, to: m.id, key: n.key + "=>" + m.key, kind: "nested", label: c.label });
        }
      });
    });
  });
  return { nodes, edges, direction: "TB" };
}

export function graphOf(kind, def) {
  return kind === "templates" ? templateGraph(def) : workflowGraph(def);
}

export function insertStep(def, listPath, index, step) {
  let list = getAt(def, listPath);
  if (!Array.isArray(list)) { setAt(def, listPath, []); list = getAt(def, listPath); }
  list.splice(index, 0, step);
  return listPath + "[" + index + "]";
}

export function deleteStep(def, path) {
  const parts = parsePath(path);
  const index = parts.pop();
  const listPath = path.slice(0, path.lastIndexOf("["));
  const list = getAt(def, listPath);
  if (!Array.isArray(list)) return;
  const [removed] = list.splice(index, 1);
  list.forEach((s) => {
    if (Array.isArray(s.dependencies)) s.dependencies = s.dependencies.filter((d) => d !== removed.name);
  });
  if (listPath === "compensations" && list.length === 0) delete def.compensations;
}

// A dependency edge within one list: `to` waits for `from` (keeping what it waited for before).
export function connectSteps(def, fromPath, toPath) {
  const listPath = fromPath.slice(0, fromPath.lastIndexOf("["));
  if (listPath !== toPath.slice(0, toPath.lastIndexOf("[")) || fromPath === toPath) return false;
  const list = getAt(def, listPath);
  const from = getAt(def, fromPath);
  const to = getAt(def, toPath);
  const index = list.indexOf(to);
  if (!Array.isArray(to.dependencies)) to.dependencies = index > 0 ? [list[index - 1].name] : [];
  if (to.dependencies.includes(from.name)) return false;
  to.dependencies.push(from.name);
  return true;
}

export function disconnectSteps(def, fromPath, toPath) {
  const list = getAt(def, toPath.slice(0, toPath.lastIndexOf("[")));
  const from = getAt(def, fromPath);
  const to = getAt(def, toPath);
  if (!from || !to || !Array.isArray(list)) return;
  if (Array.isArray(to.dependencies)) to.dependencies = to.dependencies.filter((d) => d !== from.name);
  else to.dependencies = []; // it followed the step before: now it starts at once
}

// Change a step's kind, keeping its name and its place in the flow.
export function changeKind(def, path, kind, tool) {
  const step = getAt(def, path);
  const fresh = newStep(def, kind, tool);
  const keep = {};
  ["name", "assign", "if", "dependencies", "onError", "retry", "timeoutMs"].forEach((k) => {
    if (step[k] !== undefined) keep[k] = step[k];
  });
  Object.keys(step).forEach((k) => delete step[k]);
  Object.assign(step, fresh, keep);
}

// ------------------------------------------------------------------ comparing versions

// One graph holding both versions: the newer one's nodes and edges, plus what only the older one had,
// each marked added, removed or changed as the server's diff says.
export function mergedGraph(kind, older, newer, diff) {
  const a = graphOf(kind, older);
  const b = graphOf(kind, newer);
  const added = new Set(diff.added_nodes);
  const removed = new Set(diff.removed_nodes);
  const changed = new Map(diff.changed_nodes.map((c) => [c.id, c.fields]));
  const addedEdges = new Set(diff.added_edges.map(([x, y]) => x + "->" + y));
  const removedEdges = new Set(diff.removed_edges.map(([x, y]) => x + "->" + y));
  const mark = (n) => {
    const out = { ...n, id: "k:" + n.key };
    if (added.has(n.key)) out.change = "added";
    else if (removed.has(n.key)) out.change = "removed";
    else if (changed.has(n.key)) { out.change = "changed"; out.changedFields = changed.get(n.key); }
    return out;
  };
  const keyOf = (graph) => new Map(graph.nodes.map((n) => [n.id, n.key]));
  const keysA = keyOf(a);
  const keysB = keyOf(b);
  const nodes = b.nodes.map(mark);
  a.nodes.filter((n) => removed.has(n.key)).forEach((n) => nodes.push(mark(n)));
  const edges = [];
  const seen = new Set();
  const addEdge = (e, keys) => {
    const from = keys.get(e.from);
    const to = keys.get(e.to);
    const k = from + "->" + to;
    if (seen.has(k + e.kind)) return;
    seen.add(k + e.kind);
    let change;
    if (addedEdges.has(k) || added.has(to)) change = "added";
    if (removedEdges.has(k) || removed.has(to) || removed.has(from)) change = "removed";
    edges.push({ ...e, from: "k:" + from, to: "k:" + to, change });
  };
  b.edges.forEach((e) => addEdge(e, keysB));
  a.edges.forEach((e) => {
    const k = keysA.get(e.from) + "->" + keysA.get(e.to);
    if (removedEdges.has(k) || removed.has(keysA.get(e.to))) addEdge(e, keysA);
  });
  return { nodes, edges, direction: b.direction };
}

// A line diff of two texts (longest common subsequence), as [mark, line] with mark " ", "-" or "+".
export function lineDiff(before, after) {
  const a = before.split("\n");
  const b = after.split("\n");
  if (a.length * b.length > 4_000_000) {
    return [...a.map((l) => ["-", l]), ...b.map((l) => ["+", l])];
  }
  const rows = a.length + 1;
  const cols = b.length + 1;
  const table = new Uint32Array(rows * cols);
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      table[i * cols + j] = a[i] === b[j] ? table[(i + 1) * cols + j + 1] + 1
        : Math.max(table[(i + 1) * cols + j], table[i * cols + j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) { out.push([" ", a[i]]); i++; j++; }
    else if (table[(i + 1) * cols + j] >= table[i * cols + j + 1]) { out.push(["-", a[i]]); i++; }
    else { out.push(["+", b[j]]); j++; }
  }
  while (i < a.length) out.push(["-", a[i++]]);
  while (j < b.length) out.push(["+", b[j++]]);
  return out;
}
