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

// A page in a background tab reads nothing: its refresh waits until it is
// shown again (one refresh, however many changes it missed).
let pendingRefresh = null;
function whenVisible(refresh) {
  if (!document.hidden) {
    refresh();
    return;
  }
  pendingRefresh = refresh;
}
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && pendingRefresh) {
    const refresh = pendingRefresh;
    pendingRefresh = null;
    refresh();
  }
});

function when(ms) {
  return ms == null ? "-" : new Date(ms).toLocaleString();
}

function fixed(value, digits = 2) {
  return typeof value === "number" ? value.toFixed(digits) : "-";
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
  for (const choice of ["metric", "agg"]) if ($(choice).value) params.set(choice, $(choice).value);
  if (download) params.set("download", "1");
  return `/api/sweeps/${encodeURIComponent(sweepName())}/table?${params}`;
}

// The fields of `widesweep table --format json`'s cells, in reading order:
// the axes, the number and its uncertainty, the comparison, the costs, the
// job counts.
const NUMBERS = ["value", "std", "n", "ci95_lo", "ci95_hi", "delta", "mean_difference", "difference_ci95_lo",
  "difference_ci95_hi", "p_value", "p_adjusted", "test", "paired_seeds", "provenance_differs", "params", "epoch_seconds", "jobs", "succeeded", "running", "pending",
  "failed", "cancelled"];

// Measured numbers as a reader wants them (the text table's decimals),
// counts as they are; the exact value stays in data-value, where tests
// and scripts read it.
const DECIMALS = { value: 2, std: 2, ci95_lo: 2, ci95_hi: 2, delta: 2, mean_difference: 2, difference_ci95_lo: 2,
  difference_ci95_hi: 2, epoch_seconds: 2, p_value: 3, p_adjusted: 3 };

function cellOf(key, value) {
  if (value == null) return el("td", { "data-value": "", text: "" });
  if (Array.isArray(value)) return el("td", { "data-value": value.join(", "), text: value.join(", ") });
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
  // The table's notes: the tests, the correction, cut intervals and
  // cells that pool incomparable seeds (‡), as the CLI prints them.
  const notes = $("table-notes");
  const lines = [...(doc.notes || [])];
  if (doc.correction) {
    lines.unshift(`${doc.comparisons} comparison(s) to the baseline; p_adjusted by ${doc.correction} ` +
      "(paired t-test where cells share seeds)");
  }
  if (notes) notes.replaceChildren(...lines.map((n) => el("li", { text: n })));
}

const COLOURS = ["#0b62c4", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#0a8a8a", "#d1242f", "#6e7781"];
const SVG = "http://www.w3.org/2000/svg";

// The learning curves: a line per cell (median over its seeds at each
// epoch), its band from the best to the worst seed. The server summarises
// (/api/sweeps/NAME/curves), so a page draws a few points per cell and
// epoch however many jobs the sweep has.
function renderCurves(view) {
  const width = 720, height = 320, left = 48, right = 12, top = 12, bottom = 32;
  const cells = view.cells;
  const all = cells.flatMap((c) => c.points);
  const box = $("curves");
  if (all.length === 0) {
    box.replaceChildren(el("p", { class: "note", text: "No epoch reported yet." }));
    $("legend").replaceChildren();
    return;
  }
  const maxEpoch = Math.max(...all.map((p) => p.epoch), 1);
  const maxError = Math.max(...all.map((p) => p.worst), 1);
  const x = (e) => left + ((e - 1) / Math.max(maxEpoch - 1, 1)) * (width - left - right);
  const y = (v) => top + (1 - v / maxError) * (height - top - bottom);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `test error per epoch for ${cells.length} cells, up to epoch ${maxEpoch}`);
  const add = (tag, attrs) => {
    const node = document.createElementNS(SVG, tag);
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
    const low = cell.points.map((p) => [x(p.epoch), y(p.best)]);
    const high = cell.points.map((p) => [x(p.epoch), y(p.worst)]).reverse();
    add("polygon", { points: [...low, ...high].map((p) => p.join(",")).join(" "), fill: colour, "fill-opacity": "0.15", stroke: "none" });
    add("polyline", {
      points: cell.points.map((p) => `${x(p.epoch)},${y(p.median)}`).join(" "),
      fill: "none",
      stroke: colour,
      "stroke-width": "2",
      "data-cell": cell.label,
      "data-epochs": String(cell.points.length),
    });
  });
  box.replaceChildren(svg);
  const items = cells.map((cell, i) =>
    el("li", {}, el("i", { style: `background:${COLOURS[i % COLOURS.length]}` }), cell.label),
  );
  if (view.more > 0) items.push(el("li", { class: "note", text: `${view.more} more cells not drawn` }));
  $("legend").replaceChildren(...items);
}

