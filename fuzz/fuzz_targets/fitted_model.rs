//! The fitted-model part of a model file (`{"algorithm": ..., ...}`): any bytes, the
//! deserializer's checks, then predictions, staged predictions and truncation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ndarray::Array2;
use netsec::models::FittedModel;

fuzz_target!(|bytes: &[u8]| {
    let Ok(model) = serde_json::from_slice::<FittedModel>(bytes) else {
        return;
    };
    let (d, k) = (model.n_features(), model.n_classes());
    let rows = Array2::from_shape_fn((3, d), |(r, c)| (r * 5 + c) as f64 - 3.5);
    let proba = model
        .predict_proba(rows.view())
        .expect("a checked model predicts");
    assert_eq!(proba.dim(), (3, k));
    let mut one = vec![0.0; k];
    model
        .predict_proba_row(rows.row(0).as_slice().unwrap_or_default(), &mut one)
        .expect("one row predicts");
    if let Some(n) = model.n_stages()
        && n > 0
    {
        let _ = model.staged_predict_proba(rows.view(), &[1, n]);
        let _ = model.truncated(1);
    }
});
