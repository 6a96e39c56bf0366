"""The peer side of benches/intrusion_1m.sh: the grid of experiments/intrusion-1m.yaml
searched over LightGBM by scikit-learn, on the train/test files `netsec data split` wrote.

    python benches/intrusion_search_peers.py grid|halving TRAIN.csv TEST.csv

grid: GridSearchCV; halving: HalvingGridSearchCV (factor 3, min_resources 10000, over
training rows), both cv=3 stratified, scoring f1 (attack), n_jobs=2 with one LightGBM thread
per fit (the two cores go to parallel fits, as netsec's sweep does). Prints one JSON line.
"""

import json
import sys
import time

from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV, StratifiedKFold

from scale_peers import frames

GRID = {
    "learning_rate": [0.05, 0.1, 0.3],
    "max_depth": [2, 3, 4],
    "n_estimators": [25, 50, 100],
}


def main():
    import lightgbm

    mode, train_path, test_path = sys.argv[1:4]
    started = time.perf_counter()
    x_train, y_train, x_test, y_test = frames(train_path, test_path, "label")
    y_train = (y_train != "normal").astype(int).to_numpy()
    y_test = (y_test != "normal").astype(int).to_numpy()
    load_seconds = time.perf_counter() - started
    estimator = lightgbm.LGBMClassifier(max_bin=255, n_jobs=1, verbose=-1)
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=42)
    if mode == "grid":
        search = GridSearchCV(estimator, GRID, cv=folds, scoring="f1", n_jobs=2)
    else:
        search = HalvingGridSearchCV(
            estimator, GRID, factor=3, resource="n_samples", min_resources=10000,
            cv=folds, scoring="f1", n_jobs=2, random_state=42,
        )
    started = time.perf_counter()
    search.fit(x_train, y_train)
    seconds = time.perf_counter() - started
    print(json.dumps({
        "side": f"LightGBM {'GridSearchCV' if mode == 'grid' else 'HalvingGridSearchCV'}",
        "load_seconds": load_seconds,
        "seconds": seconds,
        "candidates_fitted": len(search.cv_results_["params"]),
        "best_params": search.best_params_,
        "best_cv_f1": search.best_score_,
        "test_f1": f1_score(y_test, search.predict(x_test)),
    }))


if __name__ == "__main__":
    main()
