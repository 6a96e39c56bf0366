//! Publishing, then mirroring: the version an alias points at goes into a model store
//! (`file://` or `s3://`, pointer last), and an alias move committed in the registry is
//! repeated in MLflow's registry. Shared by `netsec publish`, `promote --publish` and
//! `rollback [--publish]`; it lives here because the registry never calls storage or
//! tracking, so the order is always: registry commits, store, then mirror.

use std::fmt;
use std::path::PathBuf;

use anyhow::Context;

use crate::exit::{AfterCommit, UsageError};
use crate::registry::store::{HistoryRow, read_verified};
use crate::registry::{Registry, RegistryError, actor};
use crate::shared::format_ms;
use crate::state::StateDir;
use crate::storage::pointer::METADATA_FORMAT;
use crate::storage::publish::{Published, Step};
use crate::storage::{Action, Metadata, ModelStore, Release, S3Options, StoreUrl, publish};
use crate::tracking::mirror::{AliasMove, alias_moved};

/// What a workflow that moves an alias shows while it runs: first the committed move, then
/// its publication. The command renders; the workflow says when, so that a warning about
/// the MLflow mirror, which comes last, reads as a footnote of what was shown.
pub trait MoveReporter<T: ?Sized> {
    /// The registry committed (or, for a dry run, decided) `what`.
    fn committed(&mut self, what: &T) -> anyhow::Result<()>;
    /// The alias's version is in the store.
    fn published(&mut self, publication: &Publication) -> anyhow::Result<()>;
}

/// Where to publish, as the user gave it: checked by [`publish_target`].
#[derive(Debug, Clone, Default)]
pub struct StoreTarget {
    /// The store URL (`--to` / `NETSEC_STORE`); `None`: the state directory's `store/`.
    pub to: Option<String>,
    /// How to reach S3.
    pub s3: S3Options,
}

/// The store to publish model `name` to: `to` (`--to` / `NETSEC_STORE`), else the state
/// directory's `store/`. Everything that can be checked without a server (the URL, the
/// endpoint URL, the model name as a key prefix) is checked here, so that bad input stops
/// a promotion or rollback before anything is recorded.
pub fn publish_target(
    name: &str,
    to: Option<&str>,
    s3: &S3Options,
    state: &StateDir,
) -> anyhow::Result<StoreUrl> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(UsageError(format!(
            "`{name}` cannot be a model name in a store (it becomes a directory / key prefix)"
        ))
        .into());
    }
    s3.check()?;
    match to.filter(|t| !t.trim().is_empty()) {
        Some(text) => Ok(StoreUrl::parse(text.trim())?),
        None => {
            let dir = std::path::absolute(state.store())
                .with_context(|| format!("resolving {}", state.root().display()))?;
            Ok(StoreUrl::File(dir))
        }
    }
}

/// One publication: what was uploaded, kept and pointed at.
#[derive(Debug, Clone)]
pub struct Publication {
    /// Registered model name.
    pub model: String,
    /// The alias published.
    pub alias: String,
    /// The model's directory in the store.
    pub root_url: String,
    /// What the store did.
    pub published: Published,
}

impl fmt::Display for Publication {
    /// The lines every command prints for a publication (one per object, then where the
    /// pointer is and how to serve it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.published.steps {
            writeln!(f, "{}", step_line(step))?;
        }
        let pointer = &self.published.pointer;
        let moved = match &self.published.previous {
            Some(p) if p == pointer => "already current".to_owned(),
            Some(p) => format!("was version {}", p.version),
            None => "first publication".to_owned(),
        };
        writeln!(
            f,
            "published {} version {} (`{}`, sha256 {}) to {} ({moved})",
            self.model,
            pointer.version,
            self.alias,
            crate::shared::short_hash(&pointer.sha256),
            self.root_url
        )?;
        writeln!(f, "serve it with: netsec serve --model {}", self.root_url)
    }
}

fn step_line(step: &Step) -> String {
    let what = match step.action {
        Action::Uploaded => "uploaded",
        Action::Replaced => "replaced",
        Action::Kept => "skipped ",
    };
    let why = match step.action {
        Action::Kept => ", already there with the same content",
        Action::Replaced => ", the stored copy differed",
        Action::Uploaded => "",
    };
    format!("{what} {} ({} bytes{why})", step.url, step.bytes)
}

/// Publishes the version `alias` of `name` points at into the store at `url` (from
/// [`publish_target`]), after checking the registered model file against its sha256.
pub async fn publish_alias(
    registry: &Registry,
    name: &str,
    alias: &str,
    url: &StoreUrl,
    s3: &S3Options,
) -> anyhow::Result<Publication> {
    let row = match registry.alias_version(name, alias).await? {
        Some(row) => row,
        None if !registry.exists(name).await? => {
            return Err(RegistryError::UnknownModel(name.to_owned()).into());
        }
        None => {
            return Err(RegistryError::NoAlias {
                model: name.to_owned(),
                alias: alias.to_owned(),
            }
            .into());
        }
    };
    let bytes = read_verified(&row.info.path, &row.info.sha256)
        .with_context(|| format!("checking version {} of {name}", row.version))?;
    let at = crate::shared::now_ms();
    let release = Release {
        metadata: Metadata {
            format: METADATA_FORMAT.to_owned(),
            name: name.to_owned(),
            version: u64::try_from(row.version).unwrap_or_default(),
            sha256: row.info.sha256.clone(),
            size: bytes.len() as u64,
            algorithm: row.info.algorithm.clone(),
            metrics: serde_json::to_value(&row.info.metrics)?,
            schema_hash: row.info.schema_hash.clone(),
            data_fingerprint: row.info.data_fingerprint.clone(),
            published_at: format!("{}Z", format_ms(at).replace(' ', "T")),
            actor: actor(),
        },
        bytes,
    };
    let store = ModelStore::open(url, s3).await?.scoped(name);
    let published = publish(&store, &release).await.with_context(|| {
        format!(
            "publishing {name} version {} to {} failed; its current.json was not changed",
            row.version,
            store.root_url()
        )
    })?;
    Ok(Publication {
        model: name.to_owned(),
        alias: alias.to_owned(),
        root_url: store.root_url(),
        published,
    })
}

