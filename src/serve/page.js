// The serving page: the model card (GET /model, polled so that a hot reload shows), a form
// built from the schema (POST /predict) and a CSV upload (POST /predict/csv). Served as a
// file of its own: the page's Content-Security-Policy (default-src 'self') forbids inline
// script.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "netsec-token";
const ANSWER = ["predicted_label", "class_probability", "attack_probability", "is_attack", "attack_class"];
const PROBABILITIES = new Set(["class_probability", "attack_probability"]);
// Rows drawn in the table (all are counted and downloadable): a browser slows down on more.
const SHOWN_ROWS = 1000;
const POLL_MS = 5000;

let model = null; // the last GET /model answer
let scored = null; // the last CSV answer: { header, rows }
let sort = { column: -1, descending: false };

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function notice(text, isError = false) {
  $("notice").hidden = !text;
  $("notice").textContent = text || "";
  $("notice").className = isError ? "error" : "";
}

// fetch with the bearer token; a 401 explains itself in the notice at the top.
async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (token()) headers.Authorization = "Bearer " + token();
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    notice(token()
      ? "The server refused this bearer token. Enter the right one above (NETSEC_SERVE_TOKEN of the server)."
      : "This server needs a bearer token: enter it above (NETSEC_SERVE_TOKEN of the server).", true);
  } else if (response.ok) {
    notice("");
  }
  return response;
}

// The JSON error answer of the API, or one made from the status.
async function apiError(response) {
  const body = await response.json().catch(() => null);
  return body && body.message ? body : { error: String(response.status), message: response.statusText || "request failed" };
}

const percent = (x) => (100 * x).toFixed(2) + " %";
const fixed = (x, digits = 3) => (typeof x === "number" ? x.toFixed(digits) : "–");

// ---------------------------------------------------------------- model card

async function loadModel() {
  let response;
  try {
    response = await api("/model");
  } catch {
    $("card-body").replaceChildren(el("p", { className: "error", textContent: "the server does not answer" }));
    return;
  }
  if (!response.ok) {
    const err = await apiError(response);
    $("card-body").replaceChildren(el("p", { className: "error", textContent: `${response.status}: ${err.message}` }));
    return;
  }
  const next = await response.json();
  const reloaded = model && (model.sha256 !== next.sha256 || model.loaded_at !== next.loaded_at);
  const schemaChanged = !model || model.schema.hash !== next.schema.hash;
  model = next;
  renderCard(reloaded);
  if (schemaChanged) buildForm();
}

