"""The peer side of benches/scale_vs_lightgbm.sh: one fit of one peer on TRAIN.csv, scored on
TEST.csv (the files `netsec data split` wrote), printed as one JSON line.

    python benches/scale_peers.py PEER TRAIN.csv TEST.csv LABEL NEGATIVE

PEER: lightgbm, xgboost, histgb, sklearn_rf (binary: every label other than NEGATIVE is an
attack) or lightgbm_multiclass (one class per label value). String columns are one-hot
encoded (float32, as a pandas pipeline does), so every peer sees the columns netsec's schema
encoding gives its models; constant columns are dropped (netsec's schema excludes them).
"""

import json
import sys
import time

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score


def frames(train_path, test_path, label):
    train = pd.read_csv(train_path)
    test = pd.read_csv(test_path)
    y_train, y_test = train.pop(label), test.pop(label)
    constant = [c for c in train.columns if train[c].nunique(dropna=False) <= 1]
    train, test = train.drop(columns=constant), test.drop(columns=constant)
    strings = [c for c in train.columns if not pd.api.types.is_numeric_dtype(train[c])]
    for c in strings:
        categories = sorted(train[c].dropna().unique())
        train[c] = pd.Categorical(train[c], categories=categories)
        test[c] = pd.Categorical(test[c], categories=categories)
    x_train = pd.get_dummies(train, columns=strings, dtype=np.float32).astype(np.float32)
    x_test = pd.get_dummies(test, columns=strings, dtype=np.float32).astype(np.float32)
    return x_train, y_train, x_test, y_test


def model(peer, n_classes):
    if peer in ("lightgbm", "lightgbm_multiclass"):
        import lightgbm

        objective = "multiclass" if peer == "lightgbm_multiclass" else "binary"
        return lightgbm.LGBMClassifier(
            objective=objective, n_estimators=100, learning_rate=0.1, num_leaves=8,
            max_depth=3, max_bin=255, n_jobs=2, verbose=-1,
        )
    if peer == "xgboost":
        import xgboost

        return xgboost.XGBClassifier(
            n_estimators=100, learning_rate=0.1, max_depth=3, tree_method="hist",
            max_bin=256, n_jobs=2,
        )
    if peer == "histgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.1, max_leaf_nodes=8, max_depth=3,
            early_stopping=False,
        )
    if peer == "sklearn_rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=100, n_jobs=-1, random_state=0)
    raise SystemExit(f"unknown peer {peer!r}")


def main():
    peer, train_path, test_path, label, negative = sys.argv[1:6]
    started = time.perf_counter()
    x_train, y_train, x_test, y_test = frames(train_path, test_path, label)
    load_seconds = time.perf_counter() - started
    if peer == "lightgbm_multiclass":
        classes = sorted(y_train.unique())
        index = {c: i for i, c in enumerate(classes)}
        y_train = y_train.map(index).to_numpy()
        y_test = y_test.map(index).fillna(-1).astype(int).to_numpy()
    else:
        classes = [0, 1]
        y_train = (y_train != negative).astype(int).to_numpy()
        y_test = (y_test != negative).astype(int).to_numpy()
    clf = model(peer, len(classes))
    started = time.perf_counter()
    clf.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    predicted = np.asarray(clf.predict(x_test)).astype(int)
    predict_seconds = time.perf_counter() - started
    binary = len(classes) == 2
    print(json.dumps({
        "side": peer,
        "train_rows": len(y_train),
        "features": x_train.shape[1],
        "classes": len(classes),
        "load_seconds": load_seconds,
        "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
        "test_f1": f1_score(y_test, predicted) if binary else None,
        "test_accuracy": accuracy_score(y_test, predicted),
        "test_macro_f1": f1_score(y_test, predicted, average="macro"),
    }))


if __name__ == "__main__":
    main()
