#!/usr/bin/env bash
# Benchmark: one fit at intrusion scale, netsec against the tools users pick there, side by
# side in one run on the same train/test files (`netsec data synth --profile intrusion`,
# seed 7, netsec's stratified 80/20 split, seed 42; binary attack vs normal):
#   - gradient boosting, 100 rounds, lr 0.1, depth 3: netsec vs LightGBM (num_leaves 8,
#     max_depth 3, max_bin 255, n_jobs 2), XGBoost hist (n_jobs 2) and scikit-learn
#     HistGradientBoosting (8 leaves, depth 3, no early stopping);
#   - random forest, 100 trees: netsec vs scikit-learn RandomForestClassifier(n_jobs=-1);
#   - multi-class gradient boosting on the `nsl-kdd` profile: netsec vs LightGBM multiclass.
# Each fit runs in its own process; peak RSS is that process's (load + encode + fit).
# Prints wall time of each fit (netsec's includes binning, LightGBM's its Dataset
# construction), the ratio, test F1 / macro-F1, peak RSS, and the load average before and
# after. Measure on a quiet machine: a peer slowed by a concurrent build flatters netsec.
#
#   benches/scale_vs_lightgbm.sh                 # 100k and 1M rows
#   ROWS="100000" MULTICLASS_ROWS=100000 benches/scale_vs_lightgbm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${NETSEC_CACHE:-$HOME/.cache/netsec-ci}"
ROWS="${ROWS:-100000 1000000}"
MULTICLASS_ROWS="${MULTICLASS_ROWS:-100000}"
VENV="$CACHE/bench-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import lightgbm, xgboost, sklearn' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q scikit-learn==1.9.1 pandas==3.1.1 lightgbm==4.7.0 xgboost==3.2.0
fi
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet
cargo bench --bench scale_fit --no-run --quiet 2>/dev/null
FIT=$(ls -t "$TARGET"/release/deps/scale_fit-* | grep -v '\.d$' | head -1)
BIN="$TARGET/release/netsec"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)  ($(nproc) cores)"

# Runs one side under /usr/bin/time; appends {…, "peak_rss_mb": …} to $WORK/results.jsonl.
measure() {
  local tag=$1
  shift
  /usr/bin/time -f '%M' -o "$WORK/rss" "$@" > "$WORK/out.json"
  "$VENV/bin/python" - "$tag" "$WORK/out.json" "$WORK/rss" >> "$WORK/results.jsonl" <<'PY'
import json, sys
tag, out, rss = sys.argv[1:4]
row = json.loads(open(out).read().strip().splitlines()[-1])
row["tag"] = tag
row["peak_rss_mb"] = int(open(rss).read().split()[-1]) / 1024
print(json.dumps(row))
PY
}

prepare() {
  local profile=$1 rows=$2 schema=$3 dir="$WORK/$1-$2"
  mkdir -p "$dir"
  "$BIN" -q data synth --profile "$profile" --rows "$rows" --seed 7 --output "$dir/data.csv" >/dev/null
  "$BIN" -q data split -s "$schema" "$dir/data.csv" --seed 42 --out "$dir" >/dev/null
  rm "$dir/data.csv"
}

GB='{"n_estimators": 100, "learning_rate": 0.1, "max_depth": 3}'
RF='{"n_estimators": 100}'
for rows in $ROWS; do
  prepare intrusion "$rows" data_schema/intrusion.yaml
  d="$WORK/intrusion-$rows"
  measure "gb $rows" "$FIT" "$d/train.csv" "$d/test.csv" data_schema/intrusion.yaml gradient_boosting "$GB"
  for peer in lightgbm xgboost histgb; do
    measure "gb $rows" "$VENV/bin/python" benches/scale_peers.py "$peer" "$d/train.csv" "$d/test.csv" label normal
  done
  measure "rf $rows" "$FIT" "$d/train.csv" "$d/test.csv" data_schema/intrusion.yaml random_forest "$RF"
  measure "rf $rows" "$VENV/bin/python" benches/scale_peers.py sklearn_rf "$d/train.csv" "$d/test.csv" label normal
  rm -r "$d"
done
if [ "$MULTICLASS_ROWS" != 0 ]; then
  prepare nsl-kdd "$MULTICLASS_ROWS" data_schema/nsl-kdd.yaml
  d="$WORK/nsl-kdd-$MULTICLASS_ROWS"
  measure "gb multi-class $MULTICLASS_ROWS" "$FIT" "$d/train.csv" "$d/test.csv" data_schema/nsl-kdd.yaml gradient_boosting "$GB"
  measure "gb multi-class $MULTICLASS_ROWS" "$VENV/bin/python" benches/scale_peers.py lightgbm_multiclass "$d/train.csv" "$d/test.csv" label normal
fi

"$VENV/bin/python" - "$WORK/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'case':<22}{'side':<22}{'train rows':>11}{'fit s':>9}{'x netsec':>10}{'F1':>8}{'macro-F1':>10}{'peak RSS MB':>13}")
for tag in dict.fromkeys(r["tag"] for r in rows):
    group = [r for r in rows if r["tag"] == tag]
    netsec = next(r for r in group if r["side"] == "netsec")
    for r in group:
        f1 = "-" if r["test_f1"] is None or r["classes"] > 2 else f"{r['test_f1']:.4f}"
        print(f"{tag:<22}{r['side']:<22}{r['train_rows']:>11}{r['fit_seconds']:>9.2f}"
              f"{r['fit_seconds'] / netsec['fit_seconds']:>10.2f}{f1:>8}{r['test_macro_f1']:>10.4f}"
              f"{r['peak_rss_mb']:>13.0f}")
print("x netsec: the side's fit time over netsec's (above 1: netsec is faster)")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
