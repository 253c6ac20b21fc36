// widesweep's dashboard: plain JavaScript, no dependencies (the binary
// carries every asset; clusters are often offline). Read-only: nothing
// here writes. Live data arrives as server-sent events (/api/events).
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function duration(seconds) {
  if (seconds == null) return "-";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function progressBar(sweep, node = el("div", { class: "progress" })) {
  node.replaceChildren();
  const total = Math.max(sweep.total, 1);
  for (const state of ["succeeded", "running", "failed"]) {
    const share = (100 * sweep[state]) / total;
    if (share > 0) node.append(el("span", { class: state, style: `width:${share}%` }));
  }
  node.setAttribute("role", "img");
  node.setAttribute(
    "aria-label",
    `${sweep.succeeded} succeeded, ${sweep.running} running, ${sweep.failed} failed, ${sweep.pending} pending of ${sweep.total}`,
  );
  return node;
}

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${response.status}: ${await response.text()}`);
  return response.json();
}

function listen(onSweeps) {
  const live = $("live");
  const source = new EventSource("/api/events");
  source.addEventListener("sweeps", (event) => {
    live.textContent = "live";
    live.classList.add("on");
    onSweeps(JSON.parse(event.data));
  });
  source.onerror = () => {
    live.textContent = "reconnecting";
    live.classList.remove("on");
  };
}

// ---- the sweeps page ----

function renderSweeps(sweeps) {
  const body = $("sweeps");
  if (sweeps.length === 0) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: "8", text: "No sweeps yet: submit one with `widesweep submit SPEC`." })));
    return;
  }
  body.replaceChildren(
    ...sweeps.map((s) =>
      el(
        "tr",
        { "data-sweep": s.name },
        el("td", {}, el("a", { href: `/sweeps/${encodeURIComponent(s.name)}`, text: s.name })),
        el("td", { text: s.state }),
        el("td", { class: "num", text: String(s.priority) }),
        el("td", {}, progressBar(s)),
        el("td", { class: "num", text: `${s.succeeded}/${s.total}` }),
        el("td", { class: "num", text: `${s.epochs_done}/${s.epochs_total}` }),
        el("td", { class: "num", text: String(s.failed) }),
        el("td", { class: "num", text: duration(s.eta_seconds) }),
      ),
    ),
  );
}

// ---- the sweep page ----

const sweepName = () => decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());

function tableURL(format, download) {
  const params = new URLSearchParams({ format });
  const baseline = $("baseline").value.trim();
  if (baseline) params.set("baseline", baseline);
  if (download) params.set("download", "1");
  return `/api/sweeps/${encodeURIComponent(sweepName())}/table?${params}`;
}

// The fields of `widesweep table --format json`'s cells, in reading order:
// the axes, the number and its uncertainty, the comparison, the costs, the
// job counts.
const NUMBERS = ["value", "std", "n", "ci95_lo", "ci95_hi", "delta", "mean_difference", "difference_ci95_lo",
  "difference_ci95_hi", "p_value", "test", "params", "epoch_seconds", "jobs", "succeeded", "running", "pending",
  "failed", "cancelled"];

// Measured numbers as a reader wants them (the text table's decimals),
// counts as they are; the exact value stays in data-value, where tests
// and scripts read it.
const DECIMALS = { value: 2, std: 2, ci95_lo: 2, ci95_hi: 2, delta: 2, mean_difference: 2, difference_ci95_lo: 2,
  difference_ci95_hi: 2, epoch_seconds: 2, p_value: 3 };

function cellOf(key, value) {
  if (value == null) return el("td", { "data-value": "", text: "" });
  if (typeof value !== "number") return el("td", { "data-value": String(value), text: String(value) });
  const text = key in DECIMALS ? value.toFixed(DECIMALS[key]) : String(value);
  return el("td", { class: "num", "data-value": String(value), text });
}

function renderTable(doc) {
  const table = $("cells");
  const records = doc.cells || [];
  if (records.length === 0) {
    table.replaceChildren(el("caption", { text: "No cells." }));
    return;
  }
  const axes = [...doc.rows, ...doc.columns, ...doc.attributes];
  const keys = [...axes, ...NUMBERS.filter((k) => k in records[0])];
  const caption = el("caption", { text: doc.title });
  const head = el("thead", {}, el("tr", {}, ...keys.map((k) => el("th", { scope: "col", text: k }))));
  const body = el(
    "tbody",
    {},
    ...records.map((r) =>
      el("tr", {}, ...keys.map((k) => cellOf(k, r[k]))),
    ),
  );
  table.replaceChildren(caption, head, body);
}

const COLOURS = ["#0b62c4", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#0a8a8a", "#d1242f", "#6e7781"];

function median(values) {
  const v = [...values].sort((a, b) => a - b);
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

function renderCurves(cells) {
  const width = 720, height = 320, left = 48, right = 12, top = 12, bottom = 32;
  const all = cells.flatMap((c) => c.curves.flatMap((k) => k.points));
  const box = $("curves");
  if (all.length === 0) {
    box.replaceChildren(el("p", { class: "note", text: "No epoch reported yet." }));
    $("legend").replaceChildren();
    return;
  }
  const maxEpoch = Math.max(...all.map((p) => p[0]), 1);
  const maxError = Math.max(...all.map((p) => p[1]), 1);
  const x = (e) => left + ((e - 1) / Math.max(maxEpoch - 1, 1)) * (width - left - right);
  const y = (v) => top + (1 - v / maxError) * (height - top - bottom);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "test error per epoch, one line per cell");
  const add = (tag, attrs) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    svg.append(node);
    return node;
  };
  add("line", { class: "axis", x1: left, y1: height - bottom, x2: width - right, y2: height - bottom });
  add("line", { class: "axis", x1: left, y1: top, x2: left, y2: height - bottom });
  add("text", { x: left, y: height - 8 }).textContent = "epoch 1";
  add("text", { x: width - right - 60, y: height - 8 }).textContent = `epoch ${maxEpoch}`;
  add("text", { x: 4, y: top + 10 }).textContent = `${maxError.toFixed(1)}%`;
  add("text", { x: 4, y: height - bottom }).textContent = "0%";
  cells.forEach((cell, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const byEpoch = new Map();
    for (const curve of cell.curves) for (const [e, v] of curve.points) byEpoch.set(e, [...(byEpoch.get(e) || []), v]);
    const epochs = [...byEpoch.keys()].sort((a, b) => a - b);
    if (epochs.length === 0) return;
    const low = epochs.map((e) => [x(e), y(Math.min(...byEpoch.get(e)))]);
    const high = epochs.map((e) => [x(e), y(Math.max(...byEpoch.get(e)))]).reverse();
    add("polygon", { points: [...low, ...high].map((p) => p.join(",")).join(" "), fill: colour, "fill-opacity": "0.15", stroke: "none" });
    add("polyline", {
      points: epochs.map((e) => `${x(e)},${y(median(byEpoch.get(e)))}`).join(" "),
      fill: "none",
      stroke: colour,
      "stroke-width": "2",
      "data-cell": cell.label,
    });
  });
  box.replaceChildren(svg);
  $("legend").replaceChildren(
    ...cells.map((cell, i) => el("li", {}, el("i", { style: `background:${COLOURS[i % COLOURS.length]}` }), cell.label)),
  );
}

function renderErrors(errors) {
  const list = $("errors");
  if (errors.length === 0) {
    list.replaceChildren(el("li", { text: "None." }));
    return;
  }
  list.replaceChildren(
    ...errors.map((e) =>
      el("li", {}, `job ${e.job_id} (seed ${e.seed}, ${e.status}, attempt ${e.attempts_spent}/${e.max_attempts}): `, el("code", { text: e.error })),
    ),
  );
}

async function refreshSweep() {
  const name = encodeURIComponent(sweepName());
  try {
    renderTable(await getJSON(tableURL("json", false)));
    $("table-error").hidden = true;
  } catch (error) {
    $("table-error").textContent = error.message;
    $("table-error").hidden = false;
  }
  renderCurves(await getJSON(`/api/sweeps/${name}/curves`));
  renderErrors(await getJSON(`/api/sweeps/${name}/errors`));
}

function startSweepPage() {
  const name = sweepName();
  $("title").textContent = name;
  document.title = `widesweep: ${name}`;
  for (const link of document.querySelectorAll(".downloads a")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      location.href = tableURL(link.dataset.format, true);
    });
  }
  $("table-options").addEventListener("submit", (event) => {
    event.preventDefault();
    refreshSweep();
  });
  let seen = null;
  listen((sweeps) => {
    const sweep = sweeps.find((s) => s.name === name);
    if (!sweep) return;
    $("summary").textContent =
      `${sweep.state}, ${sweep.dataset}: ${sweep.succeeded} of ${sweep.total} jobs done, ${sweep.running} running, ` +
      `${sweep.failed} failed; epochs ${sweep.epochs_done}/${sweep.epochs_total}` +
      (sweep.eta_seconds != null ? `; ETA ${duration(sweep.eta_seconds)}` : "") +
      (sweep.seeds_target_ci != null ? `; adaptive seeds: ${sweep.reserve} in reserve` : "");
    progressBar(sweep, $("progress"));
    const key = `${sweep.epochs_done}/${sweep.succeeded}/${sweep.failed}/${sweep.running}/${sweep.total}`;
    if (key !== seen) {
      seen = key;
      refreshSweep();
    }
  });
}

if (document.body.dataset.page === "sweeps") listen(renderSweeps);
if (document.body.dataset.page === "sweep") startSweepPage();
