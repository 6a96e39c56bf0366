#!/usr/bin/env bash
# Benchmark: `netsec serve` against FastAPI + uvicorn + scikit-learn serving the same model
# family (random forest, 128 trees, on phishing.csv), one after the other on 127.0.0.1,
# loaded with wrk (Debian package `wrk`). Each scenario runs for DURATION seconds:
#   /predict one record: sequential (1 connection), 4, 16 and 64 connections
#   /predict/csv with a 10,000-row body, sequential
# Prints requests/s, p50 and p99 of each for both servers, the ratios, a two-line summary
# (single record and CSV 10k) and the load average (other processes skew the tail).
#
#   benches/serve_vs_fastapi.sh      # DURATION=10 (seconds per scenario); needs ../shared/data/phishing.csv
#   NETSEC_WORKERS=1 benches/serve_vs_fastapi.sh   # netsec serve --workers 1
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${NETSEC_CACHE:-$HOME/.cache/netsec-ci}"
DATA="$(realpath "${NETSEC_PHISHING_CSV:-../shared/data/phishing.csv}")"
DURATION="${DURATION:-10}"
NETSEC_PORT="${NETSEC_PORT:-18480}"
FASTAPI_PORT="${FASTAPI_PORT:-18481}"
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 2; }
VENV="$CACHE/serve-venv"
if [ ! -x "$VENV/bin/uvicorn" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q fastapi 'uvicorn[standard]' scikit-learn pandas
fi
# NETSEC_BIN=path/to/netsec skips the build (e.g. a binary built elsewhere).
if [ -z "${NETSEC_BIN:-}" ]; then
  cargo build --release --quiet
fi
BIN="${NETSEC_BIN:-${CARGO_TARGET_DIR:-target}/release/netsec}"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The netsec model: the same family as the Python one (random forest, 128 trees).
cat > "$WORK/grid.yaml" <<YAML
name: serve-bench
data: { source: csv, path: $DATA, schema: $PWD/data_schema/phishing.yaml }
split: { test_fraction: 0.2, stratify: true, seed: 42 }
cv: { folds: 2 }
select: { metric: f1 }
models:
  - algorithm: random_forest
    grid: { n_estimators: [128] }
YAML
"$BIN" -q experiment run "$WORK/grid.yaml" --state-dir "$WORK/state" --model-out "$WORK/model.json" >/dev/null

# Bodies: one record (JSON, features only) and 10,000 rows of CSV.
head -n 10001 "$DATA" > "$WORK/rows.csv"
python3 - "$DATA" > "$WORK/record.json" <<'PY'
import csv, json, sys
row = next(csv.DictReader(open(sys.argv[1])))
row.pop("Result")
print(json.dumps({k: int(v) for k, v in row.items()}))
PY
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("BODY_TYPE")
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
LUA

"$BIN" -q serve --model "$WORK/model.json" --bind "127.0.0.1:$NETSEC_PORT" \
  ${NETSEC_WORKERS:+--workers "$NETSEC_WORKERS"} >/dev/null &
PIDS+=($!)
(cd benches && NETSEC_PHISHING_CSV="$DATA" exec "$VENV/bin/uvicorn" serve_fastapi:app \
  --host 127.0.0.1 --port "$FASTAPI_PORT" --workers 2 --log-level warning) &
PIDS+=($!)
for port in "$NETSEC_PORT" "$FASTAPI_PORT"; do
  for _ in $(seq 1 120); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
      --data @"$WORK/record.json" "http://127.0.0.1:$port/predict" || true)
    [ "$code" = 200 ] && break
    sleep 0.5
  done
  [ "$code" = 200 ] || { echo "server on port $port did not come up" >&2; exit 1; }
done

