// The local trace console. It reads the same X-Ray API the AWS CLI uses (POST /TraceSummaries,
// /Traces, /ServiceGraph), and the stand-in's own GET /console/logs (a trace's log lines) and
// GET /console/metrics (the panel per service). It builds every element with textContent,
// never HTML from data, so names, URLs, annotations and log lines are always shown as text.
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
  refreshMetrics();
  if (selectedTrace) showLogs(selectedTrace);
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
    const named = decodeURIComponent(pendingOpen.replace(/^trace=/, ""));
    // Either form of the id, as for the search box: a JSON log line gives the W3C one.
    const wanted = pendingOpen === "newest" ? summaries[0].Id : traceIdOf(named) || named;
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

// Opens the trace `id`; whether the stand-in keeps it.
async function openTrace(id) {
  const answer = await api("/Traces", { TraceIds: [id] });
  const trace = answer.Traces[0];
  if (!trace) return false;
  selectedTrace = id;
  document.querySelectorAll("#trace-list tbody tr").forEach((row) =>
    row.classList.toggle("selected", row.dataset.traceId === id));
  showLogs(id);
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
  return true;
}

// A trace id as typed or pasted: the X-Ray form, or the W3C form of the JSON log's `trace_id`.
function traceIdOf(text) {
  const id = text.trim().toLowerCase();
  if (/^1-[0-9a-f]{8}-[0-9a-f]{24}$/.test(id)) return id;
  if (/^[0-9a-f]{32}$/.test(id)) return `1-${id.slice(0, 8)}-${id.slice(8)}`;
  return null;
}

async function search(event) {
  event.preventDefault();
  const error = document.getElementById("search-error");
  const typed = document.getElementById("search-id").value;
  const id = traceIdOf(typed);
  error.hidden = true;
  if (!id) {
    error.textContent = "Not a trace id: give 1-<8 hex digits>-<24 hex digits>, or 32 hex digits.";
    error.hidden = false;
    return;
  }
  let found = false;
  try {
    found = await openTrace(id);
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
    return;
  }
  if (found) {
    history.replaceState(null, "", `#trace=${encodeURIComponent(id)}`);
  } else {
    error.textContent = `The stand-in keeps no trace ${id}: it may be older than the traces kept, or not sent here.`;
    error.hidden = false;
  }
}

function clock(seconds) {
  const time = new Date(seconds * 1000);
  return `${time.toLocaleTimeString([], { hour12: false })}.${String(time.getMilliseconds()).padStart(3, "0")}`;
}

// The trace's log lines, beside its timeline.
async function showLogs(id) {
  let answer;
  try {
    const response = await fetch(`/console/logs?trace_id=${encodeURIComponent(id)}`);
    answer = await response.json();
    if (!response.ok) throw new Error(answer.message || `HTTP ${response.status}`);
  } catch (error) {
    answer = { Lines: [], DroppedLines: 0, Note: `The log lines could not be read: ${error.message}` };
  }
  if (id !== selectedTrace) return;
  const list = document.getElementById("trace-logs");
  list.replaceChildren();
  for (const line of answer.Lines) {
    const item = el("li", `log-line level-${line.Level.toLowerCase()}`);
    item.append(
      el("span", "log-time", clock(line.Time)),
      el("span", "log-level", line.Level),
      el("span", "log-service", line.Service || ""),
      el("span", "log-source", line.Source),
      el("span", "log-message", line.Message + (line.Cut ? " …" : "")),
    );
    list.append(item);
  }
  const count = answer.Lines.length;
  document.getElementById("log-count").textContent = answer.DroppedLines
    ? `${count} kept, ${answer.DroppedLines} more not kept`
    : `${count}`;
  const note = document.getElementById("logs-note");
  note.textContent = answer.Note || "This trace printed no log lines.";
  note.hidden = count > 0;
}

function percent(ratio) {
  return `${(ratio * 100).toFixed(ratio > 0 && ratio < 0.1 ? 1 : 0)}%`;
}

