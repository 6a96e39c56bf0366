//! Model files as `serve` and `predict` load them: any bytes, the file's checks, then a
//! prediction of a few rows and the answers.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ndarray::Array2;
use netsec::serve::LoadedModel;

fuzz_target!(|bytes: &[u8]| {
    let Ok(model) = LoadedModel::from_bytes(Path::new("fuzz.json"), bytes, String::new(), None)
    else {
        return;
    };
    let k = model.answers.len();
    let rows = Array2::from_shape_fn((3, model.width), |(r, c)| (r * 7 + c) as f64 - 2.5);
    let proba = model
        .file
        .model
        .predict_proba(rows.view())
        .expect("a checked model predicts");
    assert_eq!(proba.dim(), (3, k));
    for row in proba.rows() {
        let row = row.to_vec();
        let answer = model.answers.answer(&row);
        serde_json::to_vec(&model.answers.json(&answer, Some(&row))).expect("answer as JSON");
    }
});
