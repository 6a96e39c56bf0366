"""The scikit-learn side of benches/sweep_vs_sklearn.sh: GridSearchCV (cv=3, n_jobs=-1,
scoring F1 of the attack class) over the same grids as experiments/phishing.yaml, on the
train/test rows that `netsec data split` exported. Prints JSON."""
import json
import sys
import time

import pandas as pd
from sklearn.ensemble import AdaBoostClassifier, GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

data_path, split_path = sys.argv[1], sys.argv[2]
df = pd.read_csv(data_path)
split = json.load(open(split_path))
X = df.drop(columns=["Result"]).to_numpy(dtype=float)
y = (df["Result"] == -1).astype(int).to_numpy()  # attack (phishing) = 1, the positive class
Xtr, ytr = X[split["train"]], y[split["train"]]
Xte, yte = X[split["test"]], y[split["test"]]

grids = [
    ("decision_tree", DecisionTreeClassifier(random_state=42),
     {"criterion": ["gini", "entropy"], "max_depth": [None, 8, 16]}),
    ("random_forest", RandomForestClassifier(random_state=42),
     {"n_estimators": [8, 16, 32, 128, 256]}),
    ("gradient_boosting", GradientBoostingClassifier(random_state=42),
     {"learning_rate": [0.1, 0.01, 0.05, 0.001], "subsample": [0.6, 0.7, 0.75, 0.85, 0.9],
      "n_estimators": [8, 16, 32, 64, 128, 256]}),
    ("logistic_regression", LogisticRegression(max_iter=1000), {"C": [0.1, 1.0, 10.0]}),
    ("adaboost", AdaBoostClassifier(random_state=42),
     {"learning_rate": [0.1, 0.01, 0.001], "n_estimators": [8, 16, 32, 64, 128, 256]}),
    ("svm", SVC(kernel="rbf", gamma="scale"), {"C": [1.0, 10.0]}),
]

start = time.perf_counter()
per_algorithm = []
points = 0
for name, estimator, grid in grids:
    t0 = time.perf_counter()
    search = GridSearchCV(estimator, grid, cv=3, scoring="f1", n_jobs=-1)
    search.fit(Xtr, ytr)
    pred = search.predict(Xte)
    points += len(search.cv_results_["params"])
    per_algorithm.append({
        "algorithm": name,
        "cv_f1": search.best_score_,
        "params": {k: v for k, v in search.best_params_.items()},
        "test_f1": f1_score(yte, pred),
        "test_accuracy": accuracy_score(yte, pred),
        "seconds": time.perf_counter() - t0,
    })
seconds = time.perf_counter() - start
best = max(per_algorithm, key=lambda a: a["cv_f1"])
print(json.dumps({"seconds": seconds, "grid_points": points, "best": best,
                  "per_algorithm": per_algorithm}, default=str))
