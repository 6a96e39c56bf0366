//! Artifacts through the server's artifact proxy (`mlflow-artifacts:` URIs).

use std::path::Path;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use reqwest::Method;
use serde::Deserialize;

use super::client::{MlflowClient, Payload};
use super::error::{Result, TrackingError};
use super::types::{FileInfo, RunInfo};

/// Characters escaped inside one path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'\\');

impl MlflowClient {
    /// Uploads `bytes` as artifact `artifact_path` (may contain `/`) of `run`.
    /// A PUT of the same bytes to the same path is idempotent.
    pub async fn upload_artifact(
        &self,
        run: &RunInfo,
        artifact_path: &str,
        bytes: Vec<u8>,
    ) -> Result<()> {
        self.upload_under(&run.artifact_uri, artifact_path, bytes)
            .await
            .map_err(|e| in_run(e, &run.run_id))
    }

    /// Uploads `bytes` as `artifact_path` under the artifact root `root_uri` (a run's or a
    /// logged model's `mlflow-artifacts:` URI). A PUT of the same bytes is idempotent.
    pub async fn upload_under(
        &self,
        root_uri: &str,
        artifact_path: &str,
        bytes: Vec<u8>,
    ) -> Result<()> {
        let (url, endpoint) = self.artifact_url(root_uri, artifact_path)?;
        self.send(Method::PUT, &url, &endpoint, &[], Payload::Bytes(bytes))
            .await
            .map(drop)
    }

    /// Uploads the local file `local` as artifact `artifact_path` of `run`.
    pub async fn upload_file(
        &self,
        run: &RunInfo,
        local: &Path,
        artifact_path: &str,
    ) -> Result<()> {
        let bytes = tokio::fs::read(local)
            .await
            .map_err(|source| TrackingError::Io {
                path: local.to_path_buf(),
                source,
            })?;
        self.upload_artifact(run, artifact_path, bytes).await
    }

    /// Downloads artifact `artifact_path` of `run`.
    pub async fn download_artifact(&self, run: &RunInfo, artifact_path: &str) -> Result<Vec<u8>> {
        let (url, endpoint) = self
            .artifact_url(&run.artifact_uri, artifact_path)
            .map_err(|e| in_run(e, &run.run_id))?;
        self.send(Method::GET, &url, &endpoint, &[], Payload::Empty)
            .await
    }

    /// Lists the artifact directory `path` of a run (`""` for the root).
    pub async fn list_artifacts(&self, run_id: &str, path: &str) -> Result<Vec<FileInfo>> {
        #[derive(Deserialize)]
        struct Listing {
            #[serde(default)]
            files: Vec<FileInfo>,
        }
        let mut query = vec![("run_id", run_id)];
        if !path.is_empty() {
            query.push(("path", path));
        }
        let listing: Listing = self
            .call(Method::GET, "artifacts/list", &query, Payload::Empty)
            .await?;
        Ok(listing.files)
    }

    /// The proxy URL of one artifact under an `mlflow-artifacts:` root URI.
    fn artifact_url(&self, root_uri: &str, artifact_path: &str) -> Result<(String, String)> {
        let root = root_uri.strip_prefix("mlflow-artifacts:").ok_or_else(|| {
            TrackingError::Invalid(format!(
                "artifacts at {root_uri:?} are not proxied by the server"
            ))
        })?;
        // `mlflow-artifacts://host:port/path` names a host; only the path matters here.
        let root = match root.strip_prefix("//") {
            Some(rest) => rest.find('/').map_or("", |i| &rest[i..]),
            None => root,
        };
        let segments: Vec<&str> = artifact_path.split('/').filter(|s| !s.is_empty()).collect();
        if segments.is_empty() || segments.iter().any(|s| *s == "." || *s == "..") {
            return Err(TrackingError::Invalid(format!(
                "bad artifact path {artifact_path:?}"
            )));
        }
        let mut path = root.trim_matches('/').to_string();
        for s in segments {
            path.push('/');
            path.extend(utf8_percent_encode(s, SEGMENT));
        }
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{path}",
            self.config().base_url
        );
        Ok((url, format!("mlflow-artifacts/artifacts/{path}")))
    }
}

/// Names the run in an error about its artifact root.
fn in_run(err: TrackingError, run_id: &str) -> TrackingError {
    match err {
        TrackingError::Invalid(message) => {
            TrackingError::Invalid(format!("run {run_id}: {message}"))
        }
        other => other,
    }
}
