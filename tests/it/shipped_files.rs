//! The configuration files the repository ships, and that its workflows, the Kubernetes
//! manifests and the README use, parse with netsec's own readers, and every file they name
//! exists (paths in them are relative to the repository root, where those jobs run).

use std::path::{Path, PathBuf};

use netsec::config::grid::GridFile;
use netsec::config::retrain::RetrainFile;
use netsec::data::Schema;
use netsec::registry::Policy;

use crate::common::repo_file;

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_file(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML file in {dir}");
    files
}

fn must_exist(named_by: &Path, relative: &Path) {
    let path = repo_file(relative.to_str().unwrap());
    assert!(
        path.exists(),
        "{} names {}, which does not exist",
        named_by.display(),
        relative.display()
    );
}

#[test]
fn every_shipped_config_file_parses_and_names_files_that_exist() {
    let mut grids = 0;
    for path in yaml_files("experiments") {
        let grid = GridFile::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        netsec::sweep::plan::expand(&grid, &path).unwrap_or_else(|e| panic!("{e}"));
        must_exist(&path, &grid.data.schema.value);
        Schema::from_file(&repo_file(grid.data.schema.value.to_str().unwrap()))
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(data) = &grid.data.path {
            must_exist(&path, &data.value);
        }
        grids += 1;
    }
    assert_eq!(
        grids, 9,
        "experiments/: phishing, phishing-halving, phishing-random, phishing-early, intrusion, \
         intrusion-1m, intrusion-1m-halving, nsl-kdd, quick"
    );

    for path in yaml_files("data_schema") {
        Schema::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
    }
    for path in yaml_files("registry") {
        Policy::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
    }

    let retrain = repo_file("retrain.yaml");
    let config = RetrainFile::from_file(&retrain).unwrap_or_else(|e| panic!("{e}"));
    must_exist(&retrain, &config.grid);
    must_exist(&retrain, &config.policy);
    Policy::from_file(&repo_file(config.policy.to_str().unwrap()))
        .unwrap_or_else(|e| panic!("{e}"));
}
