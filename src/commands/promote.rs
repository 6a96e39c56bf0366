//! `netsec promote`: the entry point for registering a candidate and deciding, by a
//! policy's rules on the pinned holdout, whether it takes the alias (champion).

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::cli::{OutputFormat, PromoteArgs};
use crate::exit::Outcome;
use crate::pipeline::promote::{CandidateSpec, PromoteInput, promote};
use crate::pipeline::publish::{MoveReporter, Publication, StoreTarget};
use crate::registry::promote::{Promoted, Report};
use crate::state::StateDir;
use crate::storage::S3Options;

/// Evaluates the candidate against the policy and the current champion, records the
/// decision (unless `--dry-run`) and reports it.
pub async fn run(args: PromoteArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let input = PromoteInput {
        policy: args.policy.clone(),
        name: args.name.clone(),
        candidate: match &args.run {
            Some(key) => CandidateSpec::Trial(key.clone()),
            None => CandidateSpec::Best(args.best.clone().unwrap_or_default()),
        },
        dry_run: args.dry_run,
        publish: args.publish.then(|| StoreTarget {
            to: args.store.to.clone(),
            s3: S3Options::with_endpoint(args.store.s3.endpoint_url.clone()),
        }),
        registry: args.registry.path(),
        state: StateDir::new(&args.registry.state.state_dir),
    };
    let mut view = View {
        out,
        format: args.output.format(),
        publishing: args.publish && !args.dry_run,
    };
    let promoted = promote(&input, &mut view).await?;
    Ok(match promoted {
        Promoted::Decided { report, .. } if !report.promoted() => Outcome::Rejected,
        _ => Outcome::Success,
    })
}

/// Renders the decision and the publication as the workflow reaches them (also `retrain`'s
/// report of its promotion).
pub(super) struct View<'a> {
    pub(super) out: &'a mut dyn Write,
    pub(super) format: OutputFormat,
    /// A publication follows an accepted decision.
    pub(super) publishing: bool,
}

impl MoveReporter<Promoted> for View<'_> {
    fn committed(&mut self, promoted: &Promoted) -> anyhow::Result<()> {
        let accepted = match promoted {
            Promoted::AlreadyHolds {
                model,
                alias,
                sha256,
                version,
            } => {
                writeln!(
                    self.out,
                    "model {} is already `{alias}` of {model} (version {version}): nothing to do",
                    crate::shared::short_hash(sha256)
                )?;
                true
            }
            Promoted::Decided { report, .. } => {
                print(self.out, self.format, report)?;
                append_step_summary(report)?;
                report.promoted()
            }
        };
        if accepted && self.publishing && self.format == OutputFormat::Text {
            writeln!(self.out)?;
        }
        // Shown before the MLflow mirror runs: a warning about it then reads as a footnote.
        self.out.flush()?;
        Ok(())
    }

    fn published(&mut self, publication: &Publication) -> anyhow::Result<()> {
        if self.format == OutputFormat::Json {
            // stdout holds the JSON report alone; the publication is logged instead.
            tracing::info!("{}", publication.to_string().trim_end());
        } else {
            write!(self.out, "{publication}")?;
        }
        self.out.flush()?;
        Ok(())
    }
}

fn print(out: &mut dyn Write, format: OutputFormat, report: &Report) -> anyhow::Result<()> {
    if format == OutputFormat::Json {
        super::print_json(out, report)?;
        return Ok(());
    }
    write!(out, "{report}")?;
    Ok(())
}

/// Appends the decision as markdown to `$GITHUB_STEP_SUMMARY` when it is set (GitHub
/// Actions shows it on the run's page).
fn append_step_summary(report: &Report) -> anyhow::Result<()> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let md = report.step_summary();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| {
            format!(
                "opening $GITHUB_STEP_SUMMARY {}",
                Path::new(&path).display()
            )
        })?;
    f.write_all(md.as_bytes())
        .context("writing $GITHUB_STEP_SUMMARY")?;
    Ok(())
}