// ---- cells by state, and the heatmap, both from the table's records ----

// A cell's state at a glance: any failure shows, then work in progress.
function cellState(r) {
  if (r.failed > 0) return "failed";
  if (r.running > 0) return "running";
  if (r.jobs > 0 && r.succeeded === r.jobs) return "succeeded";
  if (r.jobs > 0 && r.cancelled === r.jobs) return "cancelled";
  return "pending";
}

function axesLabel(doc, r, axes = [...doc.rows, ...doc.columns]) {
  return axes.map((a) => `${a}=${r[a]}`).join(", ");
}

function renderGrid(doc) {
  const grid = $("grid");
  const records = doc.cells || [];
  const counts = {};
  grid.replaceChildren(
    ...records.map((r) => {
      const state = cellState(r);
      counts[state] = (counts[state] || 0) + 1;
      const label = `${axesLabel(doc, r)}: ${state} (${r.succeeded} of ${r.jobs} jobs done, ${r.running} running, ${r.failed} failed)`;
      return el("li", { class: `state-${state}`, role: "img", title: label, "aria-label": label, "data-state": state });
    }),
  );
  $("grid-legend").replaceChildren(
    ...["succeeded", "running", "pending", "failed", "cancelled"]
      .filter((s) => counts[s])
      .map((s) => el("li", {}, el("i", { class: `state-${s}` }), `${s}: ${counts[s]}`)),
  );
}

let lastDoc = null;

// The heatmap of the table's metric over two axes the user picks; the
// axes not picked make one row each per combination of their values.
function renderHeatmap(doc = lastDoc) {
  if (!doc) return;
  const axes = [...doc.rows, ...doc.columns];
  const box = $("heatmap");
  const pickX = $("heat-x"), pickY = $("heat-y");
  if (axes.length < 2) {
    pickX.disabled = pickY.disabled = true;
    box.replaceChildren(el("p", { class: "note", text: "The sweep varies along fewer than two axes: no heatmap to draw." }));
    return;
  }
  for (const pick of [pickX, pickY]) {
    const options = [...pick.options].map((o) => o.value).join();
    if (options !== axes.join()) pick.replaceChildren(...axes.map((a) => el("option", { value: a, text: a })));
    pick.disabled = false;
  }
  if (!pickX.dataset.chosen) {
    pickY.value = axes.includes("depth") ? "depth" : axes[0];
    pickX.value = axes.includes("width") && pickY.value !== "width" ? "width" : axes.find((a) => a !== pickY.value);
  }
  const ax = pickX.value, ay = pickY.value;
  if (ax === ay) {
    box.replaceChildren(el("p", { class: "note", text: "Pick two different axes." }));
    return;
  }
  const others = axes.filter((a) => a !== ax && a !== ay);
  const records = doc.cells || [];
  const uniq = (values) => [...new Map(values.map((v) => [JSON.stringify(v), v])).values()];
  const order = (a, b) => (typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b)));
  const xs = uniq(records.map((r) => r[ax])).sort(order);
  const rowKey = (r) => JSON.stringify([...others.map((a) => r[a]), r[ay]]);
  const rows = new Map();
  for (const r of records) {
    if (!rows.has(rowKey(r))) rows.set(rowKey(r), { label: [...others.map((a) => `${a}=${r[a]}`), `${ay}=${r[ay]}`].join(", "), byX: new Map() });
    rows.get(rowKey(r)).byX.set(JSON.stringify(r[ax]), r);
  }
  const values = records.map((r) => r.value).filter((v) => typeof v === "number");
  const lo = Math.min(...values), hi = Math.max(...values);
  const heat = (v) => {
    // Lower is better for errors and losses: green, through yellow, to red.
    const t = hi > lo ? (v - lo) / (hi - lo) : 0;
    return `hsl(${Math.round(130 - 130 * t)} 60% 45%)`;
  };
  const head = el("thead", {}, el("tr", {}, el("th", { scope: "col", text: `${ay} \\ ${ax}` }), ...xs.map((v) => el("th", { scope: "col", text: `${ax}=${v}` }))));
  const body = el(
    "tbody",
    {},
    ...[...rows.values()].map((row) =>
      el(
        "tr",
        {},
        el("th", { scope: "row", text: row.label }),
        ...xs.map((v) => {
          const r = row.byX.get(JSON.stringify(v));
          if (!r || typeof r.value !== "number") return el("td", { class: "heat empty", text: r ? "…" : "" });
          const spread = typeof r.std === "number" ? ` ± ${r.std.toFixed(2)}` : "";
          return el("td", {
            class: "heat num",
            style: `background:${heat(r.value)}`,
            "data-value": String(r.value),
            title: `${axesLabel(doc, r)}: ${r.value.toFixed(2)}${spread} over ${r.n} seeds`,
            text: r.value.toFixed(2),
          });
        }),
      ),
    ),
  );
  box.replaceChildren(el("table", { class: "heat" }, el("caption", { text: `${doc.title}: ${ay} by ${ax}` }), head, body));
}

