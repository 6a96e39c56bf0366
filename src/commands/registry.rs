//! `netsec registry list | show | history` and `netsec rollback`: the entry points for
//! reading the model registry and moving an alias back (and, with `--publish`, its pointer
//! in a model store).

use std::io::Write;

use anyhow::Context;

use crate::cli::{OutputFormat, RegistryListArgs, RegistryShowArgs, RollbackArgs};
use crate::exit::{AfterCommit, Outcome};
use crate::registry::{Registry, RegistryError};
use crate::sweep::record::format_ms;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn json(out: &mut dyn Write, value: &impl serde::Serialize) -> anyhow::Result<Outcome> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(Outcome::Success)
}

/// Lists registered models with their version count and aliases.
pub fn list(args: RegistryListArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let rt = runtime()?;
    let registry = rt.block_on(Registry::open(&args.registry.path()))?;
    let models = rt.block_on(registry.models())?;
    rt.block_on(registry.close());
    if args.output == OutputFormat::Json {
        return json(out, &models);
    }
    if models.is_empty() {
        writeln!(out, "no registered models (see `netsec promote --help`)")?;
    }
    for m in &models {
        let aliases: Vec<String> = m.aliases.iter().map(|(a, v)| format!("{a}=v{v}")).collect();
        writeln!(
            out,
            "{}  {} version{}  {}",
            m.name,
            m.versions,
            if m.versions == 1 { "" } else { "s" },
            if aliases.is_empty() {
                "no aliases".into()
            } else {
                aliases.join(" ")
            }
        )?;
    }
    Ok(Outcome::Success)
}

/// Shows a model's versions and aliases.
pub fn show(args: RegistryShowArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let rt = runtime()?;
    let registry = rt.block_on(Registry::open(&args.registry.path()))?;
    if !rt.block_on(registry.exists(&args.name))? {
        return Err(RegistryError::UnknownModel(args.name).into());
    }
    let versions = rt.block_on(registry.versions(&args.name))?;
    let aliases = rt.block_on(registry.aliases(&args.name))?;
    rt.block_on(registry.close());
    if args.output == OutputFormat::Json {
        return json(
            out,
            &serde_json::json!({ "name": args.name, "aliases": aliases, "versions": versions }),
        );
    }
    writeln!(out, "{}", args.name)?;
    writeln!(
        out,
        "{:<4} {:<14} {:<20} {:<12} {:>7} {:>7} {:>7}  {:<19}  aliases",
        "ver", "sha256", "algorithm", "trial", "f1", "recall", "roc_auc", "registered"
    )?;
    for v in &versions {
        let m = &v.info.metrics;
        let held: Vec<&str> = aliases
            .iter()
            .filter(|(_, ver)| **ver == v.version)
            .map(|(a, _)| a.as_str())
            .collect();
        writeln!(
            out,
            "v{:<3} {:<14} {:<20} {:<12} {:>7.4} {:>7.4} {:>7}  {:<19}  {}",
            v.version,
            &v.info.sha256[..12],
            v.info.algorithm,
            &v.info.trial_key[..12.min(v.info.trial_key.len())],
            m.f1,
            m.recall,
            m.roc_auc
                .map(|a| format!("{a:.4}"))
                .unwrap_or_else(|| "-".into()),
            format_ms(v.created_at_ms),
            held.join(" ")
        )?;
    }
    Ok(Outcome::Success)
}

/// Prints a model's history: every promotion, rejection and rollback.
pub fn history(args: RegistryShowArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let rt = runtime()?;
    let registry = rt.block_on(Registry::open(&args.registry.path()))?;
    if !rt.block_on(registry.exists(&args.name))? {
        return Err(RegistryError::UnknownModel(args.name).into());
    }
    let history = rt.block_on(registry.history(&args.name))?;
    rt.block_on(registry.close());
    if args.output == OutputFormat::Json {
        return json(out, &history);
    }
    let v = |v: Option<i64>| v.map(|v| format!("v{v}")).unwrap_or_else(|| "-".into());
    for h in &history {
        writeln!(
            out,
            "#{:<3} {}  {:<8} {:<10} {} -> {}{}  by {}: {}",
            h.id,
            format_ms(h.at_ms),
            h.action,
            h.alias,
            v(h.from_version),
            v(h.to_version),
            h.candidate
                .map(|c| format!(" (candidate v{c})"))
                .unwrap_or_default(),
            h.actor,
            h.reason
        )?;
    }
    Ok(Outcome::Success)
}

/// Moves an alias back and records it.
pub fn rollback(args: RollbackArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let rt = runtime()?;
    let registry = rt.block_on(Registry::open(&args.registry.path()))?;
    let actor = super::promote::actor();
    // A bad store URL stops here, before the alias moves.
    let publish_to = if args.publish {
        let state_dir = &args.registry.state.state_dir;
        Some(super::publish::publish_target(
            &args.name,
            args.store.as_deref(),
            &args.s3,
            state_dir,
        )?)
    } else {
        None
    };
    let row =
        rt.block_on(registry.rollback(&args.name, &args.alias, args.to, &actor, &args.reason))?;
    // The rollback is committed: from here on a problem only costs the MLflow mirror.
    let versions = rt
        .block_on(registry.versions(&args.name))
        .unwrap_or_else(|err| {
            tracing::warn!("mlflow registry: not updated, cannot read the versions: {err}");
            Vec::new()
        });
    writeln!(
        out,
        "`{}` of {} moved back from v{} to v{} by {}: {}",
        row.alias,
        row.model,
        row.from_version.unwrap_or_default(),
        row.to_version.unwrap_or_default(),
        row.actor,
        row.reason
    )?;
    let published = match &publish_to {
        Some(url) => rt
            .block_on(super::publish::publish_alias(
                &registry,
                &args.name,
                &args.alias,
                url,
                &args.s3,
                out,
            ))
            .map_err(|e| {
                e.context(AfterCommit(format!(
                    "the rollback is recorded, but publishing it failed (retry with \
                     `netsec publish {}@{}`)",
                    args.name, args.alias
                )))
            }),
        None => Ok(()),
    };
    rt.block_on(registry.close());
    out.flush()?;
    if let Some(v) = versions.iter().find(|v| Some(v.version) == row.to_version) {
        let alias_move = super::mirror::AliasMove {
            model: &row.model,
            alias: &row.alias,
            version: v.version,
            sha256: &v.info.sha256,
            trial_key: &v.info.trial_key,
            sweep_id: v.info.sweep_id,
            model_path: &v.info.path,
            action: "rollback",
        };
        super::mirror::alias_moved(&args.registry.state.state_dir, &alias_move);
    }
    published.map(|()| Outcome::Success)
}
