//! Grid files (`experiments/*.yaml`): any text, checked and expanded into trials.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use netsec::config::grid::GridFile;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let path = Path::new("fuzz.yaml");
    let Ok(grid) = GridFile::from_yaml_str(path, text) else {
        return;
    };
    let _ = grid.data.label_key();
    if let Ok(candidates) = netsec::sweep::plan::expand(&grid, path) {
        let _ = netsec::sweep::plan::work_units(&candidates);
    }
});
