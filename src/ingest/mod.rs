//! The ingest stage: data sets kept in MongoDB. `data push` writes a validated file into a
//! collection, idempotently; grid files and `data pull` read it back as a table that types,
//! encodes and fingerprints exactly like the file it came from.

pub mod mongo;
