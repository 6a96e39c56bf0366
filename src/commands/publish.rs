//! `netsec publish`: the entry point for putting the registered version an alias points at
//! into a model store (`file://` or `s3://`), pointer last. `promote --publish` and
//! `rollback --publish` go through [`publish_alias`] as well.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::cli::{PublishArgs, S3Args};
use crate::exit::{Outcome, UsageError};
use crate::registry::store::read_verified;
use crate::registry::{Registry, RegistryError};
use crate::storage::pointer::METADATA_FORMAT;
use crate::storage::publish::Step;
use crate::storage::{Action, Metadata, ModelStore, Release, S3Options, StoreUrl, publish};
use crate::sweep::record::{format_ms, now_ms};

/// The alias published when `NAME` has no `@ALIAS`.
const DEFAULT_ALIAS: &str = "champion";

/// Publishes `NAME[@ALIAS]` and prints what was uploaded, kept and pointed at.
pub fn run(args: PublishArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let (name, alias) = match args.model.split_once('@') {
        Some((name, alias)) => (name, alias),
        None => (args.model.as_str(), DEFAULT_ALIAS),
    };
    if alias.is_empty() {
        return Err(UsageError(format!("`{}`: no alias after @", args.model)).into());
    }
    let url = publish_target(
        name,
        args.store.to.as_deref(),
        &args.store.s3,
        &args.registry.state.state_dir,
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let registry = runtime.block_on(Registry::open(&args.registry.path()))?;
    let result = runtime.block_on(publish_alias(
        &registry,
        name,
        alias,
        &url,
        &args.store.s3,
        out,
    ));
    runtime.block_on(registry.close());
    result.map(|()| Outcome::Success)
}

/// The store to publish model `name` to: `--to` / `NETSEC_STORE`, else
/// `file://STATE_DIR/store`. Everything that can be checked without a server (the URL, the
/// endpoint URL, the model name as a key prefix) is checked here, before anything changes,
/// so bad input stops a promotion or rollback before it is recorded.
pub(super) fn publish_target(
    name: &str,
    to: Option<&str>,
    s3: &S3Args,
    state_dir: &Path,
) -> anyhow::Result<StoreUrl> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(UsageError(format!(
            "`{name}` cannot be a model name in a store (it becomes a directory / key prefix)"
        ))
        .into());
    }
    s3_options(s3).check()?;
    match to.filter(|t| !t.trim().is_empty()) {
        Some(text) => Ok(StoreUrl::parse(text.trim())?),
        None => {
            let dir = std::path::absolute(state_dir.join("store"))
                .with_context(|| format!("resolving {}", state_dir.display()))?;
            Ok(StoreUrl::File(dir))
        }
    }
}

/// Publishes the version `alias` of `name` points at into the store at `url` (from
/// [`publish_target`]), after checking the registered model file against its sha256, and
/// prints each step.
pub(super) async fn publish_alias(
    registry: &Registry,
    name: &str,
    alias: &str,
    url: &StoreUrl,
    s3: &S3Args,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
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
    let at = now_ms();
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
            actor: super::promote::actor(),
        },
        bytes,
    };
    let store = ModelStore::open(url, &s3_options(s3)).await?.scoped(name);
    let published = publish(&store, &release).await.with_context(|| {
        format!(
            "publishing {name} version {} to {} failed; its current.json was not changed",
            row.version,
            store.root_url()
        )
    })?;
    for step in &published.steps {
        writeln!(out, "{}", step_line(step))?;
    }
    let pointer = &published.pointer;
    let moved = match &published.previous {
        Some(p) if p == pointer => "already current".to_owned(),
        Some(p) => format!("was version {}", p.version),
        None => "first publication".to_owned(),
    };
    writeln!(
        out,
        "published {name} version {} (`{alias}`, sha256 {}) to {} ({moved})",
        pointer.version,
        &pointer.sha256[..12],
        store.root_url()
    )?;
    writeln!(
        out,
        "serve it with: netsec serve --model {}",
        store.root_url()
    )?;
    Ok(())
}

/// The S3 options of the command line (an empty `AWS_ENDPOINT_URL` counts as unset).
pub(super) fn s3_options(args: &S3Args) -> S3Options {
    S3Options {
        endpoint_url: args.endpoint_url.clone().filter(|u| !u.trim().is_empty()),
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
