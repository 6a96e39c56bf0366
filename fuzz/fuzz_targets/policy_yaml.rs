//! Promotion policy files (`registry/*.yaml`): any text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use netsec::registry::Policy;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(policy) = Policy::from_yaml_str(Path::new("fuzz.yaml"), text) {
        let _ = policy.floors.set();
    }
});
