//! Mirroring the local registry's alias moves (promotions, rollbacks) into MLflow's model
//! registry.
//!
//! A move becomes a [`RegistryRecord`] in the outbox, sent like every other record (by the
//! command that made the move, then by `netsec sync` if the server was away). Sending it
//! is safe to repeat:
//!
//! - the registered model is created unless it exists;
//! - the version is found by its tag `netsec.sha256` before one is created, so a model
//!   file becomes one MLflow version however often it is mirrored;
//! - the alias is moved only if no later move was mirrored already: the model's tag
//!   `netsec.alias.<alias>.moved_at_ms` holds the time of the last mirrored move, so
//!   records sent late or out of order never move an alias back.

use serde::{Deserialize, Serialize};

use super::error::TrackingError;
use super::send::{Failure, Sender};
use super::types::Tag;

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

impl Sender {
    /// Mirrors one alias move (see the module docs for why repeating it is safe).
    pub(super) async fn send_registry(&self, r: &RegistryRecord) -> Result<Mirrored, Failure> {
        let client = self.client();
        // First call: a server without a registry says so before anything else is done.
        client.create_registered_model(&r.model).await?;
        let existing = client
            .find_model_versions_by_tag(&r.model, SHA256_TAG, &r.sha256)
            .await?;
        let (version, created) = match existing.into_iter().min_by_key(version_number) {
            Some(v) => (v.version, false),
            None => {
                let experiment_id = self.experiment(&r.experiment).await?;
                let run = self.find(&r.run_key, &experiment_id).await?;
                let source = format!("runs:/{}/{}", run.run_id, r.artifact_path);
                let tags = [
                    Tag::new(SHA256_TAG, &r.sha256),
                    Tag::new(VERSION_TAG, r.version.to_string()),
                ];
                let v = client
                    .create_model_version(&r.model, &source, &run.run_id, &tags)
                    .await?;
                (v.version, true)
            }
        };
        let tag = r.moved_at_tag();
        let last_move = client
            .get_registered_model(&r.model)
            .await?
            .tags
            .into_iter()
            .find(|t| t.key == tag)
            .and_then(|t| t.value.parse::<i64>().ok());
        let moved = last_move.is_none_or(|at| at <= r.moved_at_ms);
        if moved {
            client.set_alias(&r.model, &r.alias, &version).await?;
            client
                .set_registered_model_tag(&r.model, &tag, &r.moved_at_ms.to_string())
                .await?;
        }
        Ok(Mirrored {
            version,
            created,
            moved,
        })
    }
}

fn version_number(v: &super::types::ModelVersion) -> u64 {
    v.version.parse().unwrap_or(u64::MAX)
}

/// Whether an error means the server has no model registry at all.
pub fn registry_unavailable(err: &TrackingError) -> bool {
    matches!(err, TrackingError::RegistryUnavailable { .. })
}
