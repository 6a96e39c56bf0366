"""Fit scikit-learn on exactly the rows the Rust accuracy test uses.

Usage:
    python scripts/sklearn_same_rows.py SPLIT_JSON [CSV [CASE_PREFIX]]
    python scripts/sklearn_same_rows.py --write-sklearn-split OUT_JSON [CSV]

The second form writes scikit-learn's own `train_test_split(test_size=0.2, stratify=y,
random_state=42)` indices, for running the Rust test on that split with NETSEC_SPLIT_FILE.

SPLIT_JSON is written by `cargo test --release --test it accuracy::` to
$CARGO_TARGET_TMPDIR/phishing_split_seed42.json ({"train": [...], "test": [...]} row indices
into the CSV). CSV defaults to ../shared/data/phishing.csv next to this crate.
Labels are predicted as P(attack) >= 0.5, the Rust crate's rule. Prints a markdown table (accuracy, F1 with phishing = Result == -1 as positive, fit seconds)
whose cases mirror CASES in tests/it/accuracy.rs.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import AdaBoostClassifier, GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

CASES = [
    ("dt_gini", lambda: DecisionTreeClassifier(criterion="gini", random_state=42)),
    ("dt_entropy", lambda: DecisionTreeClassifier(criterion="entropy", random_state=42)),
    ("rf_128", lambda: RandomForestClassifier(n_estimators=128, random_state=42, n_jobs=-1)),
    ("gb_100", lambda: GradientBoostingClassifier(random_state=42)),
    ("gb_256", lambda: GradientBoostingClassifier(n_estimators=256, random_state=42)),
    ("gb_256_sub0.8", lambda: GradientBoostingClassifier(n_estimators=256, subsample=0.8, random_state=42)),
    ("gb_256_depth5", lambda: GradientBoostingClassifier(n_estimators=256, max_depth=5, random_state=42)),
    ("ada_50_lr1", lambda: AdaBoostClassifier(random_state=42)),
    ("ada_256_lr0.1", lambda: AdaBoostClassifier(n_estimators=256, learning_rate=0.1, random_state=42)),
    ("logreg", lambda: LogisticRegression(max_iter=1000)),
    ("svm_rbf_c1", lambda: SVC()),
    ("svm_rbf_c10", lambda: SVC(C=10)),
    ("svm_linear", lambda: SVC(kernel="linear")),
]


def main() -> None:
    args = sys.argv[1:]
    write_split = args[0] == "--write-sklearn-split"
    if write_split:
        args = args[1:]
    default_csv = Path(__file__).resolve().parents[1] / "../shared/data/phishing.csv"
    csv = Path(args[1]) if len(args) > 1 else default_csv
    df = pd.read_csv(csv)
    y = (df.pop("Result") == -1).to_numpy()
    x = df.to_numpy(dtype=float)
    if write_split:
        from sklearn.model_selection import train_test_split

        tr, te = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=42)
        Path(args[0]).write_text(
            json.dumps({"train": sorted(int(i) for i in tr), "test": sorted(int(i) for i in te)})
        )
        return
    split = json.loads(Path(args[0]).read_text())
    tr, te = split["train"], split["test"]
    only = args[2] if len(args) > 2 else ""
    print("| case | sklearn acc | F1 | fit s |")
    print("|---|---|---|---|")
    for label, make in CASES:
        if not label.startswith(only):
            continue
        model = make()
        start = time.perf_counter()
        model.fit(x[tr], y[tr])
        secs = time.perf_counter() - start
        # Same decision rule as the Rust side: attack iff P(attack) >= 0.5 (sklearn's predict()
        # sends exact 0.5 ties to classes_[0] = benign instead; pure-but-mixed leaves of a
        # decision tree hit that often on this data). SVC without probability: decision >= 0.
        if hasattr(model, "predict_proba") and not isinstance(model, SVC):
            pred = model.predict_proba(x[te])[:, list(model.classes_).index(True)] >= 0.5
        else:
            pred = model.decision_function(x[te]) >= 0
        print(f"| {label} | {accuracy_score(y[te], pred):.4f} | {f1_score(y[te], pred):.4f} | {secs:.3f} |", flush=True)


if __name__ == "__main__":
    main()
