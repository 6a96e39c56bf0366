"""MLflow's own Python client on a netsec sweep's logged model (tests/it/logged_model.rs).

    python mlflow_logged_model.py TRACKING_URI EXPERIMENT TRIAL_KEY INPUT.csv

Finds the logged models of EXPERIMENT tagged netsec.trial_key = TRIAL_KEY; for the first,
the run that produced it, that run's model outputs and dataset inputs, and its predictions:
the model loaded with mlflow.pyfunc.load_model("models:/<model_id>") predicts INPUT.csv's
rows, read with pandas (typed as a CSV reader gives them). Prints one JSON object.
"""

import json
import sys

import mlflow
import pandas as pd
from mlflow import MlflowClient


def main():
    uri, experiment, trial_key, input_csv = sys.argv[1:5]
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no experiment {experiment!r}")
    models = mlflow.search_logged_models(
        experiment_ids=[exp.experiment_id],
        filter_string=f"tags.`netsec.trial_key` = '{trial_key}'",
        output_format="list",
    )
    report = {"model_ids": [m.model_id for m in models]}
    if not models:
        print(json.dumps(report))
        return
    model = models[0]
    run = client.get_run(model.source_run_id)
    outputs = run.outputs.model_outputs if run.outputs else []
    report.update(
        {
            "model_id": model.model_id,
            "name": model.name,
            "status": str(model.status),
            "source_run_id": model.source_run_id,
            "tags": dict(model.tags),
            "params": dict(model.params),
            "metrics": {m.key: m.value for m in model.metrics or []},
            "metric_model_ids": sorted({m.model_id for m in model.metrics or []}),
            "run_outputs": [o.model_id for o in outputs],
            "run_inputs": sorted(
                [
                    d.dataset.name,
                    next((t.value for t in d.tags if t.key == "mlflow.data.context"), None),
                ]
                for d in run.inputs.dataset_inputs
            ),
        }
    )
    loaded = mlflow.pyfunc.load_model(f"models:/{model.model_id}")
    report["flavors"] = sorted(loaded.metadata.flavors)
    predicted = loaded.predict(pd.read_csv(input_csv))
    report["labels"] = [str(v) for v in predicted["predicted_label"]]
    report["attack_probability"] = [float(v) for v in predicted["attack_probability"]]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
