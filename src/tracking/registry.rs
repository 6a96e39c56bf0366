//! MLflow's model registry: registered models, their versions, tags and aliases.
//!
//! A server without the registry (DagsHub's older MLflow) answers registry calls with a
//! 404 that carries no MLflow error code (an HTML page), or 501; that surfaces as
//! [`TrackingError::RegistryUnavailable`] so callers can warn and go on.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::{MlflowClient, Payload};
use super::error::{Result, TrackingError};
use super::features::endpoint_missing;
use super::types::{ModelVersion, RegisteredModel, Tag};
use crate::shared::guard::Guard;

/// Where a new model version's files are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionSource<'a> {
    /// `models:/<model_id>` or `runs:/<run_id>/<artifact path>`.
    pub uri: &'a str,
    /// The run that produced the model.
    pub run_id: &'a str,
    /// The logged model, when the source is one.
    pub model_id: Option<&'a str>,
}

#[derive(Deserialize)]
struct VersionEnvelope {
    model_version: ModelVersion,
}

#[derive(Deserialize)]
struct ModelEnvelope {
    registered_model: RegisteredModel,
}

/// Reclassifies "this endpoint does not exist" answers of registry calls (looking
/// through retries, since 501 is a 5xx and so retried first).
fn registry_error(err: TrackingError) -> TrackingError {
    let missing = match err.root() {
        TrackingError::Api {
            endpoint, status, ..
        } if endpoint_missing(&err) => Some((endpoint.clone(), *status)),
        _ => None,
    };
    match missing {
        Some((endpoint, status)) => TrackingError::RegistryUnavailable { endpoint, status },
        None => err,
    }
}

/// Refuses a value that would break out of a quoted search-filter string.
fn quotable(what: &str, value: &str) -> Result<()> {
    if value.contains(['\'', '`', '\\']) {
        return Err(TrackingError::Invalid(format!(
            "{what} {value:?} may not contain quotes or backslashes"
        )));
    }
    Ok(())
}

