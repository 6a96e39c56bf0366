#!/usr/bin/env bash
# Benchmark: the full phishing grid (experiments/phishing.yaml) with netsec, and the same
# grids with scikit-learn GridSearchCV (cv=3, n_jobs=-1) on exactly the same train/test
# rows, one after the other on this machine. Prints wall time of each, the ratio, and the
# test F1 (attack class) of the model each one selects by cross-validation.
#
#   benches/sweep_vs_sklearn.sh            # needs ../shared/data/phishing.csv
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${NETSEC_CACHE:-$HOME/.cache/netsec-ci}"
DATA="${NETSEC_PHISHING_CSV:-../shared/data/phishing.csv}"
VENV="$CACHE/bench-venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q scikit-learn pandas
fi
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/netsec"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The split netsec's sweep uses (same seed, same function), exported for scikit-learn.
"$BIN" -q data split -s data_schema/phishing.yaml "$DATA" --seed 42 --out "$WORK/split" >/dev/null

start=$(date +%s.%N)
"$BIN" -q experiment run experiments/phishing.yaml --state-dir "$WORK/state" --format json > "$WORK/netsec.json"
end=$(date +%s.%N)
netsec_seconds=$(echo "$end - $start" | bc)

"$VENV/bin/python" benches/sweep_sklearn.py "$DATA" "$WORK/split/split.json" > "$WORK/sklearn.json"

"$VENV/bin/python" - "$WORK/netsec.json" "$WORK/sklearn.json" "$netsec_seconds" <<'PY'
import json, sys
netsec = json.load(open(sys.argv[1]))
sk = json.load(open(sys.argv[2]))
ns = float(sys.argv[3])
best = netsec["leaderboard"][0]
print(f"{'':28}{'netsec':>14}{'scikit-learn':>16}")
print(f"{'trials (grid points)':28}{netsec['trials_planned']:>14}{sk['grid_points']:>16}")
print(f"{'wall seconds':28}{ns:>14.1f}{sk['seconds']:>16.1f}")
print(f"{'best by CV':28}{best['algorithm']:>14}{sk['best']['algorithm']:>16}")
print(f"{'its test F1 (attack)':28}{best['test']['f1']:>14.4f}{sk['best']['test_f1']:>16.4f}")
print(f"{'its test accuracy':28}{best['test']['accuracy']:>14.4f}{sk['best']['test_accuracy']:>16.4f}")
print(f"speedup: netsec is {sk['seconds'] / ns:.1f}x faster than GridSearchCV")
print("per algorithm (sklearn best by CV): " + ", ".join(
    f"{a['algorithm']} {a['seconds']:.1f}s f1 {a['test_f1']:.4f}" for a in sk["per_algorithm"]))
PY
