//! `netsec publish`: the entry point for putting the registered version an alias points at
//! into a model store (`file://` or `s3://`), pointer last.

use std::io::Write;

use crate::cli::PublishArgs;
use crate::exit::{Outcome, UsageError};
use crate::pipeline::publish::{PublishInput, StoreTarget, publish_model};
use crate::state::StateDir;
use crate::storage::S3Options;

/// The alias published when `NAME` has no `@ALIAS`.
const DEFAULT_ALIAS: &str = "champion";

/// Publishes `NAME[@ALIAS]` and prints what was uploaded, kept and pointed at.
pub async fn run(args: PublishArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let (name, alias) = match args.model.split_once('@') {
        Some((name, alias)) => (name, alias),
        None => (args.model.as_str(), DEFAULT_ALIAS),
    };
    if alias.is_empty() {
        return Err(UsageError(format!("`{}`: no alias after @", args.model)).into());
    }
    let input = PublishInput {
        registry: args.registry.path(),
        state: StateDir::new(&args.registry.state.state_dir),
        model: name.to_owned(),
        alias: alias.to_owned(),
        store: StoreTarget {
            to: args.store.to.clone(),
            s3: S3Options::with_endpoint(args.store.s3.endpoint_url.clone()),
        },
    };
    let publication = publish_model(&input).await?;
    write!(out, "{publication}")?;
    Ok(Outcome::Success)
}
