//! `POST /predict` bodies: any bytes, predicted by the served models, answers rendered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netsec::serve::input::predict_json;

fuzz_target!(|bytes: &[u8]| {
    let Some((&flags, body)) = bytes.split_first() else {
        return;
    };
    let model = netsec_fuzz::model(flags & 1 == 1);
    let with_probabilities = flags & 2 == 2;
    match predict_json(model, body, with_probabilities) {
        Ok(p) => {
            assert_eq!(p.answers.len(), p.records.len());
            assert_eq!(p.features.len(), p.records.len() * model.width);
            let k = model.answers.len();
            for (i, answer) in p.answers.iter().enumerate() {
                let proba = with_probabilities.then(|| &p.probabilities[i * k..(i + 1) * k]);
                serde_json::to_vec(&model.answers.json(answer, proba)).expect("answer as JSON");
            }
        }
        Err(e) => {
            serde_json::to_vec(&e).expect("error as JSON");
        }
    }
});