function renderCard(reloaded) {
  const m = model;
  const loaded = new Date(m.loaded_at * 1000);
  const rows = [
    ["Name", m.name],
    ["Version", m.version],
    ["Algorithm", m.algorithm],
    ["Loaded", loaded.toLocaleString()],
    ["sha256", m.sha256.slice(0, 16) + "…"],
    ["Schema", `${m.schema.name} · ${m.schema.hash.slice(0, 16)}…`],
  ];
  const dl = el("dl", { className: "card", id: "card-facts" });
  for (const [name, value] of rows) {
    const dd = el("dd", { textContent: value });
    dd.dataset.field = name.toLowerCase();
    if (name === "Loaded" && reloaded) dd.append(el("span", { className: "reloaded", textContent: "reloaded" }));
    if (name === "sha256") dd.title = m.sha256;
    if (name === "Schema") dd.title = m.schema.hash;
    dl.append(el("dt", { textContent: name }), dd);
  }
  const parts = [dl];
  const test = m.metrics && m.metrics.test;
  if (test) {
    parts.push(el("h3", { textContent: "Held-out test" }));
    parts.push(el("dl", { className: "card" },
      ...[["accuracy", test.accuracy], ["F1 (attack)", test.f1], ["detection rate", test.recall],
        ["precision", test.precision], ["ROC AUC", test.roc_auc]]
        .flatMap(([n, v]) => [el("dt", { textContent: n }), el("dd", { textContent: fixed(v) })])));
    const report = test.classes;
    if (report) {
      const table = el("table", { className: "small", id: "class-recall" });
      table.createTHead().insertRow().append(...["class", "recall", "precision", "rows"].map((t) => el("th", { textContent: t })));
      const body = table.createTBody();
      report.names.forEach((name, i) => {
        const s = report.per_class[i];
        const tr = body.insertRow();
        tr.append(el("td", { textContent: name }), el("td", { textContent: fixed(s.recall) }),
          el("td", { textContent: fixed(s.precision) }), el("td", { textContent: String(s.support) }));
      });
      parts.push(el("div", { className: "scroll" }, table));
    }
  } else {
    parts.push(el("p", { className: "muted", textContent: "no held-out metrics in this model file" }));
  }
  parts.push(el("h3", { textContent: "Operating point" }));
  const op = m.operating_point;
  if (op) {
    const target = Object.entries(op.target).map(([k, v]) => `${k} ${v}`).join(", ");
    const rates = (r) => (r ? `FPR ${percent(r.fp / Math.max(r.normal, 1))} (${r.fp}/${r.normal}) · detection ${percent(r.tp / Math.max(r.attacks, 1))} (${r.tp}/${r.attacks})` : "–");
    parts.push(el("dl", { className: "card", id: "operating-point" },
      ...[["attack when P ≥", fixed(op.threshold, 4)], ["target", `${target}${op.target_met ? "" : " (not met)"}`],
        ["out of fold", rates(op.out_of_fold)], ["held out", rates(op.held_out)]]
        .flatMap(([n, v]) => [el("dt", { textContent: n }), el("dd", { textContent: v })])));
  } else {
    parts.push(el("p", { className: "muted", textContent: `attack when P(attack) ≥ ${m.threshold} (no operating point chosen)` }));
  }
  $("card-body").replaceChildren(...parts);
}

// ---------------------------------------------------------------- one record

// The options of a column shown as a list: its values, or true/false.
function choices(column) {
  if (Array.isArray(column.values) && column.values.length) return column.values;
  if (column.type === "boolean") return [false, true];
  return null;
}

function buildForm() {
  const fields = model.schema.columns.map((column, i) => {
    const id = "field-" + i;
    const typical = column.typical ? column.typical.value : "";
    const options = choices(column);
    let control;
    if (options) {
      control = el("select", { id, name: column.name },
        ...options.map((v) => el("option", { value: String(v), textContent: String(v) })));
    } else {
      control = el("input", { id, name: column.name, type: "number", step: column.type === "integer" ? "1" : "any", inputMode: "decimal" });
      if (column.min !== null && column.min !== undefined) control.min = column.min;
      if (column.max !== null && column.max !== undefined) control.max = column.max;
    }
    control.dataset.typical = String(typical);
    control.value = String(typical);
    const bounded = !options && (column.min !== null || column.max !== null);
    const range = bounded ? [column.min ?? "…", column.max ?? "…"].join(" – ") : "";
    const how = column.typical ? column.typical.statistic.replace(/_/g, " ") : "";
    return el("div", { className: "field" },
      el("label", { htmlFor: id, textContent: column.name }),
      control,
      el("small", { textContent: [column.type, range && "range " + range, how].filter(Boolean).join(" · ") }));
  });
  $("fields").replaceChildren(...fields);
}

// A control's text as the JSON value the API expects for its column.
function typedValue(column, text) {
  if (text === "") return column.nullable ? null : "";
  if (column.type === "boolean") return text === "true";
  if (column.type === "integer" || column.type === "float") {
    const x = Number(text);
    return Number.isFinite(x) ? x : text;
  }
  return text;
}

function record() {
  const out = {};
  model.schema.columns.forEach((column, i) => { out[column.name] = typedValue(column, $("field-" + i).value); });
  return out;
}

function labelName(label) {
  const classes = model && model.classes;
  if (!classes || !classes.labels) return "";
  const i = classes.labels.indexOf(String(label));
  return i >= 0 && classes.names[i] !== String(label) ? classes.names[i] : "";
}

