//! The S3 store's multipart path, through the library against a real server (moto): an
//! object above the 8 MiB threshold goes up in parts and comes back whole with its sha256;
//! a part whose connection dies (a fault proxy: a real server cannot be made to drop one
//! part on demand) aborts the upload — no object, no parts left behind.
//!
//! This binary holds one test: it sets the AWS credential variables for the SDK's standard
//! chain before anything else runs, which is only sound while no other thread reads the
//! environment.

mod common;

use common::fault_proxy::{Fault, FaultProxy};
use common::s3_server::{ACCESS_KEY, Kind, S3Server, SECRET_KEY, block_on};
use netsec::storage::s3::MULTIPART_THRESHOLD;
use netsec::storage::{ObjectStore, S3Options, S3Store, StorageError};
use sha2::{Digest, Sha256};

#[test]
fn multipart_uploads_complete_or_abort() {
    // SAFETY: the only test of this binary, before it starts any thread of its own.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_CONFIG_FILE", "/dev/null");
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::remove_var("AWS_ENDPOINT_URL");
        std::env::remove_var("AWS_PROFILE");
    }
    let server = S3Server::start(Kind::Moto);
    server.create_bucket("netsec-big");
    // 2.5 parts, with content that differs per part.
    let bytes: Vec<u8> = (0..MULTIPART_THRESHOLD * 5 / 2)
        .map(|i| (i % 251) as u8 ^ (i / MULTIPART_THRESHOLD) as u8)
        .collect();
    let sha = netsec::data::schema::hex(&Sha256::digest(&bytes));

    let options = S3Options {
        endpoint_url: Some(server.endpoint.clone()),
    };
    let store = block_on(S3Store::connect("netsec-big", "p", &options)).unwrap();
    block_on(store.put("big/model.json", &bytes)).unwrap();
    let info = block_on(store.head("big/model.json")).unwrap().unwrap();
    assert_eq!(info.size, bytes.len() as u64);
    assert_eq!(info.sha256.as_deref(), Some(sha.as_str()));
    assert_eq!(
        block_on(store.get("big/model.json")).unwrap().unwrap(),
        bytes
    );
    assert_eq!(block_on(store.get("big/absent.json")).unwrap(), None);

    // The second part's connection dies: the upload is aborted.
    let proxy = FaultProxy::start(
        &server.endpoint,
        |line| line.starts_with("PUT ") && line.contains("partNumber=2"),
        Fault::Drop,
    );
    let options = S3Options {
        endpoint_url: Some(proxy.endpoint.clone()),
    };
    let faulty = block_on(S3Store::connect("netsec-big", "p", &options)).unwrap();
    let err = block_on(faulty.put("broken/model.json", &bytes)).unwrap_err();
    assert!(matches!(err, StorageError::Transport { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("s3://netsec-big/p/broken/model.json"),
        "{err}"
    );
    assert!(proxy.faults() >= 1);
    assert_eq!(block_on(store.head("broken/model.json")).unwrap(), None);
    let client = server.client();
    let pending = block_on(async {
        client
            .list_multipart_uploads()
            .bucket("netsec-big")
            .send()
            .await
            .unwrap()
    });
    assert!(
        pending.uploads().is_empty(),
        "parts left behind: {:?}",
        pending.uploads()
    );
    assert_eq!(server.keys("netsec-big"), ["p/big/model.json"]);
}
