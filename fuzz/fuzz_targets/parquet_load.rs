//! Parquet files as `netsec` loads them: any bytes, then typed against the `mixed` schema.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use netsec::data::load::parquet_from_bytes;
use netsec::data::typed::{LabelPresence, type_table};

fuzz_target!(init: {
    // The loader catches the panics of polars' Parquet reader and answers a typed error;
    // libFuzzer's hook would abort on those caught panics, so the default hook is put
    // back. A panic that escapes the loader still ends the run as a crash.
    let _ = std::panic::take_hook();
}, |bytes: &[u8]| {
    let Ok(table) = parquet_from_bytes(Path::new("fuzz.parquet"), bytes.to_vec()) else {
        return;
    };
    let model = netsec_fuzz::model(false);
    let mut typed = type_table(&table, &model.file.schema, LabelPresence::Optional);
    typed.accept_unseen_categories();
    if typed.issues.is_empty() {
        let x = model.file.encoding.encode(&typed);
        assert_eq!(x.nrows(), table.len());
    }
});
