//! `netsec registry list | show | history` and `netsec rollback`: the entry points for
//! reading the model registry and moving an alias back (and, with `--publish`, its pointer
//! in a model store).

use std::io::Write;

use crate::cli::{OutputFormat, RegistryListArgs, RegistryShowArgs, RollbackArgs};
use crate::exit::Outcome;
use crate::pipeline::publish::{MoveReporter, Publication, RollbackInput, StoreTarget};
use crate::registry::read::{self, ModelDetail};
use crate::registry::store::HistoryRow;
use crate::shared::format_ms;
use crate::state::StateDir;
use crate::storage::S3Options;

fn json(out: &mut dyn Write, value: &impl serde::Serialize) -> anyhow::Result<Outcome> {
    super::print_json(out, value)?;
    Ok(Outcome::Success)
}

/// Lists registered models with their version count and aliases.
pub async fn list(args: RegistryListArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let models = read::models(&args.registry.path()).await?;
    if args.output.format() == OutputFormat::Json {
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
pub async fn show(args: RegistryShowArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let ModelDetail {
        name,
        aliases,
        versions,
    } = read::model(&args.registry.path(), &args.name).await?;
    if args.output.format() == OutputFormat::Json {
        return json(
            out,
            &serde_json::json!({ "name": name, "aliases": aliases, "versions": versions }),
        );
    }
    writeln!(out, "{name}")?;
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
            crate::shared::short_hash(&v.info.sha256),
            v.info.algorithm,
            crate::shared::short_hash(&v.info.trial_key),
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
pub async fn history(args: RegistryShowArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let history = read::history(&args.registry.path(), &args.name).await?;
    if args.output.format() == OutputFormat::Json {
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

/// Moves an alias back and records it (and, with `--publish`, its pointer in a store).
pub async fn rollback(args: RollbackArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let input = RollbackInput {
        registry: args.registry.path(),
        state: StateDir::new(&args.registry.state.state_dir),
        model: args.name.clone(),
        alias: args.alias.clone(),
        to: args.to,
        reason: args.reason.clone(),
        publish: args.publish.then(|| StoreTarget {
            to: args.store.clone(),
            s3: S3Options::with_endpoint(args.s3.endpoint_url.clone()),
        }),
    };
    crate::pipeline::publish::rollback(&input, &mut RollbackView { out }).await?;
    Ok(Outcome::Success)
}

/// Renders a rollback as the workflow reaches its steps.
struct RollbackView<'a> {
    out: &'a mut dyn Write,
}

impl MoveReporter<HistoryRow> for RollbackView<'_> {
    fn committed(&mut self, row: &HistoryRow) -> anyhow::Result<()> {
        writeln!(
            self.out,
            "`{}` of {} moved back from v{} to v{} by {}: {}",
            row.alias,
            row.model,
            row.from_version.unwrap_or_default(),
            row.to_version.unwrap_or_default(),
            row.actor,
            row.reason
        )?;
        Ok(self.out.flush()?)
    }

    fn published(&mut self, publication: &Publication) -> anyhow::Result<()> {
        write!(self.out, "{publication}")?;
        // Shown before the MLflow mirror runs: a warning about it then reads as a footnote.
        Ok(self.out.flush()?)
    }
}