function showAnswer(answer) {
  const attack = answer.is_attack === true;
  const name = labelName(answer.predicted_label);
  const item = (field, title, text) => {
    const dd = el("dd", { textContent: text });
    dd.dataset.field = field;
    dd.dataset.value = JSON.stringify(answer[field]);
    return [el("dt", { textContent: title }), dd];
  };
  const flag = el("span", { className: "flag " + (attack ? "attack" : "normal"), textContent: answer.is_attack === null ? "no attack level" : attack ? "ATTACK" : "normal" });
  const dl = el("dl", { className: "answer" + (attack ? " attack" : ""), id: "answer" },
    ...item("predicted_label", "class", name ? `${name} (${answer.predicted_label})` : String(answer.predicted_label)),
    ...item("class_probability", "probability", fixed(answer.class_probability, 4)),
    ...item("attack_probability", "P(attack)", fixed(answer.attack_probability, 4)),
    ...item("is_attack", "attack", ""),
    ...item("attack_class", "attack class", answer.attack_class ?? "–"));
  dl.querySelector('[data-field="is_attack"]').append(flag);
  $("record-answer").replaceChildren(dl);
}

async function predictRecord(event) {
  event.preventDefault();
  if (!model) return;
  $("record-answer").replaceChildren(el("p", { className: "muted", textContent: "predicting…" }));
  const response = await api("/predict", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(record()),
  });
  if (!response.ok) {
    const err = await apiError(response);
    $("record-answer").replaceChildren(el("p", { className: "error", id: "record-error", textContent: `${response.status}: ${err.message}` }));
    return;
  }
  showAnswer((await response.json()).predictions[0]);
}

function resetRecord() {
  for (const control of $("fields").querySelectorAll("input, select")) control.value = control.dataset.typical;
  $("record-answer").replaceChildren();
}

// ---------------------------------------------------------------- CSV upload

// RFC 4180 fields: quoted fields may hold commas, quotes ("") and newlines.
function parseCsv(text) {
  const rows = [];
  let row = [], cell = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += c; i++; } else if (c === '"') quoted = false; else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(cell); cell = ""; }
    else if (c === "\n") { row.push(cell); rows.push(row); row = []; cell = ""; }
    else if (c !== "\r") cell += c;
  }
  if (cell || row.length) { row.push(cell); rows.push(row); }
  return rows;
}

function clearResult() {
  $("csv-errors").replaceChildren();
  $("csv-counts").replaceChildren();
  $("csv-table").replaceChildren();
  const link = $("csv-download");
  if (link.href) URL.revokeObjectURL(link.href);
  link.hidden = true;
  link.removeAttribute("href");
  scored = null;
}

// Each problem where the API puts it: line and column of the body.
function showErrors(status, err) {
  $("csv-status").replaceChildren(el("span", { className: "error", textContent: `${status}: ${err.message}` }));
  const place = (p) => [p.line ? `line ${p.line}` : p.row !== undefined && p.row !== null ? `row ${p.row}` : "", p.column ? `column ${p.column}` : ""]
    .filter(Boolean).join(", ");
  const issues = err.issues && err.issues.length ? err.issues : [err];
  $("csv-errors").replaceChildren(...issues.map((p) => {
    const li = el("li", { className: "error" }, el("strong", { textContent: place(p) || "the file" }), ": " + p.message);
    if (p.line) li.dataset.line = p.line;
    if (p.column) li.dataset.column = p.column;
    return li;
  }));
  if (err.problems > issues.length) $("csv-errors").append(el("li", { textContent: `… ${err.problems - issues.length} more problems` }));
}

