// The local trace console. It reads the same X-Ray API the AWS CLI uses (POST /TraceSummaries,
// /Traces, /ServiceGraph) and builds every element with textContent, never HTML from data, so
// names, URLs and annotations from segments are always shown as text.
"use strict";

const REFRESH_MS = 2000;
let selectedTrace = null;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

async function api(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.message || `HTTP ${response.status}`);
  return data;
}

function range() {
  const seconds = Number(document.getElementById("range").value);
  const end = Date.now() / 1000 + 5;
  return { StartTime: end - seconds - 5, EndTime: end };
}

function ms(seconds) {
  return `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1)} ms`;
}

function health(entity) {
  if (entity.fault || entity.HasFault) return "fault";
  if (entity.error || entity.throttle || entity.HasError || entity.HasThrottle) return "error";
  return "ok";
}

async function refresh() {
  try {
    const status = await (await fetch("/status")).json();
    document.getElementById("counts").textContent =
      `${status.traces} traces kept · ${status.accepted} documents received · ${status.rejected} rejected · ${status.evicted} evicted`;
  } catch (_) {
    document.getElementById("counts").textContent = "the stand-in does not answer";
  }
  const filterError = document.getElementById("filter-error");
  const query = range();
  const filter = document.getElementById("filter").value.trim();
  if (filter) query.FilterExpression = filter;
  try {
    const summaries = await api("/TraceSummaries", query);
    filterError.hidden = true;
    showList(summaries.TraceSummaries);
  } catch (error) {
    filterError.textContent = error.message;
    filterError.hidden = false;
  }
  try {
    const graph = await api("/ServiceGraph", range());
    showMap(document.getElementById("service-map"), graphColumns(graph.Services));
  } catch (_) {
    // Shown again at the next refresh.
  }
}

// `#trace=ID` opens that trace, `#newest` the newest one, once the list has loaded: links to a
// trace can be shared, and tests can open one without clicking.
let pendingOpen = location.hash.slice(1);

function showList(summaries) {
  const body = document.querySelector("#trace-list tbody");
  body.replaceChildren();
  document.getElementById("no-traces").hidden = summaries.length > 0;
  summaries.sort((a, b) => b.StartTime - a.StartTime);
  for (const summary of summaries) {
    const row = el("tr");
    row.dataset.traceId = summary.Id;
    if (summary.Id === selectedTrace) row.classList.add("selected");
    const http = summary.Http || {};
    const state = health(summary);
    row.append(
      el("td", null, new Date(summary.StartTime * 1000).toLocaleTimeString()),
      el("td", null, http.HttpMethod || ""),
      el("td", "url", http.HttpURL || ""),
      el("td", state === "ok" ? "" : `status-${state}`, http.HttpStatus || ""),
      el("td", null, ms(summary.Duration)),
      el("td", null, (summary.ServiceIds || []).map((s) => s.Name).join(", ")),
    );
    row.addEventListener("click", () => {
      history.replaceState(null, "", `#trace=${encodeURIComponent(summary.Id)}`);
      openTrace(summary.Id);
    });
    body.append(row);
  }
  if (pendingOpen && summaries.length) {
    const wanted = pendingOpen === "newest"
      ? summaries[0].Id
      : decodeURIComponent(pendingOpen.replace(/^trace=/, ""));
    pendingOpen = "";
    openTrace(wanted);
  }
}

// Service graph -> columns of nodes, by distance from the client.
function graphColumns(services) {
  const byId = new Map(services.map((s) => [s.ReferenceId, s]));
  const depth = new Map();
  const roots = services.filter((s) => s.Root);
  const queue = roots.map((s) => [s.ReferenceId, 0]);
  while (queue.length) {
    const [id, d] = queue.shift();
    if (depth.has(id) && depth.get(id) <= d) continue;
    depth.set(id, d);
    for (const edge of byId.get(id).Edges || []) queue.push([edge.ReferenceId, d + 1]);
  }
  const columns = [];
  for (const service of services) {
    const d = depth.has(service.ReferenceId) ? depth.get(service.ReferenceId) : 0;
    (columns[d] = columns[d] || []).push({
      name: service.Name,
      type: service.Type,
      stats: service.SummaryStatistics,
      state: service.SummaryStatistics
        ? (service.SummaryStatistics.FaultStatistics.TotalCount ? "fault"
          : service.SummaryStatistics.ErrorStatistics.TotalCount ? "error" : "ok")
        : "ok",
    });
  }
  return columns.filter(Boolean);
}