function renderErrors(errors) {
  const list = $("errors");
  if (errors.length === 0) {
    list.replaceChildren(el("li", { text: "None." }));
    return;
  }
  list.replaceChildren(
    ...errors.map((e) =>
      el("li", {}, el("a", { href: `/jobs/${e.job_id}`, text: `job ${e.job_id}` }), ` (seed ${e.seed}, ${e.status}, attempt ${e.attempts_spent}/${e.max_attempts}): `, el("code", { text: e.error })),
    ),
  );
}

function renderCauses(causes) {
  const list = $("causes");
  if (causes.length === 0) {
    list.replaceChildren(el("li", { text: "None." }));
    return;
  }
  list.replaceChildren(
    ...causes.map((c) =>
      el(
        "li",
        { "data-class": c.error_class },
        el("span", { class: c.error_class === "machine" ? "badge bad" : "badge", text: `${c.error_class} error` }),
        ` ${c.attempts} attempt${c.attempts === 1 ? "" : "s"} of ${c.jobs} job${c.jobs === 1 ? "" : "s"}, on ${c.workers.join(", ")}: `,
        el("code", { text: c.error }),
      ),
    ),
  );
}

async function refreshSweep() {
  const name = encodeURIComponent(sweepName());
  try {
    const doc = await getJSON(tableURL("json", false));
    lastDoc = doc;
    renderTable(doc);
    renderGrid(doc);
    renderHeatmap(doc);
    $("table-error").hidden = true;
  } catch (error) {
    $("table-error").textContent = error.message;
    $("table-error").hidden = false;
  }
  renderCurves(await getJSON(`/api/sweeps/${name}/curves`));
  renderCauses(await getJSON(`/api/sweeps/${name}/causes`));
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
  getJSON("/api/table-choices").then((choices) => {
    $("metric").replaceChildren(...choices.metrics.map((m) => el("option", { value: m, text: m.replaceAll("_", " ") })));
    $("agg").replaceChildren(...choices.aggregates.map((a) => el("option", { value: a, text: a })));
    for (const choice of ["metric", "agg"]) $(choice).addEventListener("change", () => refreshSweep());
  });
  $("table-options").addEventListener("submit", (event) => {
    event.preventDefault();
    refreshSweep();
  });
  for (const pick of [$("heat-x"), $("heat-y")]) {
    pick.addEventListener("change", () => {
      $("heat-x").dataset.chosen = "1";
      renderHeatmap();
    });
  }
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
      whenVisible(refreshSweep);
    }
  });
}


