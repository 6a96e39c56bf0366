"""onnxruntime against `netsec predict` on the same rows (tests/it/onnx_export.rs).

    python onnx_parity.py MODEL.onnx INPUT.csv PREDICTED.csv

INPUT.csv holds the rows as given to `netsec predict`; PREDICTED.csv is its output with
`--probabilities`. Each graph input is read from INPUT.csv's column of that name, typed as
the graph declares it (int64, double with an empty cell as NaN, bool, string), as a CSV
reader would give it. Prints one JSON object: the rows, the largest absolute difference of
attack_probability and of the p_<class> outputs, the rows whose predicted_label differs, and
the graph's metadata properties.
"""

import csv
import json
import math
import sys

import numpy as np
import onnxruntime as ort


def column(rows, header, name, onnx_type):
    cells = [row[header.index(name)] for row in rows]
    if onnx_type == "tensor(int64)":
        return np.array([int(float(c)) for c in cells], dtype=np.int64)
    if onnx_type == "tensor(double)":
        return np.array([float(c) if c.strip() else math.nan for c in cells], dtype=np.float64)
    if onnx_type == "tensor(bool)":
        return np.array([c.strip().lower() in ("true", "1", "yes") for c in cells], dtype=bool)
    if onnx_type == "tensor(string)":
        return np.array(cells, dtype=object)
    raise SystemExit(f"input {name}: unexpected type {onnx_type}")


def main():
    model, input_csv, predicted_csv = sys.argv[1:4]
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    with open(input_csv, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    feeds = {i.name: column(rows, header, i.name, i.type) for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    answers = dict(zip(names, session.run(None, feeds)))
    with open(predicted_csv, newline="") as f:
        reader = csv.reader(f)
        p_header = next(reader)
        predicted = list(reader)

    def netsec(name):
        at = p_header.index(name)
        return [r[at] for r in predicted]

    def max_diff(name):
        want = np.array([float(c) if c else math.nan for c in netsec(name)])
        got = np.asarray(answers[name], dtype=np.float64)
        if got.shape != want.shape:
            raise SystemExit(f"{name}: shape {got.shape}, netsec has {want.shape}")
        both_nan = np.isnan(want) & np.isnan(got)
        diff = np.where(both_nan, 0.0, np.abs(got - want))
        return float(np.nan_to_num(diff, nan=math.inf).max())

    labels = [str(v) for v in answers["predicted_label"]]
    mismatched = [i for i, (a, b) in enumerate(zip(labels, netsec("predicted_label"))) if a != b]
    meta = session.get_modelmeta().custom_metadata_map
    print(json.dumps({
        "rows": len(rows),
        "outputs": names,
        "input_types": {i.name: i.type for i in session.get_inputs()},
        "output_shapes": {n: list(np.asarray(answers[n]).shape) for n in names},
        "attack_probability": max_diff("attack_probability"),
        "class_probabilities": max(max_diff(n) for n in names if n.startswith("p_")),
        "label_mismatches": mismatched[:10],
        "label_mismatch_count": len(mismatched),
        "metadata": dict(meta),
    }))


if __name__ == "__main__":
    main()
