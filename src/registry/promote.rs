//! The promotion workflow inside the registry: score a candidate on its pinned holdout,
//! judge it against the policy and the current champion, and record the decision.
//!
//! Promotions are optimistic: the champion is read, both models are scored (seconds, no
//! lock held), and the decision is recorded only if the alias still points where it did.
//! When another promotion moved it meanwhile, the evaluation runs again against the new
//! champion, up to [`MAX_ATTEMPTS`] times.
//!
//! Finding the candidate and reloading its holdout (which may read MongoDB) are the
//! pipeline's part (`pipeline::promote`); publishing and mirroring the move happen there
//! too, after this returns, because the registry never calls tracking or storage.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::promotion::{
    CandidateView, ChampionView, Holdout, Rule, Scores, evaluate, fmt_value, p99_predict_us,
};
use super::store::{Decision, NewVersion, Recorded, VersionRow, verify_file};
use super::{Policy, Registry};
use crate::exit::UsageError;
use crate::fsutil::write_atomic;
use crate::model_file::ModelFile;
use crate::shared::Classes;

/// How often a promotion evaluates again when another promotion moved the alias meanwhile.
pub const MAX_ATTEMPTS: usize = 5;

/// A model file proposed for an alias.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The model file.
    pub file: ModelFile,
    /// sha256 of its bytes.
    pub sha256: String,
    /// Where its bytes are now (none when it was just refitted and exists only in memory).
    pub path: Option<PathBuf>,
    /// The sweep it came from, when known.
    pub sweep_id: Option<i64>,
}

impl Candidate {
    /// Checks that the candidate was scored on its holdout when it was trained: a model
    /// without test metrics cannot be judged, and saying so before its holdout is reloaded
    /// saves a MongoDB read.
    pub fn check_scored(&self) -> Result<(), UsageError> {
        if self.file.metrics.test.is_some() {
            return Ok(());
        }
        Err(UsageError(format!(
            "model {} (trial {}) has no test metrics: it was not scored, so it cannot be promoted",
            crate::shared::short_hash(&self.sha256),
            self.file.trial_key
        )))
    }
}

/// What to decide: the candidate on its holdout, by `policy`, for `model`.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The rules and the alias.
    pub policy: &'a Policy,
    /// Registered model name (the policy's `model` unless the user named another).
    pub model: &'a str,
    /// The candidate.
    pub candidate: &'a Candidate,
    /// Its pinned holdout; the champion is scored on the same rows.
    pub holdout: &'a Holdout,
    /// Who decides (kept in the history).
    pub actor: &'a str,
    /// Evaluate only: record nothing, keep no file.
    pub dry_run: bool,
    /// Where model files are kept by sha256 (the state directory's `models/`).
    pub models_dir: &'a Path,
}

/// The report of one decision: what `--format json` prints and what the history keeps as
/// evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Registered model name.
    pub model: String,
    /// The alias decided on.
    pub alias: String,
    /// The candidate.
    pub candidate: CandidateInfo,
    /// The champion's version it was judged against, if there was one.
    pub champion: Option<i64>,
    /// Rows of the holdout.
    pub holdout_rows: usize,
    /// `promoted` or `rejected`.
    pub decision: &'static str,
    /// One line: the failed rules, or that all passed.
    pub reason: String,
    /// The candidate's version in the registry (none on a dry run).
    pub version: Option<i64>,
    /// Whether nothing was recorded.
    pub dry_run: bool,
    /// Evaluations run: more than one when another promotion moved the alias meanwhile
    /// and the candidate was judged again against the new holder.
    pub attempts: usize,
    /// Every rule's outcome, in report order.
    pub rules: Vec<Rule>,
}

/// Where the candidate came from.
#[derive(Debug, Clone, Serialize)]
pub struct CandidateInfo {
    /// sha256 of its model file.
    pub sha256: String,
    /// Its trial key.
    pub trial_key: String,
    /// Its algorithm.
    pub algorithm: String,
    /// Its experiment.
    pub experiment: String,
    /// Its sweep, when known.
    pub sweep_id: Option<i64>,
}

impl Report {
    /// Whether the policy accepted the candidate.
    pub fn promoted(&self) -> bool {
        self.decision == "promoted"
    }