// Bars scaled to the largest value, each with its own title for the exact number.
function bars(className, values, titles) {
  const box = el("div", className);
  const top = Math.max(...values, 0);
  values.forEach((value, i) => {
    const bar = el("div", "bar-cell");
    const fill = el("div", value > 0 ? "fill" : "fill empty");
    fill.style.height = `${top > 0 ? Math.max((value / top) * 100, value > 0 ? 4 : 0) : 0}%`;
    bar.title = titles[i];
    bar.append(fill);
    box.append(bar);
  });
  return box;
}

function bucketLabel(bucket, previous) {
  if (bucket.BelowMs === null || bucket.BelowMs === undefined) return `≥${previous} ms`;
  return `<${bucket.BelowMs} ms`;
}

// The panel per service: requests per second, error rate and the latency histogram.
async function refreshMetrics() {
  let answer;
  try {
    answer = await (await fetch("/console/metrics")).json();
  } catch (_) {
    return; // Shown again at the next refresh.
  }
  const cards = document.getElementById("metric-cards");
  const note = document.getElementById("metrics-note");
  cards.replaceChildren();
  note.hidden = answer.Services.length > 0;
  note.textContent = answer.Note || "No service has answered yet.";
  document.getElementById("metrics-window").textContent = answer.Collected
    ? `last ${Math.round(answer.WindowSeconds)} s`
    : "";
  for (const service of answer.Services) {
    const card = el("div", service.Faults ? "metric-card fault" : service.Errors ? "metric-card error" : "metric-card");
    card.dataset.service = service.Service;
    card.append(el("h3", "metric-service", service.Service));
    const numbers = el("div", "metric-numbers");
    const number = (value, label, className) => {
      const box = el("div", `metric ${className}`);
      box.append(el("span", "metric-value", value), el("span", "metric-label", label));
      return box;
    };
    numbers.append(
      number(service.RequestsPerSecond.toFixed(2), "requests/s", "rps"),
      number(percent(service.ErrorRate), `errors (${service.Errors} 4xx, ${service.Faults} 5xx)`, "error-rate"),
      number(service.Requests ? `${service.AverageMs.toFixed(1)} ms` : "–", `mean of ${service.Requests}`, "mean"),
    );
    card.append(numbers);
    card.append(el("span", "chart-label", "requests per second"));
    // A chart of fixed width from the first reading: the newest second always at the right.
    const empty = Math.max((answer.Slots || 0) - service.PerSecond.length, 0);
    card.append(bars("rate-chart",
      Array(empty).fill(0).concat(service.PerSecond.map((p) => p.RequestsPerSecond)),
      Array(empty).fill("not read yet").concat(service.PerSecond.map((p) =>
        `${clock(p.End)}: ${p.RequestsPerSecond.toFixed(2)} requests/s, ${percent(p.ErrorRate)} errors`))));
    card.append(el("span", "chart-label", "latency"));
    const labels = service.LatencyHistogram.map((bucket, i) =>
      bucketLabel(bucket, i > 0 ? service.LatencyHistogram[i - 1].BelowMs : 0));
    card.append(bars("histogram", service.LatencyHistogram.map((b) => b.Count),
      service.LatencyHistogram.map((b, i) => `${labels[i]}: ${b.Count}`)));
    const axis = el("div", "histogram-axis");
    labels.forEach((label, i) => {
      const tick = el("span", "bucket");
      tick.append(el("span", "bucket-label", label), el("span", "bucket-count", service.LatencyHistogram[i].Count));
      axis.append(tick);
    });
    card.append(axis);
    cards.append(card);
  }
}

window.addEventListener("load", () => {
  document.getElementById("range").addEventListener("change", refresh);
  document.getElementById("filter").addEventListener("change", refresh);
  document.getElementById("search").addEventListener("submit", search);
  refresh();
  setInterval(refresh, REFRESH_MS);
});