function showMap(container, columns) {
  container.replaceChildren();
  for (const column of columns) {
    const box = el("div", "column");
    for (const node of column) {
      const item = el("div", `node ${node.state}`);
      item.append(el("span", "node-name", node.name), el("span", "node-type", node.type));
      if (node.stats) {
        const total = node.stats.TotalCount;
        const average = total ? node.stats.TotalResponseTime / total : 0;
        item.append(el("span", "node-stats", `${total} · avg ${ms(average)}`));
      }
      box.append(item);
    }
    container.append(box);
  }
}

// One trace's segments -> its map: Client, then segments and the resources they call.
function traceColumns(segments) {
  const callTargets = new Map(); // subsegment id -> segment continuing it
  for (const segment of segments) if (segment.parent_id) callTargets.set(segment.parent_id, segment);
  const columns = [[{ name: "Client", type: "client", state: "ok" }]];
  const placed = new Set();
  const place = (segment, d) => {
    if (placed.has(segment.id)) return;
    placed.add(segment.id);
    (columns[d] = columns[d] || []).push({ name: segment.name, type: segment.origin || "service", state: health(segment) });
    for (const call of calls(segment)) {
      const next = callTargets.get(call.id);
      if (next) {
        place(next, d + 1);
      } else {
        const name = call.namespace === "aws" && call.aws && call.aws.table_name ? call.aws.table_name : call.name;
        const type = call.namespace === "aws" ? "AWS::DynamoDB::Table" : call.namespace;
        const column = (columns[d + 1] = columns[d + 1] || []);
        if (!column.some((n) => n.name === name)) column.push({ name, type, state: health(call) });
      }
    }
  };
  const ids = new Set();
  const collect = (entity) => { ids.add(entity.id); (entity.subsegments || []).forEach(collect); };
  segments.forEach(collect);
  for (const segment of segments) if (!segment.parent_id || !ids.has(segment.parent_id)) place(segment, 1);
  return columns.filter(Boolean);
}

function calls(entity) {
  const out = [];
  for (const child of entity.subsegments || []) {
    if (child.namespace) out.push(child);
    out.push(...calls(child));
  }
  return out;
}

function label(entity) {
  if (entity.namespace === "remote" && entity.http && entity.http.request) {
    return `Remote: ${entity.http.request.method || ""} ${entity.http.request.url || entity.name}`;
  }
  if (entity.namespace === "aws" && entity.aws) {
    return `${entity.aws.operation || entity.name}: ${entity.aws.table_name || ""}`;
  }
  return entity.name;
}

async function openTrace(id) {
  selectedTrace = id;
  document.querySelectorAll("#trace-list tbody tr").forEach((row) =>
    row.classList.toggle("selected", row.dataset.traceId === id));
  const answer = await api("/Traces", { TraceIds: [id] });
  const trace = answer.Traces[0];
  if (!trace) return;
  const segments = trace.Segments.map((s) => JSON.parse(s.Document));
  segments.sort((a, b) => a.start_time - b.start_time);
  document.getElementById("trace").hidden = false;
  document.getElementById("trace-id").textContent = id;
  showMap(document.getElementById("trace-map"), traceColumns(segments));

  const start = Math.min(...segments.map((s) => s.start_time));
  const end = Math.max(...segments.map((s) => s.end_time || s.start_time));
  const span = Math.max(end - start, 1e-6);
  const timeline = document.getElementById("timeline");
  timeline.replaceChildren();
  const addRow = (entity, depth, isSegment) => {
    const row = el("div", isSegment ? "row segment" : "row");
    const name = el("span", "label", label(entity));
    name.style.paddingLeft = `${depth * 1.1}rem`;
    name.title = label(entity);
    const status = entity.http && entity.http.response ? entity.http.response.status : "";
    const duration = (entity.end_time || entity.start_time) - entity.start_time;
    const track = el("div", "track");
    const bar = el("div", `bar ${health(entity)}`);
    bar.style.left = `${((entity.start_time - start) / span) * 100}%`;
    bar.style.width = `${(duration / span) * 100}%`;
    track.append(bar);
    row.append(name, el("span", health(entity) === "ok" ? "" : `status-${health(entity)}`, status), el("span", null, ms(duration)), track);
    timeline.append(row);
    for (const child of entity.subsegments || []) addRow(child, depth + 1, false);
  };
  for (const segment of segments) addRow(segment, 0, true);

  const raw = document.getElementById("raw");
  raw.replaceChildren();
  for (const segment of segments) raw.append(el("pre", null, JSON.stringify(segment, null, 2)));
}

window.addEventListener("load", () => {
  document.getElementById("range").addEventListener("change", refresh);
  document.getElementById("filter").addEventListener("change", refresh);
  refresh();
  setInterval(refresh, REFRESH_MS);
});