impl MlflowClient {
    async fn registry_call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        payload: Payload,
    ) -> Result<T> {
        self.call(method, path, query, payload)
            .await
            .map_err(registry_error)
    }

    /// Creates a registered model; returns `false` if it existed already (not an error).
    pub async fn create_registered_model(&self, name: &str) -> Result<bool> {
        let body = Payload::json(&json!({ "name": name }))?;
        let created: Result<serde_json::Value> = self
            .registry_call(Method::POST, "registered-models/create", &[], body)
            .await;
        match created {
            Ok(_) => Ok(true),
            Err(e) if e.is_already_exists() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A registered model with its tags and aliases.
    pub async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let got: ModelEnvelope = self
            .registry_call(
                Method::GET,
                "registered-models/get",
                &[("name", name)],
                Payload::Empty,
            )
            .await?;
        Ok(got.registered_model)
    }

    /// Sets (or overwrites) a tag of a registered model.
    pub async fn set_registered_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()> {
        let body = Payload::json(&json!({ "name": name, "key": key, "value": value }))?;
        self.registry_call::<serde_json::Value>(
            Method::POST,
            "registered-models/set-tag",
            &[],
            body,
        )
        .await
        .map(drop)
    }

    /// Versions of model `name` carrying tag `key` = `value` (first page, up to 100).
    pub async fn find_model_versions_by_tag(
        &self,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<Vec<ModelVersion>> {
        #[derive(Deserialize)]
        struct Found {
            #[serde(default)]
            model_versions: Vec<ModelVersion>,
        }
        quotable("model name", name)?;
        quotable("tag key", key)?;
        quotable("tag value", value)?;
        let filter = format!("name = '{name}' and tags.`{key}` = '{value}'");
        let found: Found = self
            .registry_call(
                Method::GET,
                "model-versions/search",
                &[("filter", &filter), ("max_results", "100")],
                Payload::Empty,
            )
            .await?;
        Ok(found.model_versions)
    }

    /// Registers `source` of run `run_id` as a new version of model `name`, with `tags`:
    /// a logged model (`models:/<model_id>`, with `model_id`) or a run artifact
    /// (`runs:/<run_id>/model/<sha256>.json`). Not idempotent by itself and never retried:
    /// see [`MlflowClient::create_model_version_once`].
    pub async fn create_model_version(
        &self,
        name: &str,
        source: &VersionSource<'_>,
        tags: &[Tag],
    ) -> Result<ModelVersion> {
        let mut body = json!({
            "name": name,
            "source": source.uri,
            "run_id": source.run_id,
            "tags": tags,
        });
        if let Some(model_id) = source.model_id {
            body["model_id"] = json!(model_id);
        }
        let created: VersionEnvelope = self
            .clone()
            .with_retry(super::retry::RetryPolicy::never())
            .registry_call(
                Method::POST,
                "model-versions/create",
                &[],
                Payload::json(&body)?,
            )
            .await?;
        Ok(created.model_version)
    }

    /// The version of model `name` tagged `key` = `value` (the lowest if several), created
    /// from `source` of run `run_id` with `tags` when there is none. Every retry looks it
    /// up again first, so an answer lost after the server created the version does not
    /// make a second one.
    pub async fn create_model_version_once(
        &self,
        name: &str,
        (key, value): (&str, &str),
        source: &VersionSource<'_>,
        tags: &[Tag],
    ) -> Result<ModelVersion> {
        self.create_once(
            "POST model-versions/create",
            Guard::RegistryOnce,
            |once| async move {
                let found = once.find_model_versions_by_tag(name, key, value).await?;
                Ok(found
                    .into_iter()
                    .min_by_key(|v| v.version.parse::<u64>().unwrap_or(u64::MAX)))
            },
            |once| async move { once.create_model_version(name, source, tags).await },
        )
        .await
    }

    /// Points alias `alias` of model `name` at `version` (moving it if it pointed elsewhere).
    pub async fn set_alias(&self, name: &str, alias: &str, version: &str) -> Result<()> {
        let body = Payload::json(&json!({ "name": name, "alias": alias, "version": version }))?;
        self.registry_call::<serde_json::Value>(Method::POST, "registered-models/alias", &[], body)
            .await
            .map(drop)
    }

    /// The version alias `alias` of model `name` points at, or `None` if the model has no
    /// such alias. (The server answers an unknown alias with 400 `INVALID_PARAMETER_VALUE`,
    /// not 404; an unknown model stays an error.)
    pub async fn get_alias(&self, name: &str, alias: &str) -> Result<Option<ModelVersion>> {
        let got: Result<VersionEnvelope> = self
            .registry_call(
                Method::GET,
                "registered-models/alias",
                &[("name", name), ("alias", alias)],
                Payload::Empty,
            )
            .await;
        match got {
            Ok(v) => Ok(Some(v.model_version)),
            Err(e)
                if e.status() == Some(400) && e.api_code() == Some("INVALID_PARAMETER_VALUE") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> TrackingError {
        TrackingError::Api {
            endpoint: "POST registered-models/create".into(),
            status,
            code: code.into(),
            message: String::new(),
        }
    }

    #[test]
    fn a_missing_endpoint_is_a_missing_registry_but_a_missing_model_is_not() {
        assert!(matches!(
            registry_error(api(404, "HTTP_404")),
            TrackingError::RegistryUnavailable { status: 404, .. }
        ));
        let retried = TrackingError::RetriesExhausted {
            attempts: 2,
            elapsed: std::time::Duration::from_secs(1),
            last: Box::new(api(501, "HTTP_501")),
        };
        assert!(matches!(
            registry_error(retried),
            TrackingError::RegistryUnavailable { status: 501, .. }
        ));
        assert!(registry_error(api(404, "RESOURCE_DOES_NOT_EXIST")).is_not_found());
        assert!(quotable("x", "a'b").is_err());
    }
}
