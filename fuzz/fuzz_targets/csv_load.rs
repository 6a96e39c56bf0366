//! CSV files as `netsec` loads them (`data validate`, `predict`, sweeps): any bytes, then
//! typed against the `mixed` schema and encoded as prediction does.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use netsec::data::load::csv_from_bytes;
use netsec::data::typed::{LabelPresence, type_table};

fuzz_target!(|bytes: &[u8]| {
    let Ok(table) = csv_from_bytes(Path::new("fuzz.csv"), bytes.to_vec()) else {
        return;
    };
    for row in 0..table.len() {
        let _ = table.locate(row);
    }
    let model = netsec_fuzz::model(false);
    let mut typed = type_table(&table, &model.file.schema, LabelPresence::Optional);
    typed.accept_unseen_categories();
    if typed.issues.is_empty() {
        let x = model.file.encoding.encode(&typed);
        assert_eq!(x.nrows(), table.len());
        assert_eq!(x.ncols(), model.width);
    } else {
        let _ = netsec::data::dataset::invalid(&table, &model.file.schema, &typed).to_string();
    }
});