# run PORT PATH BODY TYPE THREADS CONNECTIONS NAME
# For netsec, /metrics is read before and after: the server's own latency histogram.
run() {
  if [ "$1" = "$NETSEC_PORT" ]; then curl -s "http://127.0.0.1:$1/metrics" > "$WORK/$7.before.prom"; fi
  BODY_FILE="$3" BODY_TYPE="$4" wrk -t"$5" -c"$6" -d"${DURATION}s" --timeout 30s --latency \
    -s "$WORK/post.lua" "http://127.0.0.1:$1$2" > "$WORK/$7.txt"
  if [ "$1" = "$NETSEC_PORT" ]; then curl -s "http://127.0.0.1:$1/metrics" > "$WORK/$7.after.prom"; fi
}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for server in netsec:$NETSEC_PORT fastapi:$FASTAPI_PORT; do
  name=${server%%:*}; port=${server##*:}
  echo "loading $name ..." >&2
  run "$port" /predict "$WORK/record.json" application/json 1 1 "$name-seq"
  run "$port" /predict "$WORK/record.json" application/json 1 4 "$name-c4"
  run "$port" /predict "$WORK/record.json" application/json 2 16 "$name-c16"
  run "$port" /predict "$WORK/record.json" application/json 2 64 "$name-c64"
  run "$port" /predict/csv "$WORK/rows.csv" text/csv 1 1 "$name-csv"
done

python3 - "$WORK" <<'PY'
import re, sys
work = sys.argv[1]
def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
def parse(name):
    text = open(f"{work}/{name}.txt").read()
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50": ms(re.search(r"\s50%\s+(\S+)", text).group(1)),
        "p99": ms(re.search(r"\s99%\s+(\S+)", text).group(1)),
        "failed": (bad.group(1) if bad else "0") + ("; socket errors: " + errors.group(1) if errors else ""),
    }
def server_p99(name, route):
    """p99 of the server's own histogram over one scenario: the upper bound of the bucket
    holding it (wrk's percentiles include client stalls, amplified by its correction for
    coordinated omission when the request interval is microseconds)."""
    def buckets(path):
        out = {}
        for line in open(path):
            m = re.match(r'netsec_http_request_duration_seconds_bucket\{route="([^"]+)",status="200",le="([^"]+)"\} (\d+)', line)
            if m and m.group(1) == route:
                out[m.group(2)] = int(m.group(3))
        return out
    before, after = buckets(f"{work}/{name}.before.prom"), buckets(f"{work}/{name}.after.prom")
    delta = [(le, after[le] - before.get(le, 0)) for le in after]
    total = dict(delta).get("+Inf", 0)
    for le, n in delta:
        if total and n >= 0.99 * total:
            return "<= " + ("inf" if le == "+Inf" else f"{float(le) * 1000:g} ms")
    return "n/a"
scenarios = [("seq", "/predict, 1 record, 1 connection"), ("c4", "/predict, 1 record, 4 connections"),
             ("c16", "/predict, 1 record, 16 connections"),
             ("c64", "/predict, 1 record, 64 connections"), ("csv", "/predict/csv, 10,000 rows, 1 connection")]
print(f"{'scenario':42}{'server':>8}{'req/s':>11}{'p50 ms':>10}{'p99 ms':>10}  non-2xx; netsec's own p99")
for key, title in scenarios:
    results = {s: parse(f"{s}-{key}") for s in ("netsec", "fastapi")}
    for s, r in results.items():
        own = ""
        if s == "netsec":
            own = "; server p99 " + server_p99(f"netsec-{key}", "/predict/csv" if key == "csv" else "/predict")
        print(f"{title:42}{s:>8}{r['rps']:>11.1f}{r['p50']:>10.3f}{r['p99']:>10.3f}  {r['failed']}{own}")
    n, f = results["netsec"], results["fastapi"]
    print(f"{'':42}{'ratio':>8}{n['rps'] / f['rps']:>10.1f}x{f['p50'] / n['p50']:>9.1f}x{f['p99'] / n['p99']:>9.1f}x")
print()
for key, title in [("seq", "single record, 1 connection"), ("csv", "CSV 10,000 rows, 1 connection")]:
    n, f = parse(f"netsec-{key}"), parse(f"fastapi-{key}")
    print(f"summary {title}: netsec {n['rps']:.1f} req/s p50 {n['p50']:.3f} ms p99 {n['p99']:.3f} ms | "
          f"FastAPI {f['rps']:.1f} req/s p50 {f['p50']:.3f} ms p99 {f['p99']:.3f} ms | "
          f"throughput {n['rps'] / f['rps']:.1f}x, p99 {f['p99'] / n['p99']:.1f}x lower")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
