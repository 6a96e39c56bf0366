//! `POST /predict/csv` bodies: any bytes, predicted by the served models. A body that the
//! fast path answers must get the same bytes from the general path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netsec::serve::csv_body;
use netsec::serve::input::{predict_csv, predict_csv_general};

fuzz_target!(|bytes: &[u8]| {
    let Some((&flags, body)) = bytes.split_first() else {
        return;
    };
    let model = netsec_fuzz::model(flags & 1 == 1);
    let (keep, probabilities) = (flags & 2 == 2, flags & 4 == 4);
    if let Some(fast) = csv_body::predict(model, body, keep, probabilities) {
        let general = predict_csv_general(model, body, keep, probabilities)
            .expect("the general path reads what the fast path reads");
        assert_eq!(
            String::from_utf8_lossy(&fast.csv),
            String::from_utf8_lossy(&general.csv)
        );
        assert_eq!(fast.counts, general.counts);
        // Features, answers and cells are only promised when the inputs are kept.
        if keep {
            assert_eq!(fast.features, general.features);
            assert_eq!(fast.answers, general.answers);
            assert_eq!(fast.inputs, general.inputs);
        }
    } else if let Err(e) = predict_csv(model, body, keep, probabilities) {
        serde_json::to_vec(&e).expect("error as JSON");
    }
});
