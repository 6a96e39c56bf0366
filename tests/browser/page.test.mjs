// The serving page in a real browser: Debian's chromium driven by playwright-core against a
// real `netsec serve` on 127.0.0.1 (port 0), with a model trained by `netsec experiment run`
// on the UCI phishing data at the start. Every page must answer what the API answers, load
// nothing from another origin, and fit a phone's width. Screenshots go to
// $NETSEC_BROWSER_ARTIFACTS (default: <cargo target dir>/browser-test), outside git.
//
//   NETSEC_BIN=/path/to/netsec node --test page.test.mjs

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const targetDir = process.env.CARGO_TARGET_DIR || path.join(repo, "target");
const netsecBin = process.env.NETSEC_BIN || path.join(targetDir, "debug/netsec");
const chromiumBin = process.env.NETSEC_CHROMIUM || "/usr/bin/chromium";
const artifacts = process.env.NETSEC_BROWSER_ARTIFACTS || path.join(targetDir, "browser-test");
// The shared data beside the repository (read in place, never copied in).
const phishing = path.join(repo, "../shared/data/phishing.csv");
const sample = path.join(repo, "../shared/data/predict_sample_12rows.csv");
const TOKEN = "page-test-token";

const work = fs.mkdtempSync(path.join(os.tmpdir(), "netsec-page-"));
const servers = [];
let browser;
let plain; // the server without a token, serving a store (for the hot reload)
let models; // { first, second }: paths of two trained model files

// ------------------------------------------------------------------ helpers

// Trains a model on the phishing data with a one-trial grid; returns its path and sha256.
function train(name, models) {
  const grid = path.join(work, `${name}.yaml`);
  fs.writeFileSync(grid, [
    `name: ${name}`,
    `data: { source: csv, path: ${JSON.stringify(phishing)}, schema: ${JSON.stringify(path.join(repo, "data_schema/phishing.yaml"))} }`,
    "split: { test_fraction: 0.2, stratify: true, seed: 42 }",
    "cv: { folds: 2 }",
    "select: { metric: f1 }",
    "operating_point: { max_fpr: 0.05 }",
    "models:",
    models,
    "",
  ].join("\n"));
  const out = path.join(work, `${name}.json`);
  const stdout = execFileSync(netsecBin, [
    "experiment", "run", grid, "--state-dir", path.join(work, `state-${name}`),
    "--format", "json", "--model-out", out,
  ], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return { path: out, sha256: JSON.parse(stdout).best_model.sha256 };
}

// Puts a model into a file:// store as `<sha>/model.json` and points at it (pointer last,
// written atomically, as a publisher does).
function publish(store, version, model) {
  fs.mkdirSync(path.join(store, model.sha256), { recursive: true });
  fs.copyFileSync(model.path, path.join(store, model.sha256, "model.json"));
  const pointer = { format: "netsec-pointer", name: "netsec-phishing", version, sha256: model.sha256, path: `${model.sha256}/model.json` };
  fs.writeFileSync(path.join(store, "current.json.tmp"), JSON.stringify(pointer));
  fs.renameSync(path.join(store, "current.json.tmp"), path.join(store, "current.json"));
}

// Starts `netsec serve` on 127.0.0.1:0; resolves with its base URL once it prints it.
function serve(model, env = {}) {
  const child = spawn(netsecBin, ["serve", "--model", model, "--bind", "127.0.0.1:0", "--workers", "2", "--reload-interval", "1s"], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk) => { stderr += chunk; });
  servers.push(child);
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once("line", (line) => {
      const url = line.slice(line.lastIndexOf("http://")).trim();
      resolve({ url, child, origin: new URL(url).origin });
    });
    child.once("exit", (code) => reject(new Error(`netsec serve exited ${code}: ${stderr}`)));
  });
}

// A browser page that records every request to another origin than the server's.
async function open(server, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const elsewhere = [];
  context.on("request", (request) => {
    const url = request.url();
    // blob: URLs carry their creator's origin (the scored CSV's download).
    if (new URL(url).origin !== server.origin) elsewhere.push(url);
  });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(String(error)));
  await page.goto(server.url + "/");
  const done = async () => {
    await context.close();
    assert.deepEqual(elsewhere, [], "requests to another origin");
    assert.deepEqual(problems, [], "errors in the page's script");
  };
  return { page, done };
}

async function screenshot(page, name, fullPage = true) {
  fs.mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage });
}

// RFC 4180, as the page reads it.
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

// Rows of a CSV as objects by column name.
function records(text) {
  const [header, ...rows] = parseCsv(text);
  return rows.map((row) => Object.fromEntries(header.map((name, i) => [name, row[i]])));
}

async function postCsv(server, body, headers = {}) {
  return fetch(server.url + "/predict/csv", { method: "POST", headers: { "Content-Type": "text/csv", ...headers }, body });
}

