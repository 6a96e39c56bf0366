//! `netsec promote`: the entry point for registering a candidate and deciding, by a
//! policy's rules on the pinned holdout, whether it takes the alias (champion).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::cli::{OutputFormat, PromoteArgs};
use crate::exit::{AfterCommit, Outcome, UsageError};
use crate::fsutil::write_atomic;
use crate::model_file::ModelFile;
use crate::registry::promotion::{
    CandidateView, ChampionView, Evaluation, Holdout, Scores, evaluate, fmt_value, p99_predict_us,
};
use crate::registry::store::{Decision, NewVersion, Recorded, VersionRow, verify_file};
use crate::registry::{Policy, Registry};
use crate::storage::StoreUrl;
use crate::sweep::record::TrialStatus;
use crate::sweep::store::RunStore;

/// How often a promotion evaluates again when another promotion moved the alias meanwhile.
const MAX_ATTEMPTS: usize = 5;

/// The candidate as found.
struct Candidate {
    file: ModelFile,
    sha256: String,
    /// Where its bytes are now (none when it was just refitted).
    path: Option<PathBuf>,
    sweep_id: Option<i64>,
}

/// What `--output json` prints (and what the history keeps as evidence).
#[derive(Debug, Serialize)]
struct Report<'a> {
    model: &'a str,
    alias: &'a str,
    candidate: CandidateInfo<'a>,
    champion: Option<i64>,
    holdout_rows: usize,
    decision: &'static str,
    reason: String,
    version: Option<i64>,
    dry_run: bool,
    rules: &'a [crate::registry::promotion::Rule],
}

#[derive(Debug, Serialize)]
struct CandidateInfo<'a> {
    sha256: &'a str,
    trial_key: &'a str,
    algorithm: &'a str,
    experiment: &'a str,
    sweep_id: Option<i64>,
}

