"""The Python serving stack netsec serve replaces, for benches/serve_vs_fastapi.sh:
FastAPI + uvicorn + scikit-learn, a RandomForestClassifier(n_estimators=128) fitted on all
of phishing.csv, answering the same bodies as netsec serve.

    NETSEC_PHISHING_CSV=../shared/data/phishing.csv uvicorn serve_fastapi:app --workers 2
"""
import io
import os

import pandas as pd
from fastapi import FastAPI, Request, Response
from sklearn.ensemble import RandomForestClassifier

data = pd.read_csv(os.environ["NETSEC_PHISHING_CSV"])
features = [c for c in data.columns if c != "Result"]
model = RandomForestClassifier(n_estimators=128, random_state=42)
model.fit(data[features], data["Result"])
attack_index = list(model.classes_).index(-1)  # Result = -1 is phishing, the attack class

app = FastAPI()


@app.post("/predict")
async def predict(record: dict):
    p = float(model.predict_proba(pd.DataFrame([record])[features])[0, attack_index])
    attack = p >= 0.5
    return {
        "predictions": [
            {
                "label": -1 if attack else 1,
                "class": "phishing" if attack else "legitimate",
                "attack_probability": p,
            }
        ]
    }


@app.post("/predict/csv")
async def predict_csv(request: Request):
    frame = pd.read_csv(io.BytesIO(await request.body()))
    p = model.predict_proba(frame[features])[:, attack_index]
    frame["predicted_label"] = [-1 if x >= 0.5 else 1 for x in p]
    frame["predicted_class"] = ["phishing" if x >= 0.5 else "legitimate" for x in p]
    frame["attack_probability"] = p
    return Response(frame.to_csv(index=False), media_type="text/csv")
