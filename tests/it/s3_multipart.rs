//! The S3 store's multipart path, through the library against a real server (moto): an
//! object above the 8 MiB threshold goes up in parts and comes back whole with its sha256;
//! a part whose connection dies (a fault proxy: a real server cannot be made to drop one
//! part on demand) aborts the upload — no object, no parts left behind.
//!
//! The stores get a client configured in code (test credentials, the server's or the
//! proxy's endpoint), never the process environment, which other tests share.

use crate::common::fault_proxy::{Fault, FaultProxy};
use crate::common::s3_server::{Kind, S3Server, block_on, client_at};
use netsec::storage::s3::MULTIPART_THRESHOLD;
use netsec::storage::{ObjectStore, S3Store, StorageError};
use sha2::{Digest, Sha256};

#[test]
fn multipart_uploads_complete_or_abort() {
    let server = S3Server::start(Kind::Moto);
    server.create_bucket("netsec-big");
    // 2.5 parts, with content that differs per part.
    let bytes: Vec<u8> = (0..MULTIPART_THRESHOLD * 5 / 2)
        .map(|i| (i % 251) as u8 ^ (i / MULTIPART_THRESHOLD) as u8)
        .collect();
    let sha = netsec::shared::hash::hex(&Sha256::digest(&bytes));

    let store = S3Store::from_client(server.client(), "netsec-big", "p");
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
    let faulty = S3Store::from_client(client_at(&proxy.endpoint), "netsec-big", "p");
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