/// Evaluates the candidate against the policy and the current champion, records the
/// decision (unless `--dry-run`) and reports it.
pub fn run(args: PromoteArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let policy = Policy::from_file(&args.policy)?;
    let model = args.name.clone().unwrap_or_else(|| policy.model.clone());
    let alias = policy.alias.clone();
    let state_dir = args.registry.state.state_dir.clone();
    // A bad store URL stops here, before anything is recorded.
    let publish_to = if args.publish && !args.dry_run {
        Some(super::publish::publish_target(
            &model,
            args.store.to.as_deref(),
            &args.store.s3,
            &state_dir,
        )?)
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let registry = runtime.block_on(Registry::open(&args.registry.path()))?;
    let candidate = runtime.block_on(find_candidate(&args, &state_dir))?;
    let Candidate {
        file,
        sha256,
        path,
        sweep_id,
    } = candidate;
    if file.metrics.test.is_none() {
        return Err(UsageError(format!(
            "model {} (trial {}) has no test metrics: it was not scored, so it cannot be promoted",
            &sha256[..12],
            file.trial_key
        ))
        .into());
    }
    let holdout = runtime.block_on(crate::pipeline::source::holdout(&file, &sha256))?;
    let scores = Scores::of(&file.model, &holdout.features, &holdout.labels)
        .context("scoring the candidate on its holdout")?;
    let p99_us = p99_predict_us(&file.model, &holdout.features)?;
    let schema_hash = file.schema.hash.clone();
    let view = CandidateView {
        scores: &scores,
        p99_us,
        schema_hash: &schema_hash,
        data_fingerprint: &file.data_fingerprint,
        split: file.split,
    };
    let actor = actor();
    let mut stored_path = None;
    // The candidate already holds the alias: nothing moves, but a publication that failed
    // last time is retried.
    let nothing_to_do = |version: i64, out: &mut dyn Write| -> anyhow::Result<Outcome> {
        writeln!(
            out,
            "model {} is already `{alias}` of {model} (version {version}): nothing to do",
            &sha256[..12]
        )?;
        let to = publish_to.as_ref();
        let published = publish_promoted(&runtime, &registry, &model, &alias, to, &args, out);
        runtime.block_on(registry.close());
        published.map(|()| Outcome::Success)
    };
    for _ in 0..MAX_ATTEMPTS {
        let champion = runtime.block_on(registry.alias_version(&model, &alias))?;
        if let Some(c) = champion.as_ref().filter(|c| c.info.sha256 == sha256) {
            return nothing_to_do(c.version, out);
        }
        let champion_scores = champion
            .as_ref()
            .map(|c| score_champion(c, &file, &holdout))
            .transpose()?;
        let champion_view = champion
            .as_ref()
            .zip(champion_scores.as_ref())
            .map(|(c, s)| ChampionView {
                version: c.version,
                scores: s.as_ref().map_err(Clone::clone),
                schema_hash: &c.info.schema_hash,
                data_fingerprint: &c.info.data_fingerprint,
                split: c.info.split,
            });
        let evaluation = evaluate(&policy, &holdout.labels, &view, champion_view.as_ref());
        let reason = evaluation.reason();
        let mut report = Report {
            model: &model,
            alias: &alias,
            candidate: CandidateInfo {
                sha256: &sha256,
                trial_key: &file.trial_key,
                algorithm: &file.algorithm,
                experiment: &file.experiment,
                sweep_id,
            },
            champion: champion.as_ref().map(|c| c.version),
            holdout_rows: holdout.labels.len(),
            decision: if evaluation.promote {
                "promoted"
            } else {
                "rejected"
            },
            reason,
            version: None,
            dry_run: args.dry_run,
            rules: &evaluation.rules,
        };
        if !args.dry_run {
            let kept = match &stored_path {
                Some(p) => p,
                None => stored_path.insert(keep_model_file(
                    &file,
                    &sha256,
                    path.as_deref(),
                    &state_dir,
                )?),
            };
            let new_version = NewVersion {
                sha256: sha256.clone(),
                path: kept.clone(),
                experiment: file.experiment.clone(),
                trial_key: file.trial_key.clone(),
                sweep_id,
                algorithm: file.algorithm.clone(),
                metrics: scores.metrics.clone(),
                data_fingerprint: file.data_fingerprint.clone(),
                split: file.split,
                schema_hash: schema_hash.clone(),
            };
            let evidence = serde_json::to_value(&report)?;
            let decision = Decision {
                model: &model,
                alias: &alias,
                candidate: &new_version,
                promote: evaluation.promote,
                evaluated_against: report.champion,
                actor: &actor,
                reason: &report.reason,
                evidence: &evidence,
            };
            match runtime.block_on(registry.record_decision(&decision))? {
                Recorded::Stale { current } => {
                    tracing::info!(
                        "`{alias}` moved to version {current:?} during the evaluation: evaluating again"
                    );
                    continue;
                }
                Recorded::AlreadyHolds { version } => return nothing_to_do(version, out),
                Recorded::Done { version, .. } => report.version = Some(version),
            }
        }
        print(out, args.output, &report, &evaluation)?;
        append_step_summary(&report, &evaluation)?;
        let published = if evaluation.promote {
            publish_promoted(
                &runtime,
                &registry,
                &model,
                &alias,
                publish_to.as_ref(),
                &args,
                out,
            )
        } else {
            Ok(())
        };
        runtime.block_on(registry.close());
        // After the decision is shown: a warning about MLflow then reads as a footnote.
        out.flush()?;
        if let (true, Some(version), Some(kept)) =
            (evaluation.promote, report.version, &stored_path)
        {
            let alias_move = super::mirror::AliasMove {
                model: &model,
                alias: &alias,
                version,
                sha256: &sha256,
                trial_key: &file.trial_key,
                sweep_id,
                model_path: kept,
                action: "promote",
            };
            super::mirror::alias_moved(&state_dir, &alias_move);
        }
        published?;
        return Ok(if evaluation.promote {
            Outcome::Success
        } else {
            Outcome::Rejected
        });
    }
    anyhow::bail!(
        "`{alias}` of {model} kept moving during {MAX_ATTEMPTS} evaluations (concurrent promotions): try again"
    )
}

/// `--publish`: publishes what `alias` points at once the promotion is committed (or was
/// found done already, so that running the same promotion again retries a failed publish).
/// A failure here is a runtime failure (exit 1): the promotion stands.
fn publish_promoted(
    runtime: &tokio::runtime::Runtime,
    registry: &Registry,
    model: &str,
    alias: &str,
    to: Option<&StoreUrl>,
    args: &PromoteArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let Some(url) = to else {
        return Ok(());
    };
    if args.output == OutputFormat::Json {
        // stdout holds the JSON report alone; the publication is logged instead.
        let mut lines = Vec::new();
        let published = runtime.block_on(super::publish::publish_alias(
            registry,
            model,
            alias,
            url,
            &args.store.s3,
            &mut lines,
        ));
        tracing::info!("{}", String::from_utf8_lossy(&lines).trim_end());
        published
    } else {
        writeln!(out)?;
        runtime.block_on(super::publish::publish_alias(
            registry,
            model,
            alias,
            url,
            &args.store.s3,
            out,
        ))
    }
    .map_err(|e| {
        e.context(AfterCommit(format!(
            "`{alias}` of {model} is recorded, but publishing it failed \
             (retry with `netsec publish {model}@{alias}`)"
        )))
    })
}

/// Finds the candidate's model file: the best of the newest sweep, or a trial's.
async fn find_candidate(args: &PromoteArgs, state_dir: &Path) -> anyhow::Result<Candidate> {
    let store = RunStore::open(&RunStore::path_in(state_dir)).await?;
    let candidate = match &args.run {
        Some(key) => trial_candidate(&store, key).await,
        None => best_candidate(&store, args.best.as_deref().unwrap_or("")).await,
    };
    store.close().await;
    candidate
}

async fn best_candidate(store: &RunStore, experiment: &str) -> anyhow::Result<Candidate> {
    let sweeps = store.sweeps().await?;
    let sweep = sweeps
        .into_iter()
        .filter(|s| experiment.is_empty() || s.experiment == experiment)
        .find(|s| s.best_model_path.is_some())
        .ok_or_else(|| {
            UsageError(if experiment.is_empty() {
                "no sweep with a model in the run store: run `netsec experiment run` first".into()
            } else {
                format!("no sweep of experiment `{experiment}` with a model in the run store")
            })
        })?;
    let path = PathBuf::from(sweep.best_model_path.unwrap_or_default());
    if let Some(sha) = &sweep.best_model_sha256 {
        verify_file(&path, sha)?;
    }
    let (file, sha256) = ModelFile::load(&path)?;
    Ok(Candidate {
        file,
        sha256,
        path: Some(path),
        sweep_id: Some(sweep.id),
    })
}

async fn trial_candidate(store: &RunStore, key: &str) -> anyhow::Result<Candidate> {
    let trials = store.trials_by_prefix(key).await?;
    let trial = match trials.as_slice() {
        [one] => one,
        [] => return Err(UsageError(format!("no trial with key `{key}` in the run store")).into()),
        _ => {
            return Err(UsageError(format!(
                "`{key}` matches {} trials: give more of the key",
                trials.len()
            ))
            .into());
        }
    };
    if trial.status == TrialStatus::Failed || trial.test.is_none() {
        return Err(UsageError(format!(
            "trial {} has no metrics{}: nothing to promote",
            trial.key,
            trial
                .error
                .as_ref()
                .map(|e| format!(" (it failed: {e})"))
                .unwrap_or_default()
        ))
        .into());
    }
    let sweep = store.sweep_of_trial(&trial.key).await?.ok_or_else(|| {
        UsageError(format!(
            "trial {} belongs to no sweep in the run store",
            trial.key
        ))
    })?;
    if sweep.best_trial.as_deref() == Some(trial.key.as_str())
        && let (Some(path), Some(sha)) = (&sweep.best_model_path, &sweep.best_model_sha256)
    {
        let path = PathBuf::from(path);
        verify_file(&path, sha)?;
        let (file, sha256) = ModelFile::load(&path)?;
        return Ok(Candidate {
            file,
            sha256,
            path: Some(path),
            sweep_id: Some(sweep.id),
        });
    }
    tracing::info!(
        "trial {} has no model file: fitting it again from {}",
        &trial.key[..12],
        sweep.grid_path
    );
    let file = crate::pipeline::source::refit_trial(Path::new(&sweep.grid_path), trial).await?;
    let (_, sha256) = file.to_bytes();
    Ok(Candidate {
        file,
        sha256,
        path: None,
        sweep_id: Some(sweep.id),
    })
}

/// Scores the champion on the candidate's holdout; `Err(why)` when it cannot be (a
/// different schema that the rows do not fit, another feature count). A champion whose
/// model file is missing or altered is an error of its own: the registry is not trusted.
fn score_champion(
    champion: &VersionRow,
    candidate: &ModelFile,
    holdout: &Holdout,
) -> anyhow::Result<Result<Scores, String>> {
    verify_file(&champion.info.path, &champion.info.sha256)
        .with_context(|| format!("checking champion version {}", champion.version))?;
    let (file, _) = ModelFile::load(&champion.info.path)?;
    let features = if file.schema.hash == candidate.schema.hash {
        holdout.features.clone()
    } else {
        match holdout.features_for(&file.schema) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e.to_string())),
        }
    };
    Ok(Scores::of(&file.model, &features, &holdout.labels).map_err(|e| e.to_string()))
}

