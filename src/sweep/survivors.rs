//! The survivors file of a sharded halving search. Shards run their slice of a rung and
//! never halve on their own: `netsec experiment collect GRID --rung R` ranks the whole
//! rung (every shard's trials) and writes the candidates of rung R+1 here, and
//! `netsec experiment run GRID --shard I/N --rung R+1` reads them back. One file serves the
//! whole search, a rung per entry; it names the search (experiment, data fingerprint,
//! search key) so that a file of another grid, data or seed is refused, not run.
//!
//! ```json
//! { "format": "netsec-halving-survivors", "version": 1, "experiment": "phishing",
//!   "data_fingerprint": "…", "search_key": "…",
//!   "rungs": [ { "rung": 1, "rows": 3000, "from_trials": 18,
//!                "candidates": [ { "algorithm": "random_forest", "params": {…},
//!                                  "trial": "<its key in rung 0>" } ] } ] }
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::plan::Candidate;
use crate::exit::UsageError;
use crate::fsutil::write_atomic;
use crate::models::Params;

/// The `format` field of a survivors file.
pub const FORMAT: &str = "netsec-halving-survivors";
/// The `version` field this netsec writes and reads.
pub const VERSION: u32 = 1;

/// A sharded halving search's survivors, rung by rung.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurvivorsFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// The experiment (grid name).
    pub experiment: String,
    /// The data the search runs on.
    pub data_fingerprint: String,
    /// The search (see `halving::search_key`).
    pub search_key: String,
    /// The candidates of each rung after the first, in rung order.
    pub rungs: Vec<RungSurvivors>,
}

/// The candidates of one rung: the survivors of the rung before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RungSurvivors {
    /// The rung they run in (≥ 1).
    pub rung: usize,
    /// Its training rows.
    pub rows: usize,
    /// Trials of the rung before, which they were picked from.
    pub from_trials: usize,
    /// The candidates, in plan order.
    pub candidates: Vec<Survivor>,
}

/// One surviving candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Survivor {
    /// Its algorithm.
    pub algorithm: String,
    /// Its complete parameters.
    pub params: Params,
    /// Its trial key in the rung before (for the record; the next rung's key differs).
    pub trial: String,
}

impl SurvivorsFile {
    /// An empty file of one search.
    pub fn new(experiment: &str, data_fingerprint: &str, search_key: &str) -> SurvivorsFile {
        SurvivorsFile {
            format: FORMAT.into(),
            version: VERSION,
            experiment: experiment.into(),
            data_fingerprint: data_fingerprint.into(),
            search_key: search_key.into(),
            rungs: Vec::new(),
        }
    }

    /// The file at `path`, or `None` when there is none; a usage error (exit 2) naming the
    /// file when it is not a survivors file this netsec reads.
    pub fn read(path: &Path) -> Result<Option<SurvivorsFile>, UsageError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(UsageError(format!("cannot read {}: {e}", path.display()))),
        };
        let file: SurvivorsFile = serde_json::from_str(&text).map_err(|e| {
            UsageError(format!(
                "{}:{}:{}: not a halving survivors file: {e}",
                path.display(),
                e.line(),
                e.column()
            ))
        })?;
        if file.format != FORMAT || file.version != VERSION {
            return Err(UsageError(format!(
                "{}: format `{}` version {} is not `{FORMAT}` version {VERSION}",
                path.display(),
                file.format,
                file.version
            )));
        }
        Ok(Some(file))
    }

    /// Writes the file atomically (a reader never sees half of it).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_vec_pretty(self)?;
        write_atomic(path, |w| w.write_all(&json))?;
        Ok(())
    }

    /// Whether the file is of this search; a usage error saying what differs when not.
    pub fn check_search(
        &self,
        path: &Path,
        experiment: &str,
        data_fingerprint: &str,
        search_key: &str,
    ) -> Result<(), UsageError> {
        let differs = if self.experiment != experiment {
            Some(format!(
                "experiment `{}`, not `{experiment}`",
                self.experiment
            ))
        } else if self.data_fingerprint != data_fingerprint {
            Some("other data (another data fingerprint)".to_owned())
        } else if self.search_key != search_key {
            Some("another search (the grid's candidates or its search section changed)".into())
        } else {
            None
        };
        match differs {
            Some(what) => Err(UsageError(format!(
                "{} holds the survivors of {what}; collect this search's rungs again from \
                 rung 0, or give its own file with --survivors",
                path.display()
            ))),
            None => Ok(()),
        }
    }

    /// The candidates of rung `index`, when collected.
    pub fn rung(&self, index: usize) -> Option<&RungSurvivors> {
        self.rungs.iter().find(|r| r.rung == index)
    }

    /// Sets the candidates of `entry.rung`, dropping every later rung (picked from the
    /// entries this one replaces).
    pub fn set(&mut self, entry: RungSurvivors) {
        self.rungs.retain(|r| r.rung < entry.rung);
        self.rungs.push(entry);
    }
}

impl RungSurvivors {
    /// The candidates among `all` (the grid's, in plan order) that this rung runs, in
    /// plan order; a usage error naming the file when one is not a candidate of the grid.
    pub fn candidates(&self, all: &[Candidate], path: &Path) -> Result<Vec<Candidate>, UsageError> {
        for s in &self.candidates {
            let known = all
                .iter()
                .any(|c| c.algorithm.name() == s.algorithm && c.params == s.params);
            if !known {
                return Err(UsageError(format!(
                    "{}: survivor {} of rung {} ({} {}) is not a candidate of the grid; \
                     collect the search again from rung 0",
                    path.display(),
                    s.trial,
                    self.rung,
                    s.algorithm,
                    serde_json::to_string(&s.params).unwrap_or_default()
                )));
            }
        }
        Ok(all
            .iter()
            .filter(|c| {
                self.candidates
                    .iter()
                    .any(|s| c.algorithm.name() == s.algorithm && c.params == s.params)
            })
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rung: usize) -> RungSurvivors {
        RungSurvivors {
            rung,
            rows: 100 * rung,
            from_trials: 3,
            candidates: Vec::new(),
        }
    }

    #[test]
    fn setting_a_rung_drops_the_later_ones_and_the_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h/s.json");
        assert_eq!(SurvivorsFile::read(&path).unwrap(), None);
        let mut file = SurvivorsFile::new("e", "fp", "sk");
        file.set(entry(1));
        file.set(entry(2));
        file.set(entry(1));
        assert_eq!(file.rungs, [entry(1)]);
        file.write(&path).unwrap();
        let back = SurvivorsFile::read(&path).unwrap().unwrap();
        assert_eq!(back, file);
        assert!(back.check_search(&path, "e", "fp", "sk").is_ok());
        let other = back.check_search(&path, "e", "fp", "other").unwrap_err();
        assert!(other.0.contains("another search"), "{other}");
        std::fs::write(&path, "{\"format\": 1}").unwrap();
        let bad = SurvivorsFile::read(&path).unwrap_err().0;
        assert!(
            bad.contains("s.json:1:") && bad.contains("not a halving survivors file"),
            "{bad}"
        );
    }
}
