//! Retrain files (`retrain.yaml`): any text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use netsec::config::retrain::RetrainFile;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(file) = RetrainFile::from_yaml_str(Path::new("fuzz.yaml"), text) {
        let _ = file.drift.thresholds();
    }
});
