//! Store pointers (`current.json`) as a store would hand them to `serve`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netsec::storage::Pointer;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(pointer) = Pointer::parse("fuzz", bytes) {
        // What parses must write back to the same pointer.
        assert_eq!(
            Pointer::parse("fuzz", &pointer.to_json()).ok(),
            Some(pointer)
        );
    }
});
