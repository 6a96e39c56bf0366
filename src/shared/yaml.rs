//! Reading YAML files into typed structs with errors that name file, line and column.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A YAML file that could not be read or does not match the expected structure.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// The file could not be read at all.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The YAML is malformed or does not fit the expected structure.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending node (0 when unknown).
        line: u64,
        /// 1-based column of the offending node (0 when unknown).
        column: u64,
        /// What is wrong, e.g. an unknown field with the expected ones.
        message: String,
    },
}

impl YamlError {
    /// The process exit code: bad input (the file the user gave).
    pub fn exit_code(&self) -> u8 {
        match self {
            YamlError::Read { .. } => crate::exit::BAD_INPUT,
            YamlError::Parse { .. } => crate::exit::BAD_INPUT,
        }
    }
}

/// Reads `path` and deserializes it, rejecting typos through `deny_unknown_fields` on `T`.
pub fn read_yaml<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    let text = std::fs::read_to_string(path).map_err(|source| YamlError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_yaml(path, &text)
}

/// Deserializes YAML `text` that came from `path` (used only in messages).
pub fn parse_yaml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str(text).map_err(|err| {
        let (line, column) = err
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        YamlError::Parse {
            path: path.to_owned(),
            line,
            column,
            message: one_line(&err.without_snippet().to_string()),
        }
    })
}

/// Keeps the first line of a library message and drops its own position suffix,
/// since the error already leads with `file:line:column`.
fn one_line(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message).trim();
    match first.find(" at line ") {
        Some(cut) => first[..cut].trim_end_matches(',').to_owned(),
        None => first.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Example {
        name: String,
        folds: u32,
    }

    #[test]
    fn typo_names_line_column_and_field() {
        let err = parse_yaml::<Example>(Path::new("g.yaml"), "name: x\nfodls: 3\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("g.yaml:2:1: "), "{text}");
        assert!(text.contains("fodls"), "{text}");
    }

    #[test]
    fn wrong_type_names_line() {
        let err = parse_yaml::<Example>(Path::new("g.yaml"), "name: x\nfolds: many\n").unwrap_err();
        assert!(err.to_string().starts_with("g.yaml:2:"), "{err}");
    }
}
