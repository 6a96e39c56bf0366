//! The records the outbox stores and the sender sends for registry mirroring, apart from
//! both: the outbox stores a [`RegistryRecord`] without knowing how it is sent, and the
//! sender sends it without knowing who queued it (see [`super::mirror`] for the protocol).

use serde::{Deserialize, Serialize};

/// Version tag holding the sha256 of the netsec model file.
pub const SHA256_TAG: &str = "netsec.sha256";
/// Version tag holding the version number in the local registry.
pub const VERSION_TAG: &str = "netsec.version";

/// One alias move to repeat in MLflow's model registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryRecord {
    /// Registered model name.
    pub model: String,
    /// The alias moved, e.g. `champion`.
    pub alias: String,
    /// Where it points now: the version in the local registry...
    pub version: i64,
    /// ...and the sha256 of that version's model file.
    pub sha256: String,
    /// Idempotency key of the MLflow run that holds the model file as an artifact.
    pub run_key: String,
    /// Tracking experiment of that run.
    pub experiment: String,
    /// The model file's path among the run's artifacts, e.g. `model/<sha256>.json`.
    pub artifact_path: String,
    /// `promote` or `rollback`.
    pub action: String,
    /// When the move was decided (Unix ms); orders moves of one alias.
    pub moved_at_ms: i64,
}

impl RegistryRecord {
    /// The registered model's tag holding the time of the last mirrored move of the alias.
    pub fn moved_at_tag(&self) -> String {
        format!("netsec.alias.{}.moved_at_ms", self.alias)
    }
}

/// What sending a registry record did on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirrored {
    /// The MLflow version number of the model file.
    pub version: String,
    /// The version was created now (else it existed).
    pub created: bool,
    /// The alias was moved (else a later move had been mirrored already).
    pub moved: bool,
}
