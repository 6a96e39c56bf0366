"""Fit scikit-learn on exactly the rows the Rust accuracy test uses.

Usage:
    python scripts/sklearn_same_rows.py SPLIT_JSON [CSV [CASE_PREFIX]]
    python scripts/sklearn_same_rows.py --write-sklearn-split OUT_JSON [CSV]
    python scripts/sklearn_same_rows.py --multiclass ROWS_JSON [CASE_PREFIX]

The third form is the multi-class parity check (tests/it/multiclass_parity.rs): ROWS_JSON
holds netsec's encoded features, class ids, class names, its 5 stratified folds and the data
fingerprint; every case is fitted on each fold's other rows and predicts the fold, and the
pooled out-of-fold predictions give accuracy, macro-F1 and per-class recall, printed as the
Rust table the test stores (with the fingerprint).

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


# Multi-class cases: the parameters are written out on both sides (tests/it/multiclass_parity.rs).
# The `_bal` cases are netsec's `class_weight: balanced`: scikit-learn's class_weight="balanced"
# where the estimator has it; GradientBoostingClassifier and AdaBoostClassifier have none, so
# theirs is fit(sample_weight=compute_sample_weight("balanced", y)) on each fold's rows.
MULTICLASS_CASES = [
    ("dt_gini", lambda: DecisionTreeClassifier(criterion="gini", random_state=42)),
    ("rf_64", lambda: RandomForestClassifier(n_estimators=64, random_state=42, n_jobs=-1)),
    ("gb_50", lambda: GradientBoostingClassifier(n_estimators=50, random_state=42)),
    ("ada_50", lambda: AdaBoostClassifier(n_estimators=50, random_state=42)),
    ("logreg", lambda: LogisticRegression(max_iter=1000)),
    ("svm_rbf", lambda: SVC(probability=True, random_state=42)),
    ("dt_gini_bal", lambda: DecisionTreeClassifier(criterion="gini", class_weight="balanced", random_state=42)),
    ("rf_64_bal", lambda: RandomForestClassifier(n_estimators=64, class_weight="balanced", random_state=42, n_jobs=-1)),
    ("gb_50_bal", lambda: GradientBoostingClassifier(n_estimators=50, random_state=42)),
    ("ada_50_bal", lambda: AdaBoostClassifier(n_estimators=50, random_state=42)),
    ("logreg_bal", lambda: LogisticRegression(class_weight="balanced", max_iter=1000)),
    ("svm_rbf_bal", lambda: SVC(probability=True, class_weight="balanced", random_state=42)),
]
# Cases whose balanced weights go in as sample weights.
SAMPLE_WEIGHTED = {"gb_50_bal", "ada_50_bal"}


def multiclass(rows_json: Path, only: str) -> None:
    from sklearn.metrics import recall_score

    rows = json.loads(rows_json.read_text())
    x = np.asarray(rows["features"], dtype=float)
    y = np.asarray(rows["labels"], dtype=int)
    classes = rows["classes"]
    k = len(classes)
    print(f"// sklearn {__import__('sklearn').__version__}, {len(y)} rows, {k} classes")
    print(f'const FINGERPRINT: &str = "{rows["fingerprint"]}";')
    print("const SKLEARN: &[(&str, f64, f64, &[f64])] = &[")
    for label, make in MULTICLASS_CASES:
        if not label.startswith(only):
            continue
        proba = np.zeros((len(y), k))
        start = time.perf_counter()
        for val in rows["folds"]:
            fit = np.setdiff1d(np.arange(len(y)), val)
            if label in SAMPLE_WEIGHTED:
                from sklearn.utils.class_weight import compute_sample_weight

                weights = compute_sample_weight("balanced", y[fit])
                model = make().fit(x[fit], y[fit], sample_weight=weights)
            else:
                model = make().fit(x[fit], y[fit])
            # A class absent from a fold's training rows has no column: it gets 0.
            proba[np.asarray(val)[:, None], model.classes_[None, :]] = model.predict_proba(x[val])
        secs = time.perf_counter() - start
        # netsec's rule: the most probable class, ties to the lowest id (numpy's argmax).
        pred = proba.argmax(axis=1)
        acc = accuracy_score(y, pred)
        macro = f1_score(y, pred, average="macro")
        recall = recall_score(y, pred, average=None, labels=list(range(k)), zero_division=0)
        recalls = ", ".join(f"{r:.4f}" for r in recall)
        print(f'    ("{label}", {acc:.4f}, {macro:.4f}, &[{recalls}]), // {secs:.1f} s', flush=True)
    print("];")


def main() -> None:
    args = sys.argv[1:]
    if args[0] == "--multiclass":
        multiclass(Path(args[1]), args[2] if len(args) > 2 else "")
        return
    write_split = args[0] == "--write-sklearn-split"
    if write_split:
        args = args[1:]
    import pandas as pd  # only the phishing forms need it

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
