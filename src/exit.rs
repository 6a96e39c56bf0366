//! Exit codes: 0 success, 1 runtime failure (server, I/O), 2 bad input (config, data,
//! arguments), 3 rejected by policy — so CI can tell "rejected" from "broken".

/// How a command ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything went as asked (exit 0).
    Success,
    /// The command ran and found the input invalid, after reporting why (exit 2).
    Invalid,
    /// A policy rejected the candidate (exit 3).
    Rejected,
}

impl Outcome {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Invalid => BAD_INPUT,
            Outcome::Rejected => 3,
        }
    }
}

/// Exit code of a runtime failure (server, I/O).
pub const RUNTIME_FAILURE: u8 = 1;
/// Exit code of bad input (config, data, arguments).
pub const BAD_INPUT: u8 = 2;

/// Bad command-line usage that clap cannot catch (e.g. an argument that must name a file
/// that does not exist).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A failure after the command's main change was committed (publishing after a promotion
/// or a rollback): a runtime failure (exit 1) whatever caused it, since the input was
/// accepted and acted on. Attached as the outermost context of the error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AfterCommit(pub String);

impl UsageError {
    /// The process exit code: bad input.
    pub fn exit_code(&self) -> u8 {
        BAD_INPUT
    }
}

impl AfterCommit {
    /// The process exit code: a runtime failure, whatever caused it.
    pub fn exit_code(&self) -> u8 {
        RUNTIME_FAILURE
    }
}

/// The exit code for an error: asked of the first error in its chain that is one of the
/// crate's typed errors (each classifies its own variants), a runtime failure when there
/// is none. [`AfterCommit`], attached as context, wins over what it wraps.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    // A context is not an element of `chain()` that downcasts to its own type, so
    // `AfterCommit` is asked of the error itself.
    if let Some(after) = err.downcast_ref::<AfterCommit>() {
        return after.exit_code();
    }
    err.chain()
        .find_map(typed_exit_code)
        .unwrap_or(RUNTIME_FAILURE)
}

/// The exit code of `cause` when it is one of the crate's typed errors. Every error type
/// of the crate is listed here; the unit tests build each variant through `anyhow` and
/// check its code, so a type left out of this list fails them.
fn typed_exit_code(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    macro_rules! first_of {
        ($($ty:ty),* $(,)?) => {
            $(
                if let Some(e) = cause.downcast_ref::<$ty>() {
                    return Some(e.exit_code());
                }
            )*
        };
    }
    first_of!(
        UsageError,
        AfterCommit,
        crate::shared::yaml::YamlError,
        crate::shared::metric::UnknownMetric,
        crate::config::grid::GridError,
        crate::config::retrain::RetrainConfigError,
        crate::data::SchemaError,
        crate::data::LoadError,
        crate::data::InvalidData,
        crate::data::infer::InferError,
        crate::data::split::SplitError,
        crate::data::drift::DriftError,
        crate::models::ParamError,
        crate::models::ModelError,
        crate::model_file::ModelFileError,
        crate::export::ExportError,
        crate::sweep::store::StoreError,
        crate::tracking::TrackingError,
        crate::tracking::outbox::OutboxError,
        crate::registry::RegistryError,
        crate::registry::PolicyError,
        crate::registry::promotion::HoldoutError,
        crate::storage::StorageError,
        crate::storage::pointer::PointerError,
        crate::serve::SourceError,
        crate::serve::ServeError,
        crate::serve::batch::PredictError,
        crate::serve::input::InputError,
        crate::serve::prediction_log::PredictionLogError,
        crate::ingest::mongo::MongoError,
        crate::state::LockError,
        crate::state::LockHeld,
    );
    None
}

