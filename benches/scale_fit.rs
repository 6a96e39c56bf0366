//! One netsec fit on a large training file, timed, then scored on its test file: the netsec
//! side of `benches/scale_vs_lightgbm.sh`, which runs the peers (LightGBM, XGBoost,
//! scikit-learn) on the same two files and prints the ratios.
//!
//! ```sh
//! cargo bench --bench scale_fit -- TRAIN.csv TEST.csv SCHEMA.yaml ALGORITHM 'PARAMS_JSON'
//! ```
//!
//! Prints one JSON line: load, fit and predict seconds, the test figures (attack-level F1,
//! accuracy, macro-F1), training rows and features. The fit time includes binning, as
//! LightGBM's `fit` includes its dataset construction. Peak RSS is measured around the whole
//! process by the script (`/usr/bin/time`).

use std::path::Path;
use std::time::Instant;

use netsec::data::dataset::{Dataset, dataset_from_table};
use netsec::data::load::load_file;
use netsec::data::schema::Schema;
use netsec::models::metrics::Metrics;
use netsec::models::{self, Params};

fn load(path: &str, schema: &Schema) -> Dataset {
    let table = load_file(Path::new(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    dataset_from_table(&table, schema).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn main() {
    // `cargo bench` appends `--bench`; the positional arguments are the rest.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [train, test, schema, algorithm, params] = args.as_slice() else {
        eprintln!("usage: scale_fit TRAIN.csv TEST.csv SCHEMA.yaml ALGORITHM PARAMS_JSON");
        std::process::exit(2);
    };
    let schema = Schema::from_file(Path::new(schema)).expect("schema");
    let params: Params = serde_json::from_str(params).expect("PARAMS_JSON: a JSON object");
    let algorithm = models::algorithm(algorithm).expect("a netsec algorithm name");

    let started = Instant::now();
    let train = load(train, &schema);
    let test = load(test, &schema);
    let load_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let model = algorithm
        .fit_named(
            &params,
            train.features.view(),
            &train.class_ids,
            &train.classes.names,
            42,
        )
        .expect("fit");
    let fit_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let proba = model.predict_proba(test.features.view()).expect("predict");
    let predict_seconds = started.elapsed().as_secs_f64();
    // The test file's classes are the values found in it; score in the training classes' ids.
    let test_ids: Vec<u32> = test
        .class_ids
        .iter()
        .map(|&id| {
            let name = &test.classes.names[id as usize];
            let trained = train.classes.names.iter().position(|n| n == name);
            trained.unwrap_or_else(|| panic!("test class `{name}` not in the training rows")) as u32
        })
        .collect();
    let metrics = Metrics::compute(&test_ids, proba.view(), &train.classes);
    let macro_f1 = metrics.classes.as_ref().map(|c| c.macro_f1);

    println!(
        "{}",
        serde_json::json!({
            "side": "netsec",
            "algorithm": algorithm.name(),
            "train_rows": train.len(),
            "features": train.feature_names.len(),
            "classes": train.classes.names.len(),
            "load_seconds": load_seconds,
            "fit_seconds": fit_seconds,
            "predict_seconds": predict_seconds,
            "test_f1": metrics.f1,
            "test_accuracy": metrics.accuracy,
            "test_macro_f1": macro_f1,
        })
    );
}
