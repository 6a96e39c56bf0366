//! Retrain files: what `netsec retrain` runs, stage by stage.
//!
//! ```yaml
//! grid: experiments/phishing.yaml       # the sweep; its `data:` section is the fresh data
//! policy: registry/retrain-policy.yaml  # the promotion policy
//! drift: { on_drift: warn, alpha: 0.05, psi: 0.2 }   # stop | warn | continue
//! publish: { to: "s3://models/netsec" } # optional: publish when promoted
//! ```
//!
//! Relative paths are relative to the working directory, as in grid files.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::data::drift::DriftThresholds;
use crate::shared::yaml::{YamlError, parse_yaml, read_yaml};

/// What to do when the fresh data drifted from the champion's training data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDrift {
    /// Stop before the sweep (exit 2): a person looks at the data first.
    Stop,
    /// Say so in the summary and go on.
    #[default]
    Warn,
    /// Go on; the drift report is still part of the summary.
    Continue,
}

/// The `drift:` section.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftConfig {
    /// What a detected drift does to the run.
    #[serde(default)]
    pub on_drift: OnDrift,
    /// A column drifts when its p-value is below this.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// A column drifts when its PSI is at least this.
    #[serde(default = "default_psi")]
    pub psi: f64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            on_drift: OnDrift::default(),
            alpha: default_alpha(),
            psi: default_psi(),
        }
    }
}

impl DriftConfig {
    /// The thresholds of the drift test.
    pub fn thresholds(&self) -> DriftThresholds {
        DriftThresholds {
            ks_alpha: self.alpha,
            psi: self.psi,
        }
    }
}

fn default_alpha() -> f64 {
    DriftThresholds::default().ks_alpha
}

fn default_psi() -> f64 {
    DriftThresholds::default().psi
}

/// The `publish:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// Destination store (`file://DIR` or `s3://bucket/prefix`); default: NETSEC_STORE,
    /// else the state directory's store.
    #[serde(default)]
    pub to: Option<String>,
    /// S3 endpoint of an S3-compatible server (default: AWS_ENDPOINT_URL).
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

/// A retrain file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrainFile {
    /// The grid file of the sweep; its data section names the fresh data.
    pub grid: PathBuf,
    /// The promotion policy file.
    pub policy: PathBuf,
    /// Drift check against the champion's training data.
    #[serde(default)]
    pub drift: DriftConfig,
    /// Publish the model when it is promoted; absent: do not publish.
    #[serde(default)]
    pub publish: Option<PublishConfig>,
}

/// A retrain file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RetrainConfigError {
    /// Unreadable, malformed, unknown or mistyped field.
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// Well-formed but unusable.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The retrain file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl RetrainConfigError {
    /// The process exit code: bad input (the retrain file).
    pub fn exit_code(&self) -> u8 {
        match self {
            RetrainConfigError::Yaml(e) => e.exit_code(),
            RetrainConfigError::Invalid { .. } => crate::exit::BAD_INPUT,
        }
    }
}

impl RetrainFile {
    /// Reads and checks a retrain file.
    pub fn from_file(path: &Path) -> Result<RetrainFile, RetrainConfigError> {
        let file: RetrainFile = read_yaml(path)?;
        file.check(path)?;
        for (field, file_path) in [("grid", &file.grid), ("policy", &file.policy)] {
            if !file_path.is_file() {
                return Err(RetrainConfigError::Invalid {
                    path: path.to_owned(),
                    message: format!(
                        "{field}: {} does not exist (relative paths are relative to the working directory)",
                        file_path.display()
                    ),
                });
            }
        }
        Ok(file)
    }

    /// Parses retrain text and checks its thresholds (not that the files it names exist,
    /// which [`RetrainFile::from_file`] adds); `path` names it in messages.
    pub fn from_yaml_str(path: &Path, text: &str) -> Result<RetrainFile, RetrainConfigError> {
        let file: RetrainFile = parse_yaml(path, text)?;
        file.check(path)?;
        Ok(file)
    }

    fn check(&self, path: &Path) -> Result<(), RetrainConfigError> {
        let file = self;
        let invalid = |message: String| RetrainConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        if !(0.0..=1.0).contains(&file.drift.alpha) {
            return Err(invalid(format!(
                "drift.alpha is {}: it must be in [0, 1]",
                file.drift.alpha
            )));
        }
        if file.drift.psi.is_nan() || file.drift.psi < 0.0 {
            return Err(invalid(format!(
                "drift.psi is {}: it must be >= 0",
                file.drift.psi
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RetrainFile, YamlError> {
        crate::shared::yaml::parse_yaml(Path::new("retrain.yaml"), text)
    }

    #[test]
    fn defaults_warn_on_drift_and_do_not_publish() {
        let f = parse("grid: g.yaml\npolicy: p.yaml\n").unwrap();
        assert_eq!(f.drift.on_drift, OnDrift::Warn);
        assert!(f.publish.is_none());
        assert_eq!(f.drift.alpha, DriftThresholds::default().ks_alpha);
    }

    #[test]
    fn typos_name_the_line_and_field() {
        let err = parse("grid: g.yaml\npolicy: p.yaml\ndrift: { on_drfit: stop }\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("retrain.yaml:3:"), "{text}");
        assert!(text.contains("on_drfit"), "{text}");
        let err = parse("grid: g.yaml\npolicy: p.yaml\ndrift: { on_drift: halt }\n").unwrap_err();
        assert!(err.to_string().contains("halt"), "{err}");
    }

    #[test]
    fn bad_thresholds_and_missing_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("netsec-retrain-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let grid = write("g.yaml", "x");
        let cfg = write(
            "r1.yaml",
            &format!("grid: {}\npolicy: {}\n", grid.display(), grid.display()),
        );
        assert!(RetrainFile::from_file(&cfg).is_ok());
        let cfg = write(
            "r2.yaml",
            &format!("grid: {}\npolicy: nowhere.yaml\n", grid.display()),
        );
        let err = RetrainFile::from_file(&cfg).unwrap_err().to_string();
        assert!(err.contains("policy: nowhere.yaml does not exist"), "{err}");
        let cfg = write(
            "r3.yaml",
            &format!(
                "grid: {}\npolicy: {}\ndrift: {{ alpha: 2 }}\n",
                grid.display(),
                grid.display()
            ),
        );
        let err = RetrainFile::from_file(&cfg).unwrap_err().to_string();
        assert!(err.contains("drift.alpha is 2"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
