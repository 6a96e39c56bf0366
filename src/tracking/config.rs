//! Where the tracking server is and how to authenticate, read from the same environment
//! variables MLflow's own client reads.

use std::time::Duration;

use super::error::{Result, TrackingError};
use super::retry::RetryPolicy;

/// A credential: the crate's one redacting wrapper.
pub type Secret = crate::secret::Secret<String>;

/// How requests authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No `Authorization` header (a local server).
    #[default]
    None,
    /// HTTP Basic, e.g. DagsHub with user name and access token.
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: Secret,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
}

/// Everything [`MlflowClient`](super::MlflowClient) needs to know.
#[derive(Debug, Clone)]
pub struct TrackingConfig {
    /// Server root, `http(s)://host[:port][/prefix]`, without a trailing slash and without
    /// credentials (those live in `auth`).
    pub base_url: String,
    /// Authentication.
    pub auth: Auth,
    /// Retry behaviour for every request.
    pub retry: RetryPolicy,
    /// Timeout of one attempt (connect + request + response).
    pub request_timeout: Duration,
    /// Timeout of establishing a connection.
    pub connect_timeout: Duration,
}

impl TrackingConfig {
    /// A configuration for `base_url` with no authentication and default timeouts.
    ///
    /// Credentials embedded in the URL (`https://user:pass@host`) are moved to Basic auth
    /// so they never reach a log line or an error message.
    pub fn new(base_url: &str) -> Result<Self> {
        let (base_url, auth) = parse_base_url(base_url)?;
        Ok(TrackingConfig {
            base_url,
            auth,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
        })
    }

    /// Reads `MLFLOW_TRACKING_URI` (required, http or https), `MLFLOW_TRACKING_USERNAME` +
    /// `MLFLOW_TRACKING_PASSWORD` (Basic) or `MLFLOW_TRACKING_TOKEN` (Bearer), and MLflow's
    /// `MLFLOW_HTTP_REQUEST_MAX_RETRIES` and `MLFLOW_HTTP_REQUEST_TIMEOUT` (seconds).
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`TrackingConfig::from_env`] but reading variables through `get`, so tests need
    /// not mutate the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let uri = get("MLFLOW_TRACKING_URI")
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| TrackingError::Config("MLFLOW_TRACKING_URI is not set".into()))?;
        let mut config = TrackingConfig::new(uri.trim())?;
        let username = get("MLFLOW_TRACKING_USERNAME").filter(|v| !v.is_empty());
        let password = get("MLFLOW_TRACKING_PASSWORD").filter(|v| !v.is_empty());
        let token = get("MLFLOW_TRACKING_TOKEN").filter(|v| !v.is_empty());
        match (username, password, token) {
            (Some(username), Some(password), _) => {
                config.auth = Auth::Basic {
                    username,
                    password: Secret::from(password),
                }
            }
            (None, None, Some(token)) => config.auth = Auth::Bearer(Secret::from(token)),
            (Some(_), None, None) | (None, Some(_), None) => {
                return Err(TrackingError::Config(
                    "set both MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or neither"
                        .into(),
                ));
            }
            (Some(_), None, Some(token)) | (None, Some(_), Some(token)) => {
                config.auth = Auth::Bearer(Secret::from(token))
            }
            (None, None, None) => {}
        }
        if let Some(retries) = get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") {
            let retries: u32 = retries.trim().parse().map_err(|_| {
                TrackingError::Config(format!(
                    "MLFLOW_HTTP_REQUEST_MAX_RETRIES={retries:?} is not a count"
                ))
            })?;
            config.retry.max_attempts = retries + 1;
        }
        if let Some(secs) = get("MLFLOW_HTTP_REQUEST_TIMEOUT") {
            let secs: u64 = secs.trim().parse().map_err(|_| {
                TrackingError::Config(format!(
                    "MLFLOW_HTTP_REQUEST_TIMEOUT={secs:?} is not whole seconds"
                ))
            })?;
            config.request_timeout = Duration::from_secs(secs.max(1));
        }
        Ok(config)
    }
}

/// Splits `http(s)://[user:pass@]host...` into a clean base URL and optional Basic auth.
/// Error messages name the scheme only, since the URI may hold a password.
fn parse_base_url(raw: &str) -> Result<(String, Auth)> {
    let mut url = reqwest::Url::parse(raw).map_err(|e| {
        TrackingError::Config(format!("MLFLOW_TRACKING_URI is not a valid URL ({e})"))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TrackingError::Config(format!(
            "MLFLOW_TRACKING_URI must be an http(s) server, not a `{}:` URI",
            url.scheme()
        )));
    }
    let auth = match url.password() {
        Some(password) => Auth::Basic {
            username: percent_encoding::percent_decode_str(url.username())
                .decode_utf8_lossy()
                .into_owned(),
            password: Secret::new(
                percent_encoding::percent_decode_str(password)
                    .decode_utf8_lossy()
                    .into_owned(),
            ),
        },
        None => Auth::None,
    };
    // Both setters only fail for URLs without a host, which http(s) URLs always have.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    Ok((url.as_str().trim_end_matches('/').to_string(), auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn reads_basic_and_bearer_auth() {
        let c = TrackingConfig::from_lookup(lookup(&[
            ("MLFLOW_TRACKING_URI", "https://dagshub.com/o/r.mlflow/"),
            ("MLFLOW_TRACKING_USERNAME", "o"),
            ("MLFLOW_TRACKING_PASSWORD", "tok-123"),
        ]))
        .unwrap();
        assert_eq!(c.base_url, "https://dagshub.com/o/r.mlflow");
        assert!(matches!(c.auth, Auth::Basic { ref username, .. } if username == "o"));
        let c = TrackingConfig::from_lookup(lookup(&[
            ("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"),
            ("MLFLOW_TRACKING_TOKEN", "tok-456"),
            ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"),
        ]))
        .unwrap();
        assert_eq!(c.auth, Auth::Bearer(Secret::from("tok-456")));
        assert_eq!(c.retry.max_attempts, 3);
        assert!(!format!("{c:?}").contains("tok-456"));
    }

    #[test]
    fn moves_url_credentials_out_and_rejects_other_schemes() {
        let c = TrackingConfig::new("https://me:s3cr%40t@example.com/mlflow").unwrap();
        assert_eq!(c.base_url, "https://example.com/mlflow");
        assert_eq!(
            c.auth,
            Auth::Basic {
                username: "me".into(),
                password: Secret::from("s3cr@t")
            }
        );
        assert!(!format!("{c:?}").contains("s3cr"));
        let err = TrackingConfig::new("file:///tmp/mlruns").unwrap_err();
        assert!(err.to_string().contains("`file:`"), "{err}");
        let err = TrackingConfig::from_lookup(|_| None).unwrap_err();
        assert!(err.to_string().contains("MLFLOW_TRACKING_URI"), "{err}");
    }
}