async function predictCsv(event) {
  event.preventDefault();
  const file = $("csv-file").files[0];
  if (!file) return;
  clearResult();
  $("csv-status").textContent = "predicting…";
  const response = await api("/predict/csv", { method: "POST", headers: { "Content-Type": "text/csv" }, body: file });
  if (!response.ok) {
    showErrors(response.status, await apiError(response));
    return;
  }
  const text = await response.text();
  const rows = parseCsv(text);
  const header = rows.shift() || [];
  scored = { header, rows };
  sort = { column: -1, descending: false };
  const link = $("csv-download");
  link.href = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  link.download = file.name.replace(/\.csv$/i, "") + "-scored.csv";
  link.hidden = false;
  showCounts();
  renderTable();
}

function showCounts() {
  const { header, rows } = scored;
  const label = header.indexOf("predicted_label"), isAttack = header.indexOf("is_attack");
  const counts = new Map();
  for (const row of rows) counts.set(row[label], (counts.get(row[label]) || 0) + 1);
  const attacks = rows.filter((row) => row[isAttack] === "true").length;
  $("csv-status").textContent = `${rows.length} rows scored, ${attacks} flagged as attacks` +
    (rows.length > SHOWN_ROWS ? ` (the table shows the first ${SHOWN_ROWS}; the download has all)` : "");
  $("csv-counts").replaceChildren(...[...counts].map(([value, n]) => {
    const name = labelName(value);
    const li = el("li", { textContent: `${name ? `${name} (${value})` : value}: ${n}` });
    li.dataset.label = value;
    li.dataset.count = n;
    const i = model && model.classes.labels ? model.classes.labels.indexOf(value) : -1;
    if (i >= 0 && !model.classes.normal[i]) li.className = "attack";
    return li;
  }));
}

// Answer columns first (they are what the reader came for), then the input's columns.
function columnOrder(header) {
  const answer = header.map((name, i) => (ANSWER.includes(name) || name.startsWith("p_") ? i : -1)).filter((i) => i >= 0);
  return [...answer, ...header.keys()].filter((i, k, all) => all.indexOf(i) === k);
}

function compareCells(a, b) {
  const x = Number(a), y = Number(b);
  if (a !== "" && b !== "" && !Number.isNaN(x) && !Number.isNaN(y)) return x - y;
  return a.localeCompare(b);
}

function renderTable() {
  const { header, rows } = scored;
  const order = columnOrder(header);
  const isAttack = header.indexOf("is_attack");
  // Keep each row's line in the file so that a sorted table still says where a row came from.
  let shown = rows.map((row, i) => ({ row, i }));
  if (sort.column >= 0) {
    shown.sort((a, b) => compareCells(a.row[sort.column], b.row[sort.column]) * (sort.descending ? -1 : 1) || a.i - b.i);
  }
  shown = shown.slice(0, SHOWN_ROWS);
  const table = $("csv-table");
  const head = el("thead");
  const tr = head.insertRow();
  for (const i of order) {
    const th = el("th", {}, el("button", { type: "button", textContent: header[i] }));
    th.dataset.column = header[i];
    if (sort.column === i) th.setAttribute("aria-sort", sort.descending ? "descending" : "ascending");
    th.firstChild.addEventListener("click", () => {
      sort = { column: i, descending: sort.column === i ? !sort.descending : false };
      renderTable();
    });
    tr.append(th);
  }
  const body = el("tbody");
  for (const { row } of shown) {
    const line = body.insertRow();
    if (row[isAttack] === "true") line.className = "attack";
    for (const i of order) {
      const raw = row[i] ?? "";
      const td = line.insertCell();
      td.dataset.raw = raw;
      td.textContent = PROBABILITIES.has(header[i]) || header[i].startsWith("p_") ? (raw === "" ? "" : Number(raw).toFixed(3)) : raw;
    }
  }
  table.replaceChildren(head, body);
}

// ---------------------------------------------------------------- start

function start() {
  $("token").value = token();
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    loadModel();
  });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("token").value = "";
    loadModel();
  });
  $("record-form").addEventListener("submit", predictRecord);
  $("record-reset").addEventListener("click", resetRecord);
  $("csv-form").addEventListener("submit", predictCsv);
  loadModel();
  setInterval(loadModel, POLL_MS);
}

start();