/// What `netsec publish` does.
#[derive(Debug, Clone)]
pub struct PublishInput {
    /// The registry database.
    pub registry: PathBuf,
    /// The state directory (its `store/` is the default store).
    pub state: StateDir,
    /// Registered model name.
    pub model: String,
    /// The alias whose version to publish.
    pub alias: String,
    /// Where to publish it.
    pub store: StoreTarget,
}

/// Publishes what an alias points at (`netsec publish NAME@ALIAS`).
pub async fn publish_model(input: &PublishInput) -> anyhow::Result<Publication> {
    let store = &input.store;
    let url = publish_target(&input.model, store.to.as_deref(), &store.s3, &input.state)?;
    let registry = Registry::open(&input.registry).await?;
    let result = publish_alias(&registry, &input.model, &input.alias, &url, &store.s3).await;
    registry.close().await;
    result
}

/// What `netsec rollback` does.
#[derive(Debug, Clone)]
pub struct RollbackInput {
    /// The registry database.
    pub registry: PathBuf,
    /// The state directory (the outbox of the mirror, the default store).
    pub state: StateDir,
    /// Registered model name.
    pub model: String,
    /// The alias to move back.
    pub alias: String,
    /// The version to move it to (default: the one it held before).
    pub to: Option<i64>,
    /// Why (kept in the history).
    pub reason: String,
    /// Publish the alias's version afterwards, there.
    pub publish: Option<StoreTarget>,
}

/// Moves an alias back and records it, then publishes it (when asked) and mirrors the move
/// into MLflow. A failed publication is an [`AfterCommit`] error: the rollback stands.
pub async fn rollback(
    input: &RollbackInput,
    reporter: &mut dyn MoveReporter<HistoryRow>,
) -> anyhow::Result<HistoryRow> {
    let registry = Registry::open(&input.registry).await?;
    let actor = actor();
    // A bad store URL stops here, before the alias moves.
    let publish_to = match &input.publish {
        Some(target) => Some((
            publish_target(&input.model, target.to.as_deref(), &target.s3, &input.state)?,
            &target.s3,
        )),
        None => None,
    };
    let row = registry
        .rollback(&input.model, &input.alias, input.to, &actor, &input.reason)
        .await?;
    // The rollback is committed: from here on a problem only costs the MLflow mirror.
    let versions = registry.versions(&input.model).await.unwrap_or_else(|err| {
        tracing::warn!("mlflow registry: not updated, cannot read the versions: {err}");
        Vec::new()
    });
    reporter.committed(&row)?;
    let published = match &publish_to {
        Some((url, s3)) => {
            match publish_alias(&registry, &input.model, &input.alias, url, s3).await {
                Ok(publication) => reporter.published(&publication),
                Err(e) => Err(e),
            }
            .map_err(|e| {
                e.context(AfterCommit(format!(
                    "the rollback is recorded, but publishing it failed (retry with \
                     `netsec publish {}@{}`)",
                    input.model, input.alias
                )))
            })
        }
        None => Ok(()),
    };
    registry.close().await;
    if let Some(v) = versions.iter().find(|v| Some(v.version) == row.to_version) {
        let alias_move = AliasMove {
            model: &row.model,
            alias: &row.alias,
            version: v.version,
            sha256: &v.info.sha256,
            trial_key: &v.info.trial_key,
            sweep_id: v.info.sweep_id,
            model_path: &v.info.path,
            action: "rollback",
        };
        alias_moved(&input.state, &alias_move).await;
    }
    published.map(|()| row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_target_checks_the_name_and_defaults_to_the_state_store() {
        let state = StateDir::new("/tmp/netsec-state");
        let s3 = S3Options::default();
        for bad in ["", "a/b", ".", ".."] {
            assert!(publish_target(bad, None, &s3, &state).is_err(), "{bad:?}");
        }
        for to in [None, Some("  ")] {
            let url = publish_target("phish", to, &s3, &state).unwrap();
            assert!(
                matches!(&url, StoreUrl::File(dir) if *dir == state.store()),
                "{to:?}"
            );
        }
        let ftp = S3Options::with_endpoint(Some("ftp://host".into()));
        assert!(publish_target("phish", None, &ftp, &state).is_err());
        assert_eq!(
            S3Options::with_endpoint(Some(" ".into())).endpoint_url,
            None
        );
    }
}
