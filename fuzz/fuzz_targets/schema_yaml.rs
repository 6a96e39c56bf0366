//! Schema files (`data_schema/*.yaml`): any text, then what is built from a schema.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use netsec::data::dataset::FeatureEncoding;
use netsec::data::schema::Schema;
use netsec::serve::answer::RowAnswers;
use netsec::shared::Classes;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(schema) = Schema::from_yaml_str(Path::new("fuzz.yaml"), text) else {
        return;
    };
    let encoding = FeatureEncoding::from_schema(&schema);
    let _ = encoding.feature_names();
    let names = &schema.label.names;
    let _ = RowAnswers::new(
        &schema.label,
        Classes::binary(&names.negative, &names.positive),
    );
    // Model files carry the schema as JSON: it must read back the same.
    let json = serde_json::to_vec(&schema).expect("schema as JSON");
    let back: Schema = serde_json::from_slice(&json).expect("schema from its JSON");
    assert_eq!(back.hash, schema.hash);
});