// The page's result table as objects by column name (raw cell text, before rounding).
async function pageTable(page) {
  return page.$$eval("#csv-table tbody tr", (rows) => {
    const names = [...document.querySelectorAll("#csv-table thead th")].map((th) => th.dataset.column);
    return rows.map((tr) => ({
      attack: tr.classList.contains("attack"),
      cells: Object.fromEntries([...tr.cells].map((td, i) => [names[i], td.dataset.raw])),
    }));
  });
}

async function upload(page, file) {
  await page.setInputFiles("#csv-file", file);
  await page.click("#csv-form button[type=submit]");
}

// ------------------------------------------------------------------ setup

before(async () => {
  assert.ok(fs.existsSync(netsecBin), `no netsec binary at ${netsecBin} (set NETSEC_BIN, or run cargo build first)`);
  assert.ok(fs.existsSync(chromiumBin), `no chromium at ${chromiumBin} (apt-get install chromium)`);
  assert.ok(fs.existsSync(sample), `${sample} is missing: the test reads the shared data beside the repository`);
  models = {
    first: train("page-tree", "  - algorithm: decision_tree\n    grid: { max_depth: [8] }"),
    second: train("page-tree-shallow", "  - algorithm: decision_tree\n    grid: { max_depth: [4] }"),
  };
  const store = path.join(work, "store");
  publish(store, 1, models.first);
  plain = await serve("file://" + store);
  browser = await chromium.launch({ executablePath: chromiumBin, args: ["--no-sandbox"] });
});

after(async () => {
  if (browser) await browser.close();
  for (const child of servers) child.kill();
  fs.rmSync(work, { recursive: true, force: true });
});

// ------------------------------------------------------------------ tests

test("the model card shows the served model and the form is pre-filled with its typical values", async () => {
  const { page, done } = await open(plain);
  const model = await (await fetch(plain.url + "/model")).json();
  await page.waitForSelector("#card-facts");
  const facts = await page.$$eval("#card-facts dd", (dds) => Object.fromEntries(dds.map((dd) => [dd.dataset.field, dd.textContent])));
  assert.equal(facts.name, model.name);
  assert.equal(facts.version, model.version);
  assert.equal(facts.algorithm, "decision_tree");
  assert.ok(facts.schema.includes(model.schema.hash.slice(0, 16)), facts.schema);
  assert.equal(await page.locator("#class-recall tbody tr").count(), model.classes.names.length);
  assert.match(await page.textContent("#operating-point"), /max_fpr 0.05/);
  const values = await page.$$eval("#fields select, #fields input", (controls) => controls.map((c) => [c.name, c.value]));
  assert.equal(values.length, model.schema.columns.length);
  for (const [i, column] of model.schema.columns.entries()) {
    assert.equal(column.typical.statistic, "most_frequent", column.name);
    assert.deepEqual(values[i], [column.name, String(column.typical.value)]);
  }
  await screenshot(page, "desktop-card");
  await done();
});

test("the form gets the same answer as POST /predict for that record", async () => {
  const { page, done } = await open(plain);
  await page.waitForSelector("#fields select");
  const [row] = records(fs.readFileSync(sample, "utf8"));
  for (const [name, value] of Object.entries(row)) await page.selectOption(`#fields [name="${name}"]`, value);
  await page.click("#record-form button[type=submit]");
  await page.waitForSelector("#answer");
  const shown = await page.$$eval("#answer dd", (dds) => Object.fromEntries(dds.map((dd) => [dd.dataset.field, JSON.parse(dd.dataset.value)])));
  const body = Object.fromEntries(Object.entries(row).map(([k, v]) => [k, Number(v)]));
  const api = await (await fetch(plain.url + "/predict", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })).json();
  assert.deepEqual(shown, api.predictions[0]);
  assert.equal(await page.locator("#answer .flag").textContent(), api.predictions[0].is_attack ? "ATTACK" : "normal");
  await done();
});

test("uploading the 12 sample rows shows /predict/csv's table, its counts, and downloads it", async () => {
  const { page, done } = await open(plain);
  await upload(page, sample);
  await page.waitForSelector("#csv-table tbody tr");
  const answer = await (await postCsv(plain, fs.readFileSync(sample))).text();
  const expected = records(answer);
  const table = await pageTable(page);
  assert.equal(table.length, 12);
  assert.deepEqual(table.map((r) => r.cells), expected);
  assert.deepEqual(table.map((r) => r.attack), expected.map((r) => r.is_attack === "true"));
  // Counts per class.
  const counts = await page.$$eval("#csv-counts li", (lis) => Object.fromEntries(lis.map((li) => [li.dataset.label, Number(li.dataset.count)])));
  const byLabel = {};
  for (const r of expected) byLabel[r.predicted_label] = (byLabel[r.predicted_label] || 0) + 1;
  assert.deepEqual(counts, byLabel);
  // Sorting: attack probability, descending on the second click.
  await page.click('#csv-table th[data-column="attack_probability"] button');
  await page.click('#csv-table th[data-column="attack_probability"] button');
  const sorted = (await pageTable(page)).map((r) => Number(r.cells.attack_probability));
  assert.deepEqual(sorted, [...sorted].sort((a, b) => b - a));
  assert.deepEqual([...sorted].sort(), expected.map((r) => Number(r.attack_probability)).sort());
  // The download is the API's answer, byte for byte.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#csv-download")]);
  assert.equal(fs.readFileSync(await download.path(), "utf8"), answer);
  await screenshot(page, "desktop-upload");
  await screenshot(page, "desktop-top", false);
  await done();
});