// ---- the workers page ----

function renderWorkers(workers) {
  const body = $("workers");
  if (workers.length === 0) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: "6", text: "No worker heard from in the last day: start one with `widesweep work`." })));
    return;
  }
  body.replaceChildren(
    ...workers.map((w) => {
      const slots = w.slots.length === 0
        ? el("td", { text: "idle" })
        : el(
            "td",
            {},
            el(
              "ul",
              { class: "slots" },
              ...w.slots.map((s) =>
                el(
                  "li",
                  {},
                  el("a", { href: `/jobs/${s.job_id}`, text: `job ${s.job_id}` }),
                  ` ${s.sweep}, epoch ${s.epochs_done}/${s.epochs}` +
                    (s.images_per_second != null ? `, ${Math.round(s.images_per_second)} img/s` : "") +
                    (s.device ? ` on ${s.device}` : ""),
                ),
              ),
            ),
          );
      return el(
        "tr",
        { "data-worker": String(w.id), class: w.stale ? "stale" : "" },
        el("td", {}, `${w.hostname} `, el("span", { class: "muted", text: `#${w.id}` })),
        el("td", { text: w.devices.join(", ") }),
        slots,
        el(
          "td",
          {},
          `${duration(w.seen_seconds_ago)} ago `,
          w.stale ? el("span", { class: "badge bad", text: "stale" }) : "",
          w.quarantine ? el("span", { class: "badge bad", title: w.quarantine, text: "quarantined" }) : "",
        ),
        el("td", { text: w.version }),
        el("td", { text: when(w.registered_at_ms) }),
      );
    }),
  );
}

async function refreshWorkers() {
  try {
    renderWorkers(await getJSON("/api/workers"));
    $("workers-error").hidden = true;
  } catch (error) {
    $("workers-error").textContent = error.message;
    $("workers-error").hidden = false;
  }
}

function startWorkersPage() {
  refreshWorkers();
  // Progress moves as workers report; "last seen" moves with the clock.
  listen(() => whenVisible(refreshWorkers));
  setInterval(() => whenVisible(refreshWorkers), 5000);
}

// ---- the job page ----

function definitionList(pairs) {
  return pairs.flatMap(([term, value]) => [el("dt", { text: term }), el("dd", { text: value == null ? "-" : String(value) })]);
}

