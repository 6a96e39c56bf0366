#!/usr/bin/env bash
# Benchmark: the intrusion-scale search, side by side in one run on the same rows —
# netsec's full grid (experiments/intrusion-1m.yaml) and its successive halving
# (experiments/intrusion-1m-halving.yaml), and the same 27-point grid over LightGBM through
# scikit-learn's GridSearchCV and HalvingGridSearchCV (cv 3, n_jobs 2). Each search runs in
# its own process; prints wall time, the best point's CV F1 and test F1, peak RSS, the
# halving/grid time ratios and the load average. netsec's time includes generating the
# million rows; the peers read the same rows from the CSV files of `netsec data split`.
#
#   benches/intrusion_1m.sh            # about 15 minutes on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${NETSEC_CACHE:-$HOME/.cache/netsec-ci}"
VENV="$CACHE/bench-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import lightgbm, sklearn' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q scikit-learn==1.9.1 pandas==3.1.1 lightgbm==4.7.0 xgboost==3.2.0
fi
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/netsec"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)  ($(nproc) cores)"

"$BIN" -q data synth --profile intrusion --rows 1000000 --seed 7 --output "$WORK/data.csv" >/dev/null
"$BIN" -q data split -s data_schema/intrusion.yaml "$WORK/data.csv" --seed 42 --out "$WORK/split" >/dev/null
rm "$WORK/data.csv"

for grid in intrusion-1m intrusion-1m-halving; do
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$WORK/$grid.rss" \
    "$BIN" -q experiment run "experiments/$grid.yaml" --state-dir "$WORK/state-$grid" --format json > "$WORK/$grid.json"
  echo "$(date +%s.%N) - $start" | bc > "$WORK/$grid.seconds"
done
for mode in grid halving; do
  /usr/bin/time -f '%M' -o "$WORK/peer-$mode.rss" "$VENV/bin/python" benches/intrusion_search_peers.py \
    "$mode" "$WORK/split/train.csv" "$WORK/split/test.csv" > "$WORK/peer-$mode.json"
done

"$VENV/bin/python" - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
def rss(name):
    return int(open(f"{work}/{name}.rss").read().split()[-1]) / 1024
rows = []
for grid, side in (("intrusion-1m", "netsec grid"), ("intrusion-1m-halving", "netsec halving")):
    out = json.load(open(f"{work}/{grid}.json"))
    best = out["leaderboard"][0]
    rows.append((side, float(open(f"{work}/{grid}.seconds").read()), best["params"],
                 best["cv"]["f1"]["mean"], best["test"]["f1"], rss(grid)))
for mode in ("grid", "halving"):
    out = json.loads(open(f"{work}/peer-{mode}.json").read().strip().splitlines()[-1])
    rows.append((out["side"], out["seconds"], out["best_params"], out["best_cv_f1"],
                 out["test_f1"], rss(f"peer-{mode}")))
print(f"{'search':<34}{'wall s':>9}{'CV F1':>9}{'test F1':>9}{'peak RSS MB':>13}  best point")
for side, seconds, params, cv, test, mb in rows:
    point = {k: params[k] for k in ("learning_rate", "max_depth", "n_estimators")}
    print(f"{side:<34}{seconds:>9.1f}{cv:>9.4f}{test:>9.4f}{mb:>13.0f}  {point}")
print(f"netsec halving / grid time: {rows[1][1] / rows[0][1]:.2f}, "
      f"test F1 difference {rows[1][4] - rows[0][4]:+.4f}")
print(f"LightGBM halving / grid time: {rows[3][1] / rows[2][1]:.2f}")
print(f"GridSearchCV over LightGBM / netsec grid: {rows[2][1] / rows[0][1]:.2f}x; "
      f"halving: {rows[3][1] / rows[1][1]:.2f}x")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