/// Makes sure the candidate's bytes are kept content-addressed in the state directory's
/// models/ and returns that path.
fn keep_model_file(
    file: &ModelFile,
    sha256: &str,
    current: Option<&Path>,
    state_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let dir = state_dir.join("models");
    let target = dir.join(format!("{sha256}.json"));
    if target.exists() {
        verify_file(&target, sha256)?;
        return Ok(target);
    }
    match current {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            std::fs::create_dir_all(&dir)
                .and_then(|()| write_atomic(&target, |w| w.write_all(&bytes)))
                .with_context(|| format!("keeping the model file as {}", target.display()))?;
            Ok(target)
        }
        None => Ok(file.save_content_addressed(&dir)?.0),
    }
}

/// Who is deciding: the CI actor when there is one, else the local user.
pub(super) fn actor() -> String {
    [
        "GITHUB_ACTOR",
        "GITLAB_USER_LOGIN",
        "BUILDKITE_BUILD_CREATOR",
        "USER",
        "USERNAME",
    ]
    .iter()
    .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    .unwrap_or_else(|| "unknown".into())
}

fn print(
    out: &mut dyn Write,
    format: OutputFormat,
    report: &Report<'_>,
    evaluation: &Evaluation,
) -> anyhow::Result<()> {
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
        &c.sha256[..12],
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
    let rows: Vec<[String; 5]> = evaluation
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

fn decision_line(report: &Report<'_>) -> String {
    let prefix = if report.dry_run {
        "dry run: would be "
    } else {
        ""
    };
    let version = report
        .version
        .map(|v| format!(" as version {v}"))
        .unwrap_or_default();
    if report.decision == "promoted" {
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
fn append_step_summary(report: &Report<'_>, evaluation: &Evaluation) -> anyhow::Result<()> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let mut md = format!(
        "### netsec promote: {} `{}`\n\n{}\n\n| rule | value | threshold | pass | detail |\n|---|---|---|---|---|\n",
        report.model,
        report.alias,
        decision_line(report)
    );
    for r in &evaluation.rules {
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