test("on a phone (390 x 844) nothing scrolls sideways", async () => {
  const { page, done } = await open(plain, { width: 390, height: 844 });
  await page.waitForSelector("#fields select");
  await upload(page, sample);
  await page.waitForSelector("#csv-table tbody tr");
  await page.click("#record-form button[type=submit]");
  await page.waitForSelector("#answer");
  const [scrollWidth, innerWidth] = await page.evaluate(() => [document.documentElement.scrollWidth, innerWidth]);
  assert.ok(scrollWidth <= innerWidth, `scrollWidth ${scrollWidth} > innerWidth ${innerWidth}`);
  await screenshot(page, "phone");
  await screenshot(page, "phone-top", false);
  await page.locator("#batch").scrollIntoViewIfNeeded();
  await screenshot(page, "phone-upload", false);
  await done();
});

test("a bad upload shows the API's message with its line and column", async () => {
  const lines = fs.readFileSync(sample, "utf8").split("\n");
  const cases = {
    // Not CSV: a row with more fields than the header.
    "not-csv.csv": "{\"URL_Length\": 1, \"SFH\": 0}\nthis, is, not, a, table\n",
    // Wrong columns: one renamed.
    "wrong-columns.csv": [lines[0].replace("URL_Length", "URL_Lenght"), ...lines.slice(1)].join("\n"),
    // A value the schema does not allow, on the fourth line.
    "bad-value.csv": [...lines.slice(0, 3), lines[3].replace(/^-?1,/, "7,"), ...lines.slice(4)].join("\n"),
  };
  const { page, done } = await open(plain);
  for (const [name, text] of Object.entries(cases)) {
    const file = path.join(work, name);
    fs.writeFileSync(file, text);
    const response = await postCsv(plain, text);
    assert.ok(response.status === 400 || response.status === 422, `${name}: ${response.status}`);
    const error = await response.json();
    await upload(page, file);
    const status = `${response.status}: ${error.message}`;
    await page.waitForFunction((text) => document.querySelector("#csv-status").textContent === text, status);
    const first = await page.$eval("#csv-errors li", (li) => ({ text: li.textContent, line: li.dataset.line, column: li.dataset.column }));
    const issue = (error.issues || [error])[0];
    if (issue.line) {
      assert.equal(first.line, String(issue.line), name);
      assert.match(first.text, new RegExp(`line ${issue.line}`), name);
    }
    if (issue.column) {
      assert.equal(first.column, issue.column, name);
      assert.ok(first.text.includes(`column ${issue.column}`), `${name}: ${first.text}`);
    }
    assert.ok(issue.line || issue.column, `${name}: the API names no line or column: ${JSON.stringify(error)}`);
    assert.equal(await page.locator("#csv-table tr").count(), 0);
    await screenshot(page, `bad-upload-${path.basename(name, ".csv")}`);
  }
  await done();
});

test("the card follows a hot reload", async () => {
  const { page, done } = await open(plain);
  await page.waitForSelector("#card-facts");
  publish(path.join(work, "store"), 2, models.second);
  await page.waitForFunction(() => document.querySelector('#card-facts [data-field="version"]')?.textContent === "2", null, { timeout: 20000 });
  assert.equal(await page.locator("#card-facts .reloaded").count(), 1);
  const model = await (await fetch(plain.url + "/model")).json();
  assert.equal(model.sha256, models.second.sha256);
  await done();
});

test("with a token set, the page says so until one is entered, then works", async () => {
  const guarded = await serve(models.first.path, { NETSEC_SERVE_TOKEN: TOKEN });
  const { page, done } = await open(guarded);
  await page.waitForSelector("#notice:not([hidden])");
  assert.match(await page.textContent("#notice"), /needs a bearer token/);
  await screenshot(page, "token-missing");
  await page.fill("#token", TOKEN);
  await page.click("#token-form button[type=submit]");
  await page.waitForSelector("#fields select");
  assert.equal(await page.isHidden("#notice"), true);
  await page.click("#record-form button[type=submit]");
  await page.waitForSelector("#answer");
  await upload(page, sample);
  await page.waitForSelector("#csv-table tbody tr");
  assert.equal(await page.locator("#csv-table tbody tr").count(), 12);
  // Kept for the session: a reload needs no second entry.
  await page.reload();
  await page.waitForSelector("#card-facts");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("netsec-token")), TOKEN);
  // A wrong token is refused with its own message.
  await page.fill("#token", "wrong");
  await page.click("#token-form button[type=submit]");
  await page.waitForFunction(() => /refused this bearer token/.test(document.querySelector("#notice").textContent));
  await done();
});
