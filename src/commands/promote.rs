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
use crate::registry::promotion::fmt_value;
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
                    &sha256[..12.min(sha256.len())]
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
        serde_json::to_writer_pretty(&mut *out, report)?;
        writeln!(out)?;
        return Ok(());
    }
    let c = &report.candidate;
    writeln!(
        out,
        "candidate: {} {} (trial {}, model {}){}",
        c.experiment,
        c.algorithm,
        &c.trial_key[..12.min(c.trial_key.len())],
        &c.sha256[..12.min(c.sha256.len())],
        c.sweep_id
            .map(|s| format!(" from sweep {s}"))
            .unwrap_or_default()
    )?;
    writeln!(
        out,
        "against: {}  holdout: {} rows\n",
        report
            .champion
            .map(|v| format!("`{}` version {v}", report.alias))
            .unwrap_or_else(|| format!("no `{}` yet", report.alias)),
        report.holdout_rows
    )?;
    let rows: Vec<[String; 5]> = report
        .rules
        .iter()
        .map(|r| {
            [
                r.rule.clone(),
                r.value.map(fmt_value).unwrap_or_else(|| "-".into()),
                r.threshold.clone(),
                if r.pass { "yes" } else { "NO" }.into(),
                r.detail.clone(),
            ]
        })
        .collect();
    let header = ["rule", "value", "threshold", "pass", "detail"];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(out, "{}", line(&header.map(String::from)))?;
    for row in &rows {
        writeln!(out, "{}", line(row))?;
    }
    writeln!(out, "\n{}", decision_line(report))?;
    Ok(())
}

fn decision_line(report: &Report) -> String {
    let prefix = if report.dry_run {
        "dry run: would be "
    } else {
        ""
    };
    let version = report
        .version
        .map(|v| format!(" as version {v}"))
        .unwrap_or_default();
    if report.promoted() {
        format!(
            "{prefix}PROMOTED: {} is now `{}`{version} ({})",
            report.model, report.alias, report.reason
        )
    } else {
        format!(
            "{prefix}REJECTED{version}: `{}` of {} stays {} ({})",
            report.alias,
            report.model,
            report
                .champion
                .map(|v| format!("version {v}"))
                .unwrap_or_else(|| "unset".into()),
            report.reason
        )
    }
}

/// Appends the decision as markdown to `$GITHUB_STEP_SUMMARY` when it is set (GitHub
/// Actions shows it on the run's page).
fn append_step_summary(report: &Report) -> anyhow::Result<()> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let mut md = format!(
        "### netsec promote: {} `{}`\n\n{}\n\n| rule | value | threshold | pass | detail |\n|---|---|---|---|---|\n",
        report.model,
        report.alias,
        decision_line(report)
    );
    for r in &report.rules {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.rule,
            r.value.map(fmt_value).unwrap_or_else(|| "-".into()),
            r.threshold,
            if r.pass { "✅" } else { "❌" },
            r.detail.replace('|', "\\|")
        ));
    }
    md.push('\n');
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
