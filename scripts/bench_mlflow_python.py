#!/usr/bin/env python3
"""Reference workload for benches/mlflow_log.rs, with MLflow's own Python client.

Logs RUNS runs x (10 params + 20 metrics), one create_run + log_batch + set_terminated
per run, sequentially (what a plain Python training loop does), and prints the wall time
of that loop (imports and experiment creation excluded) as JSON on stdout.

    python bench_mlflow_python.py --tracking-uri http://127.0.0.1:5000 --runs 200
"""

import argparse
import json
import time

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--experiment", default=f"bench-python-{int(time.time())}")
    args = parser.parse_args()

    client = MlflowClient(tracking_uri=args.tracking_uri)
    experiment_id = client.create_experiment(args.experiment)
    started = time.perf_counter()
    for i in range(args.runs):
        run = client.create_run(experiment_id, run_name=f"run-{i:03}")
        ts = int(time.time() * 1000)
        params = [Param(f"param_{j}", str(i * j)) for j in range(10)]
        metrics = [Metric(f"metric_{j}", i / (j + 1), ts, 0) for j in range(20)]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id, "FINISHED")
    elapsed = time.perf_counter() - started
    print(json.dumps({"runs": args.runs, "seconds": elapsed}))


if __name__ == "__main__":
    main()
