//! Structure-aware serve bodies: arbitrary records over the served schema's columns, sent
//! as CSV (fast and general path) and as JSON. Both CSV paths must answer alike, and the
//! JSON body must be accepted or refused as the CSV body is, with the same features and
//! predictions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netsec::serve::csv_body;
use netsec::serve::input::{predict_csv_general, predict_json};
use netsec_fuzz::Records;

fuzz_target!(|input: (bool, Records)| {
    let (binary, records) = input;
    if records.rows.is_empty() || records.rows.len() > 64 {
        return;
    }
    let model = netsec_fuzz::model(binary);
    let csv = records.csv(model);
    let general = predict_csv_general(model, &csv, true, true);
    if let Some(fast) = csv_body::predict(model, &csv, true, true) {
        let general = general
            .as_ref()
            .expect("the general path reads the fast path's body");
        assert_eq!(
            String::from_utf8_lossy(&fast.csv),
            String::from_utf8_lossy(&general.csv)
        );
        assert_eq!(fast.features, general.features);
    }
    let json = predict_json(model, &records.json(model), true);
    match (&json, &general) {
        (Ok(j), Ok(c)) => {
            assert_eq!(j.features, c.features, "JSON and CSV features differ");
            assert_eq!(j.answers, c.answers, "JSON and CSV answers differ");
        }
        (Err(_), Err(_)) => {}
        (j, c) => panic!(
            "JSON {} but CSV {}",
            j.as_ref().map_or_else(|e| e.to_string(), |_| "ok".into()),
            c.as_ref().map_or_else(|e| e.to_string(), |_| "ok".into()),
        ),
    }
});