    /// The decision in one line, as the text report ends and the step summary begins.
    pub fn decision_line(&self) -> String {
        let report = self;
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

    /// The decision as markdown for `$GITHUB_STEP_SUMMARY`: the decision line and the
    /// rule table.
    pub fn step_summary(&self) -> String {
        let report = self;
        let mut md = format!(
            "### netsec promote: {} `{}`\n\n{}\n\n| rule | value | threshold | pass | detail |\n|---|---|---|---|---|\n",
            report.model,
            report.alias,
            report.decision_line()
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
        md
    }
}

/// The readable report (`--format text`): candidate, champion, the rule table aligned by
/// column, and the decision.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = self;
        let c = &report.candidate;
        writeln!(
            f,
            "candidate: {} {} (trial {}, model {}){}",
            c.experiment,
            c.algorithm,
            crate::shared::short_hash(&c.trial_key),
            crate::shared::short_hash(&c.sha256),
            c.sweep_id
                .map(|s| format!(" from sweep {s}"))
                .unwrap_or_default()
        )?;
        writeln!(
            f,
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
        writeln!(f, "{}", line(&header.map(String::from)))?;
        for row in &rows {
            writeln!(f, "{}", line(row))?;
        }
        writeln!(f, "\n{}", report.decision_line())?;
        Ok(())
    }
}

/// How a promotion ended.
#[derive(Debug, Clone)]
pub enum Promoted {
    /// The candidate holds the alias already: nothing moved (a publication that failed last
    /// time is worth retrying, though).
    AlreadyHolds {
        /// Registered model name.
        model: String,
        /// The alias.
        alias: String,
        /// sha256 of the candidate's model file.
        sha256: String,
        /// The version holding the alias.
        version: i64,
    },
    /// The policy decided (and, unless a dry run, the decision is recorded).
    Decided {
        /// The decision with its evidence (boxed: it is much larger than the other variant).
        report: Box<Report>,
        /// The kept, content-addressed model file (none on a dry run).
        kept: Option<PathBuf>,
    },
}

/// Judges the candidate and records the decision, evaluating again while concurrent
/// promotions move the alias (see the module docs).
pub async fn promote(registry: &Registry, request: &Request<'_>) -> anyhow::Result<Promoted> {
    let Request {
        policy,
        model,
        candidate,
        holdout,
        ..
    } = *request;
    let alias = policy.alias.as_str();
    policy.check_classes(&holdout.classes).map_err(UsageError)?;
    let file = &candidate.file;
    let sha256 = candidate.sha256.as_str();
    let scores = Scores::of(
        &file.model,
        &holdout.features,
        &holdout.labels,
        &holdout.classes,
        file.threshold(),
    )
    .context("scoring the candidate on its holdout")?;
    let p99_us = p99_predict_us(&file.model, &holdout.features)?;
    let view = CandidateView {
        scores: &scores,
        p99_us,
        schema_hash: &file.schema.hash,
        data_fingerprint: &file.data_fingerprint,
        split: file.split,
    };
    let already = |version: i64| Promoted::AlreadyHolds {
        model: model.to_owned(),
        alias: alias.to_owned(),
        sha256: sha256.to_owned(),
        version,
    };
    let mut kept: Option<PathBuf> = None;
    for attempt in 1..=MAX_ATTEMPTS {
        let champion = registry.alias_version(model, alias).await?;
        if let Some(c) = champion.as_ref().filter(|c| c.info.sha256 == sha256) {
            return Ok(already(c.version));
        }
        let champion_scores = champion
            .as_ref()
            .map(|c| score_champion(c, file, holdout))
            .transpose()?;
        let champion_view =
            champion
                .as_ref()
                .zip(champion_scores.as_ref())
                .map(|(c, (s, classes))| ChampionView {
                    version: c.version,
                    scores: s.as_ref().map_err(Clone::clone),
                    classes,
                    schema_hash: &c.info.schema_hash,
                    data_fingerprint: &c.info.data_fingerprint,
                    split: c.info.split,
                });
        let evaluation = evaluate(
            policy,
            &holdout.labels,
            &holdout.classes,
            &view,
            champion_view.as_ref(),
        );
        let mut report = Report {
            model: model.to_owned(),
            alias: alias.to_owned(),
            candidate: CandidateInfo {
                sha256: sha256.to_owned(),
                trial_key: file.trial_key.clone(),
                algorithm: file.algorithm.clone(),
                experiment: file.experiment.clone(),
                sweep_id: candidate.sweep_id,
            },
            champion: champion.as_ref().map(|c| c.version),
            holdout_rows: holdout.labels.len(),
            decision: if evaluation.promote {
                "promoted"
            } else {
                "rejected"
            },
            reason: evaluation.reason(),
            version: None,
            dry_run: request.dry_run,
            attempts: attempt,
            rules: evaluation.rules,
        };
        if attempt == 1 {
            overlap_barrier().await;
        }
        if !request.dry_run {
            let path = match &kept {
                Some(p) => p.clone(),
                None => kept
                    .insert(keep_model_file(candidate, request.models_dir)?)
                    .clone(),
            };
            let new_version = NewVersion {
                sha256: sha256.to_owned(),
                path,
                experiment: file.experiment.clone(),
                trial_key: file.trial_key.clone(),
                sweep_id: candidate.sweep_id,
                algorithm: file.algorithm.clone(),
                metrics: scores.metrics.clone(),
                data_fingerprint: file.data_fingerprint.clone(),
                split: file.split,
                schema_hash: file.schema.hash.clone(),
            };
            let evidence = serde_json::to_value(&report)?;
            let decision = Decision {
                model,
                alias,
                candidate: &new_version,
                promote: evaluation.promote,
                evaluated_against: report.champion,
                actor: request.actor,
                reason: &report.reason,
                evidence: &evidence,
            };
            match registry.record_decision(&decision).await? {
                Recorded::Stale { current } => {
                    tracing::info!(
                        "`{alias}` moved to version {current:?} during the evaluation: evaluating again"
                    );
                    continue;
                }
                Recorded::AlreadyHolds { version } => return Ok(already(version)),
                Recorded::Done { version, .. } => report.version = Some(version),
            }
        }
        return Ok(Promoted::Decided {
            report: Box::new(report),
            kept,
        });
    }
    anyhow::bail!(
        "`{alias}` of {model} kept moving during {MAX_ATTEMPTS} evaluations (concurrent promotions): try again"
    )
}

/// Scores the champion on the candidate's holdout; `Err(why)` when it cannot be (a
/// different schema that the rows do not fit, another feature count). A champion whose
/// model file is missing or altered is an error of its own: the registry is not trusted.
fn score_champion(
    champion: &VersionRow,
    candidate: &ModelFile,
    holdout: &Holdout,
) -> anyhow::Result<(Result<Scores, String>, Classes)> {
    verify_file(&champion.info.path, &champion.info.sha256)
        .with_context(|| format!("checking champion version {}", champion.version))?;
    let (file, _) = ModelFile::load(&champion.info.path)?;
    let classes = file.classes();
    let features = if file.schema.hash == candidate.schema.hash {
        holdout.features.clone()
    } else {
        match holdout.features_for(&file.schema) {
            Ok(f) => f,
            Err(e) => return Ok((Err(e.to_string()), classes)),
        }
    };
    if classes != holdout.classes {
        let why = format!(
            "it answers the classes {:?}, the candidate's holdout has {:?}",
            classes.names, holdout.classes.names
        );
        return Ok((Err(why), classes));
    }
    let scores = Scores::of(
        &file.model,
        &features,
        &holdout.labels,
        &holdout.classes,
        file.threshold(),
    )
    .map_err(|e| e.to_string());
    Ok((scores, classes))
}

/// A test-only rendezvous that makes concurrent promotions overlap for certain. With
/// `NETSEC_TEST_PROMOTE_BARRIER=<dir>:<n>` set (tests/it/registry_cli.rs does), each
/// promotion, after its first evaluation and before recording its decision, marks itself
/// in `<dir>` and waits until `n` promotions have (at most 60 s): all of them then judged
/// the same champion, so all but the first to record must find the alias moved and
/// evaluate again. Unset, as in any real use, it does nothing.
async fn overlap_barrier() {
    let Some((dir, count)) = std::env::var("NETSEC_TEST_PROMOTE_BARRIER")
        .ok()
        .and_then(|v| {
            let (dir, n) = v.rsplit_once(':')?;
            Some((PathBuf::from(dir), n.parse::<usize>().ok()?))
        })
    else {
        return;
    };
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(std::process::id().to_string()), b"");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let arrived = std::fs::read_dir(&dir).map_or(0, |d| d.count());
        if arrived >= count {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tracing::warn!("promotion barrier: fewer than {count} promotions arrived in 60 s");
}

/// Makes sure the candidate's bytes are kept content-addressed in `dir` and returns that
/// path: a registered version must outlive the sweep's files.
fn keep_model_file(candidate: &Candidate, dir: &Path) -> anyhow::Result<PathBuf> {
    let target = dir.join(format!("{}.json", candidate.sha256));
    if target.exists() {
        verify_file(&target, &candidate.sha256)?;
        return Ok(target);
    }
    match &candidate.path {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            std::fs::create_dir_all(dir)
                .and_then(|()| write_atomic(&target, |w| w.write_all(&bytes)))
                .with_context(|| format!("keeping the model file as {}", target.display()))?;
            Ok(target)
        }
        None => Ok(candidate.file.save_content_addressed(dir)?.0),
    }
}