/// Whether the error is a closed stdout (e.g. `netsec ... | head`), which is a normal end.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    //! One test per error type: each variant built, wrapped in `anyhow` as a command
    //! returns it, and its exit code checked, which also checks that `exit_code` lists the
    //! type.

    use std::path::PathBuf;

    use super::*;
    use crate::config::grid::GridError;
    use crate::config::retrain::RetrainConfigError;
    use crate::data::infer::InferError;
    use crate::data::{LoadError, SchemaError};
    use crate::ingest::mongo::MongoError;
    use crate::model_file::ModelFileError;
    use crate::models::{ModelError, ParamError, ParamValue};
    use crate::registry::promotion::HoldoutError;
    use crate::registry::{PolicyError, RegistryError};
    use crate::serve::SourceError;
    use crate::serve::input::{InputError, InputErrorDetail};
    use crate::serve::prediction_log::PredictionLogError;
    use crate::shared::yaml::YamlError;
    use crate::storage::{PointerError, StorageError};
    use crate::sweep::store::StoreError;
    use crate::tracking::{OutboxError, TrackingError};

    const R: u8 = RUNTIME_FAILURE;
    const B: u8 = BAD_INPUT;

    /// The exit code of `err` returned by a command; fails when `exit_code` does not list
    /// its type.
    fn code<E: std::error::Error + Send + Sync + 'static>(err: E) -> u8 {
        assert!(
            typed_exit_code(&err).is_some(),
            "{} is not listed in typed_exit_code",
            std::any::type_name::<E>()
        );
        exit_code(&anyhow::Error::new(err))
    }

    /// The same, with a context on top as most commands add.
    fn with_context<E: std::error::Error + Send + Sync + 'static>(err: E) -> u8 {
        exit_code(&anyhow::Error::new(err).context("doing something"))
    }

    fn io() -> std::io::Error {
        std::io::Error::other("boom")
    }

    fn path() -> PathBuf {
        PathBuf::from("f")
    }

    fn sqlx() -> sqlx::Error {
        sqlx::Error::PoolClosed
    }

    fn json() -> serde_json::Error {
        serde_json::from_str::<u8>("x").unwrap_err()
    }

    fn yaml_read() -> YamlError {
        YamlError::Read {
            path: path(),
            source: io(),
        }
    }

    fn yaml_parse() -> YamlError {
        YamlError::Parse {
            path: path(),
            line: 1,
            column: 1,
            message: "m".into(),
        }
    }

    fn s() -> String {
        "x".into()
    }

    #[test]
    fn usage_and_after_commit() {
        assert_eq!(code(UsageError(s())), B);
        assert_eq!(code(AfterCommit(s())), R);
        // AfterCommit as the outermost context wins over a bad-input cause.
        let err = anyhow::Error::new(UsageError(s())).context(AfterCommit(s()));
        assert_eq!(exit_code(&err), R);
        // No typed error at all: a runtime failure.
        assert_eq!(exit_code(&anyhow::Error::new(io())), R);
        assert_eq!(exit_code(&anyhow::anyhow!("plain")), R);
    }

    #[test]
    fn broken_pipe_is_recognised_through_context() {
        let err = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing");
        assert!(is_broken_pipe(&err));
        assert!(!is_broken_pipe(&anyhow::Error::new(io())));
    }

    #[test]
    fn yaml_errors_are_bad_input() {
        assert_eq!(code(yaml_read()), B);
        assert_eq!(code(crate::shared::metric::UnknownMetric(s())), B);
        assert_eq!(with_context(yaml_parse()), B);
    }

    #[test]
    fn config_file_errors_are_bad_input() {
        assert_eq!(code(GridError::Yaml(yaml_read())), B);
        assert_eq!(
            code(GridError::Invalid {
                path: path(),
                line: 1,
                column: 1,
                message: s(),
            }),
            B
        );
        assert_eq!(code(RetrainConfigError::Yaml(yaml_parse())), B);
        assert_eq!(
            code(RetrainConfigError::Invalid {
                path: path(),
                message: s(),
            }),
            B
        );
        assert_eq!(code(SchemaError::Yaml(yaml_read())), B);
        assert_eq!(
            code(SchemaError::Invalid {
                path: path(),
                message: s(),
            }),
            B
        );
        assert_eq!(code(PolicyError::Yaml(yaml_read())), B);
        assert_eq!(
            code(PolicyError::Invalid {
                path: path(),
                line: 1,
                column: 1,
                message: s(),
            }),
            B
        );
    }

    #[test]
    fn load_errors_are_bad_input() {
        for err in [
            LoadError::Remote { what: s() },
            LoadError::Io {
                path: path(),
                source: io(),
            },
            LoadError::Empty { path: path() },
            LoadError::NoRows { path: path() },
            LoadError::Ragged {
                path: path(),
                line: 1,
                expected: 2,
                found: 3,
            },
            LoadError::DuplicateHeader {
                path: path(),
                name: s(),
            },
            LoadError::UnknownFormat { path: path() },
            LoadError::Parse {
                path: path(),
                message: s(),
            },
        ] {
            assert_eq!(with_context(err), B);
        }
    }

    #[test]
    fn infer_errors_are_bad_input() {
        for err in [
            InferError::NoLabelColumn {
                source_name: s(),
                column: s(),
                available: s(),
            },
            InferError::SingleLabel {
                source_name: s(),
                column: s(),
                value: s(),
            },
            InferError::EmptyLabel {
                source_name: s(),
                column: s(),
            },
            InferError::NotALabel {
                source_name: s(),
                column: s(),
                why: s(),
            },
            InferError::UnknownClass {
                source_name: s(),
                column: s(),
                value: s(),
                values: s(),
            },
            InferError::OneClass {
                source_name: s(),
                message: s(),
            },
            InferError::MixedTypes {
                source_name: s(),
                columns: Vec::new(),
            },
            InferError::NoFeatures {
                source_name: s(),
                reasons: s(),
            },
        ] {
            assert_eq!(code(err), B);
        }
    }

    /// Data that does not fit its schema (the type keeps its fields private).
    fn invalid_data() -> crate::data::InvalidData {
        let schema = crate::data::Schema::from_yaml_str(
            &path(),
            "name: t\nlabel: { column: y, type: integer, values: [0, 1], positive: [1] }\n\
             columns:\n  - { name: x, type: integer, values: [0, 1] }\n",
        )
        .unwrap();
        let table =
            crate::data::load::csv_from_bytes(&path(), b"x,y\n7,1\n0,0\n".to_vec()).unwrap();
        crate::data::dataset_from_table(&table, &schema).unwrap_err()
    }

    #[test]
    fn drift_errors_are_runtime_failures_except_the_data() {
        use crate::data::drift::DriftError;
        assert_eq!(code(DriftError::Data(invalid_data())), B);
        for err in [
            DriftError::Json(json()),
            DriftError::Yaml(s()),
            DriftError::Write {
                path: path(),
                source: io(),
            },
        ] {
            assert_eq!(code(err), R);
        }
    }

    #[test]
    fn split_errors_are_runtime_failures_except_the_data() {
        use crate::data::split::SplitError;
        assert_eq!(code(SplitError::Data(invalid_data())), B);
        let frame = polars::error::PolarsError::ComputeError("x".into());
        for err in [
            SplitError::CreateDir {
                path: path(),
                source: io(),
            },
            SplitError::Write {
                path: path(),
                source: io(),
            },
            SplitError::Frame(frame),
            SplitError::Json(json()),
        ] {
            assert_eq!(code(err), R);
        }
    }

    fn param_error() -> ParamError {
        ParamError::Unknown {
            algorithm: "svm",
            key: s(),
            known: s(),
        }
    }

    #[test]
    fn param_errors_are_bad_input() {
        assert_eq!(code(param_error()), B);
        assert_eq!(
            code(ParamError::Invalid {
                algorithm: "svm",
                key: s(),
                expected: s(),
                got: ParamValue::Null,
            }),
            B
        );
    }

    #[test]
    fn model_errors_are_runtime_failures_except_the_feature_count() {
        assert_eq!(
            code(ModelError::FeatureCount {
                expected: 1,
                got: 2
            }),
            B
        );
        for err in [
            // A transparent variant hides its cause from the chain; it was a runtime
            // failure before the codes were typed, and stays one.
            ModelError::Param(param_error()),
            ModelError::Empty {
                rows: 0,
                features: 0,
            },
            ModelError::LengthMismatch { rows: 1, labels: 2 },
            ModelError::SingleClass { class: 1 },
            ModelError::NonFinite { row: 0, feature: 0 },
            ModelError::Stages {
                stages: Vec::new(),
                n_stages: 1,
            },
            ModelError::TooLarge {
                algorithm: "svm",
                message: s(),
            },
            ModelError::Solver {
                algorithm: "svm",
                message: s(),
            },
        ] {
            assert_eq!(code(err), R);
        }
    }

    #[test]
    fn model_file_errors() {
        assert_eq!(
            code(ModelFileError::Read {
                path: path(),
                source: io(),
            }),
            B
        );
        assert_eq!(
            code(ModelFileError::Format {
                path: path(),
                message: s(),
            }),
            B
        );
        assert_eq!(
            code(ModelFileError::Write {
                path: path(),
                source: io(),
            }),
            R
        );
    }

    #[test]
    fn export_errors() {
        use crate::export::{ExportError, onnx::Unsupported};
        let not_a_model = ModelFileError::Format {
            path: path(),
            message: s(),
        };
        assert_eq!(code(ExportError::ModelFile(not_a_model)), B);
        let unsupported = Unsupported {
            algorithm: s(),
            message: s(),
        };
        assert_eq!(
            code(ExportError::Unsupported {
                path: path(),
                source: unsupported,
            }),
            B
        );
        assert_eq!(
            code(ExportError::Write {
                path: path(),
                source: io(),
            }),
            R
        );
    }

    #[test]
    fn database_errors_are_runtime_failures() {
        assert_eq!(
            code(StoreError::Open {
                path: path(),
                source: sqlx(),
            }),
            R
        );
        assert_eq!(code(StoreError::Query(sqlx())), R);
        assert_eq!(
            code(StoreError::Corrupt {
                key: s(),
                source: json(),
            }),
            R
        );
        assert_eq!(
            code(OutboxError::Open {
                path: path(),
                source: sqlx(),
            }),
            R
        );
        assert_eq!(code(OutboxError::Query(sqlx())), R);
        assert_eq!(
            code(OutboxError::Corrupt {
                id: 1,
                source: json(),
            }),
            R
        );
    }

    #[test]
    fn tracking_errors_are_runtime_failures() {
        let api = || TrackingError::Api {
            endpoint: s(),
            status: 400,
            code: s(),
            message: s(),
        };
        for err in [
            api(),
            TrackingError::RegistryUnavailable {
                endpoint: s(),
                status: 404,
            },
            TrackingError::Decode {
                endpoint: s(),
                status: 200,
                message: s(),
            },
            TrackingError::RetriesExhausted {
                attempts: 3,
                elapsed: std::time::Duration::from_secs(1),
                last: Box::new(api()),
            },
            TrackingError::Invalid(s()),
            TrackingError::Config(s()),
            TrackingError::Io {
                path: path(),
                source: io(),
            },
        ] {
            assert_eq!(code(err), R);
        }
        // Transport needs a reqwest error, which only a failed request makes.
        let transport = reqwest::Client::new()
            .get("http://[::1")
            .build()
            .unwrap_err();
        assert_eq!(
            code(TrackingError::Transport {
                endpoint: s(),
                source: transport,
            }),
            R
        );
    }

    #[test]
    fn registry_errors() {
        for err in [
            RegistryError::Open {
                path: path(),
                source: sqlx(),
            },
            RegistryError::Query(sqlx()),
            RegistryError::Corrupt {
                what: s(),
                source: json(),
            },
        ] {
            assert_eq!(code(err), R);
        }
        for err in [
            RegistryError::UnknownModel(s()),
            RegistryError::UnknownVersion {
                model: s(),
                version: 1,
            },
            RegistryError::NoAlias {
                model: s(),
                alias: s(),
            },
            RegistryError::NothingToRollBack {
                model: s(),
                alias: s(),
                current: 1,
            },
            RegistryError::AlreadyThere {
                model: s(),
                alias: s(),
                version: 1,
            },
            RegistryError::FileMissing {
                path: path(),
                source: io(),
            },
            RegistryError::ShaMismatch {
                path: path(),
                expected: s(),
                actual: s(),
            },
        ] {
            assert_eq!(code(err), B);
        }
    }

    #[test]
    fn holdout_errors_are_bad_input() {
        for err in [
            HoldoutError::NoDataSource { sha: s() },
            HoldoutError::Load(LoadError::Empty { path: path() }),
            HoldoutError::Changed {
                source_name: s(),
                expected: s(),
                actual: s(),
            },
        ] {
            assert_eq!(code(err), B);
        }
    }

    fn storage_errors() -> Vec<(StorageError, u8)> {
        vec![
            (
                StorageError::InvalidUrl {
                    url: s(),
                    message: s(),
                },
                B,
            ),
            (
                StorageError::NoBucket {
                    bucket: s(),
                    op: "GET",
                    url: s(),
                    status: 404,
                },
                B,
            ),
            (StorageError::NotFound { url: s() }, B),
            (
                StorageError::Denied {
                    op: "GET",
                    url: s(),
                    answer: s(),
                },
                R,
            ),
            (
                StorageError::Status {
                    op: "GET",
                    url: s(),
                    answer: s(),
                },
                R,
            ),
            (
                StorageError::Transport {
                    op: "GET",
                    url: s(),
                    detail: s(),
                },
                R,
            ),
            (
                StorageError::Io {
                    op: "reading",
                    path: path(),
                    source: io(),
                },
                R,
            ),
        ]
    }

    fn pointer_error() -> PointerError {
        PointerError {
            location: s(),
            message: s(),
        }
    }

    #[test]
    fn storage_errors_bad_urls_and_missing_objects_are_bad_input() {
        for (err, expected) in storage_errors() {
            assert_eq!(code(err), expected);
        }
        assert_eq!(code(pointer_error()), R);
    }

    #[test]
    fn serve_source_errors_are_bad_input_except_the_stores_server() {
        for (err, expected) in storage_errors() {
            assert_eq!(code(SourceError::Store(err)), expected);
        }
        for err in [
            SourceError::Read {
                path: path(),
                source: io(),
            },
            SourceError::Pointer(pointer_error()),
            SourceError::Checksum {
                location: s(),
                expected: s(),
                actual: s(),
            },
            SourceError::ModelFile(ModelFileError::Write {
                path: path(),
                source: io(),
            }),
            SourceError::Inconsistent {
                path: path(),
                message: s(),
            },
            SourceError::Unsupported(s()),
        ] {
            assert_eq!(code(err), B);
        }
    }

    #[test]
    fn predict_errors_take_their_causes_code() {
        use crate::serve::batch::PredictError;
        for err in [
            PredictError::ModelFile(ModelFileError::Read {
                path: path(),
                source: io(),
            }),
            PredictError::Load(LoadError::Empty { path: path() }),
            PredictError::Schema {
                model: path(),
                source: invalid_data(),
            },
            PredictError::Model(ModelError::FeatureCount {
                expected: 1,
                got: 2,
            }),
        ] {
            assert_eq!(code(err), B);
        }
        for err in [
            PredictError::Model(ModelError::SingleClass { class: 1 }),
            PredictError::Frame(polars::error::PolarsError::ComputeError("x".into())),
            PredictError::Write {
                path: path(),
                source: io(),
            },
        ] {
            assert_eq!(code(err), R);
        }
    }

    #[test]
    fn serve_errors_take_the_model_sources_and_the_logs_code() {
        use crate::serve::ServeError;
        let load = |source| ServeError::Load { model: s(), source };
        assert_eq!(code(load(SourceError::Unsupported(s()))), B);
        assert_eq!(
            code(load(SourceError::Store(StorageError::Transport {
                op: "GET",
                url: s(),
                detail: s(),
            }))),
            R
        );
        assert_eq!(
            code(ServeError::PredictionLog(PredictionLogError::Uri {
                uri: s(),
                message: s(),
            })),
            B
        );
        assert_eq!(
            code(ServeError::PredictionLog(PredictionLogError::Client {
                target: s(),
                message: s(),
            })),
            R
        );
        for err in [
            ServeError::Bind {
                address: "127.0.0.1:1".parse().unwrap(),
                source: io(),
            },
            ServeError::Address(io()),
            ServeError::Announce(io()),
            ServeError::Serve(io()),
        ] {
            assert_eq!(code(err), R);
        }
    }

    #[test]
    fn serve_request_and_prediction_log_errors() {
        let detail = InputErrorDetail {
            error: "bad_input",
            message: s(),
            column: None,
            row: None,
            line: None,
            problems: 1,
            issues: Vec::new(),
        };
        assert_eq!(code(InputError(Box::new(detail))), B);
        assert_eq!(
            code(PredictionLogError::Uri {
                uri: s(),
                message: s(),
            }),
            B
        );
        assert_eq!(
            code(PredictionLogError::Client {
                target: s(),
                message: s(),
            }),
            R
        );
    }

    #[test]
    fn mongo_errors_are_bad_input_except_the_server() {
        assert_eq!(
            code(MongoError::Server {
                operation: "find",
                target: s(),
                message: s(),
            }),
            R
        );
        for err in [
            MongoError::Uri {
                uri: s(),
                message: s(),
            },
            MongoError::Document {
                target: s(),
                id: s(),
                field: s(),
                problem: s(),
            },
            MongoError::Query(s()),
        ] {
            assert_eq!(code(err), B);
        }
    }

    #[test]
    fn a_held_run_lock_is_a_runtime_failure() {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::state::StateDir::new(dir.path());
        let _held = state.lock("retrain").unwrap();
        let err = state.lock("retrain").unwrap_err();
        assert_eq!(code(err), R);
        assert_eq!(
            code(crate::state::LockError::Io {
                path: path(),
                source: io(),
            }),
            R
        );
    }

    #[test]
    fn the_first_typed_error_in_the_chain_decides() {
        // A bad-input cause under a typed runtime failure: the outer one was chosen by
        // the code that knew more.
        let err = anyhow::Error::new(HoldoutError::Load(LoadError::Io {
            path: path(),
            source: io(),
        }));
        assert_eq!(exit_code(&err), B);
        let err = anyhow::Error::new(UsageError(s())).context(StoreError::Query(sqlx()));
        assert_eq!(
            exit_code(&err),
            B,
            "a context is not a typed error of the chain"
        );
    }
}
