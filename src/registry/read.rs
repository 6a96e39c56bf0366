//! The registry's read-only views (`netsec registry list | show | history`): each is one
//! call that opens the database, reads and closes it.

use std::collections::BTreeMap;
use std::path::Path;

use super::RegistryError;
use super::store::{HistoryRow, ModelSummary, Registry, VersionRow};

/// A registered model with its aliases and every version.
#[derive(Debug, Clone)]
pub struct ModelDetail {
    /// Model name.
    pub name: String,
    /// Alias → version.
    pub aliases: BTreeMap<String, i64>,
    /// Every version, oldest first.
    pub versions: Vec<VersionRow>,
}

/// Every registered model with its version count and aliases.
pub async fn models(registry: &Path) -> Result<Vec<ModelSummary>, RegistryError> {
    let registry = Registry::open(registry).await?;
    let models = registry.models().await;
    registry.close().await;
    models
}

/// One model's versions and aliases; an unknown name is an error (bad input).
pub async fn model(registry: &Path, name: &str) -> Result<ModelDetail, RegistryError> {
    let registry = Registry::open(registry).await?;
    let detail = async {
        if !registry.exists(name).await? {
            return Err(RegistryError::UnknownModel(name.to_owned()));
        }
        Ok(ModelDetail {
            name: name.to_owned(),
            versions: registry.versions(name).await?,
            aliases: registry.aliases(name).await?,
        })
    }
    .await;
    registry.close().await;
    detail
}

/// One model's history: every promotion, rejection and rollback.
pub async fn history(registry: &Path, name: &str) -> Result<Vec<HistoryRow>, RegistryError> {
    let registry = Registry::open(registry).await?;
    let history = async {
        if !registry.exists(name).await? {
            return Err(RegistryError::UnknownModel(name.to_owned()));
        }
        registry.history(name).await
    }
    .await;
    registry.close().await;
    history
}