function renderJob(job) {
  $("title").textContent = `Job ${job.job_id}`;
  document.title = `widesweep: job ${job.job_id}`;
  const sweep = job.sweep ?? String(job.sweep_id);
  $("sweep-link").replaceChildren(el("a", { href: `/sweeps/${encodeURIComponent(sweep)}`, text: `sweep ${sweep}` }));
  $("job-state").replaceChildren(
    ...definitionList([
      ["status", job.status + (job.reserve ? " (an adaptive seed in reserve)" : job.in_spec ? "" : " (no longer in the spec)")],
      ["attempt", `${job.attempt} (${job.attempts_spent} of ${job.max_attempts} spent; ${job.lost_leases} leases lost)`],
      ["worker", job.worker_id],
      ["lease expires", when(job.lease_expires_at_ms)],
      ["created", when(job.created_at_ms)],
      ["started", when(job.started_at_ms)],
      ["finished", when(job.finished_at_ms)],
      ["final test error", job.final_test_error != null ? `${(100 * job.final_test_error).toFixed(2)}%` : null],
      ["best test error", job.best_test_error != null ? `${(100 * job.best_test_error).toFixed(2)}%` : null],
      ["training time", job.train_seconds != null ? duration(job.train_seconds) : null],
      ["parameters", job.params],
      ["cell", job.cell_hash],
    ]),
  );
  $("job-config").replaceChildren(
    ...definitionList(job.config.map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : v])),
  );
  $("job-error").hidden = !job.last_error;
  $("job-error").textContent = job.last_error ? `Last error: ${job.last_error}` : "";
  $("epochs").replaceChildren(
    ...(job.epochs.length === 0
      ? [el("tr", {}, el("td", { colspan: "8", text: "No epoch reported yet." }))]
      : job.epochs.map((e) =>
          el(
            "tr",
            { "data-epoch": String(e.epoch) },
            el("td", { class: "num", text: String(e.epoch) }),
            el("td", { class: "num", text: String(e.attempt) }),
            el("td", { class: "num", text: fixed(e.train_loss, 4) }),
            el("td", { class: "num", text: fixed(100 * e.train_error) }),
            el("td", { class: "num", text: fixed(e.test_loss, 4) }),
            el("td", { class: "num", "data-value": String(e.test_error), text: fixed(100 * e.test_error) }),
            el("td", { class: "num", text: String(e.lr) }),
            el("td", { class: "num", text: `${fixed(e.epoch_seconds, 1)} s, ${Math.round(e.images_per_second)} img/s` }),
          ),
        )),
  );
  $("attempts").replaceChildren(
    ...(job.attempts.length === 0
      ? [el("tr", {}, el("td", { colspan: "7", text: "Not leased yet." }))]
      : job.attempts.map((a) =>
          el(
            "tr",
            { "data-attempt": String(a.attempt) },
            el("td", { class: "num", text: String(a.attempt) }),
            el("td", { text: a.worker_id != null ? `${a.hostname} #${a.worker_id}` : a.hostname }),
            el("td", { text: a.device }),
            el("td", { text: when(a.leased_at_ms) }),
            el("td", { text: a.ended_at_ms != null ? when(a.ended_at_ms) : "-" }),
            el("td", { text: a.error_class ? `${a.outcome} (${a.error_class} error)` : a.outcome }),
            el("td", {}, a.error ? el("code", { text: a.error }) : "-"),
          ),
        )),
  );
  // Where each succeeded attempt's result came from, newest first.
  const recorded = job.attempts.filter((a) => a.provenance).reverse();
  $("provenance").replaceChildren(
    ...(recorded.length === 0
      ? [el("p", { text: "No provenance recorded (no attempt has succeeded, or it predates provenance)." })]
      : recorded.map((a) =>
          el(
            "dl",
            { "data-attempt": String(a.attempt) },
            ...definitionList([
              ["attempt", `${a.attempt}: test error ${a.final_test_error != null ? (100 * a.final_test_error).toFixed(2) + "%" : "-"}`],
              ...Object.entries(a.provenance).filter(([, v]) => v !== ""),
            ]),
          ),
        )),
  );
  $("checkpoints").replaceChildren(
    ...(job.checkpoints.length === 0
      ? [el("li", { text: "None stored." })]
      : job.checkpoints.map((c) =>
          el("li", {}, `epoch ${c.epoch} (attempt ${c.attempt}), ${(c.size_bytes / 1048576).toFixed(1)} MiB, sha256 `, el("code", { text: c.sha256.slice(0, 16) })),
        )),
  );
}

async function refreshJob() {
  const id = location.pathname.split("/").filter(Boolean).pop();
  try {
    renderJob(await getJSON(`/api/jobs/${encodeURIComponent(id)}`));
    $("load-error").hidden = true;
  } catch (error) {
    $("load-error").textContent = error.message;
    $("load-error").hidden = false;
  }
}

function startJobPage() {
  refreshJob();
  let seen = null;
  listen((sweeps) => {
    const key = JSON.stringify(sweeps.map((s) => [s.epochs_done, s.succeeded, s.failed, s.running]));
    if (key !== seen) {
      seen = key;
      whenVisible(refreshJob);
    }
  });
}

if (document.body.dataset.page === "sweeps") listen(renderSweeps);
if (document.body.dataset.page === "workers") startWorkersPage();
if (document.body.dataset.page === "job") startJobPage();
if (document.body.dataset.page === "sweep") startSweepPage();
