//! The `s3://` store: a bucket and a key prefix on AWS S3 or an S3-compatible server
//! (MinIO, SeaweedFS, moto, ...).
//!
//! Credentials, region and retries come from the standard AWS chain (`AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, `AWS_REGION`, `AWS_MAX_ATTEMPTS`, ...); the region
//! falls back to `us-east-1`. With a custom endpoint (`--endpoint-url`, `AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_S3` or a profile's `endpoint_url`) requests use path-style addressing
//! and checksums only where the S3 API requires them: S3-compatible servers know neither
//! virtual-hosted buckets nor the newer default CRC checksums, and uploads fail without this.
//!
//! Objects above [`MULTIPART_THRESHOLD`] are uploaded in parts; a failed part aborts the
//! upload, so no incomplete object becomes visible and no parts are left behind.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use sha2::{Digest, Sha256};

use super::url::join_key;
use super::{ObjectInfo, ObjectStore, StorageError};
use crate::shared::hash::hex;

/// Objects larger than this are uploaded in parts of this size.
pub const MULTIPART_THRESHOLD: usize = 8 * 1024 * 1024;
/// The user metadata key holding an object's sha256 (`x-amz-meta-sha256`).
const SHA256_META: &str = "sha256";

/// How to reach S3 besides the standard AWS configuration chain.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// An S3-compatible endpoint (e.g. `http://127.0.0.1:9000`); `None`: AWS, or what
    /// `AWS_ENDPOINT_URL` / the profile say.
    pub endpoint_url: Option<String>,
}

impl S3Options {
    /// Checks what can be checked without a server: the endpoint URL's scheme.
    pub fn check(&self) -> Result<(), StorageError> {
        match &self.endpoint_url {
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                Err(StorageError::InvalidUrl {
                    url: url.clone(),
                    message: "an endpoint URL starts with http:// or https://".into(),
                })
            }
            _ => Ok(()),
        }
    }
}

/// A bucket and key prefix.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Store {
    /// Loads the AWS configuration and builds a client for `bucket`, keys below `prefix`.
    pub async fn connect(
        bucket: &str,
        prefix: &str,
        options: &S3Options,
    ) -> Result<S3Store, StorageError> {
        let region = RegionProviderChain::default_provider().or_else(Region::new("us-east-1"));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .read_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(url) = &options.endpoint_url {
            options.check()?;
            loader = loader.endpoint_url(url);
        }
        let shared = loader.load().await;
        let custom_endpoint = shared.endpoint_url().is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|v| !v.is_empty());
        let mut config = aws_sdk_s3::config::Builder::from(&shared);
        if custom_endpoint {
            config = config
                .force_path_style(true)
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        Ok(S3Store {
            client: Client::from_conf(config.build()),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The same bucket, keys below `prefix/key`.
    pub fn scoped(&self, key: &str) -> S3Store {
        S3Store {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            prefix: join_key(&self.prefix, key),
        }
    }

    fn key(&self, key: &str) -> String {
        join_key(&self.prefix, key)
    }

    /// Turns an SDK error into one that names the operation, the object and the answer.
    fn failure<E>(&self, op: &'static str, key: &str, err: SdkError<E>) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let url = self.url(key);
        let Some(status) = err.raw_response().map(|r| r.status().as_u16()) else {
            return StorageError::Transport {
                op,
                url,
                detail: causes(&err),
            };
        };
        let code = err.code().unwrap_or_default().to_owned();
        let mut answer = format!("HTTP {status}");
        if !code.is_empty() {
            answer = format!("{answer} {code}");
        }
        if let Some(message) = err.message().filter(|m| !m.is_empty()) {
            answer = format!("{answer}: {message}");
        }
        match (status, code.as_str()) {
            (_, "NoSuchBucket") => StorageError::NoBucket {
                bucket: self.bucket.clone(),
                op,
                url,
                status,
            },
            (401 | 403, _)
            | (_, "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied") => {
                StorageError::Denied { op, url, answer }
            }
            _ => StorageError::Status { op, url, answer },
        }
    }

    async fn put_multipart(
        &self,
        key: &str,
        bytes: &[u8],
        sha256: &str,
    ) -> Result<(), StorageError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(self.key(key))
            .content_type("application/json")
            .metadata(SHA256_META, sha256)
            .send()
            .await
            .map_err(|e| self.failure("POST (create multipart upload)", key, e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let uploaded = self.upload_parts(key, bytes, &upload_id).await;
        if uploaded.is_err() {
            let aborted = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(self.key(key))
                .upload_id(&upload_id)
                .send()
                .await;
            if let Err(e) = aborted {
                tracing::warn!(
                    url = %self.url(key),
                    error = %causes(&e),
                    "could not abort the failed multipart upload; the bucket's lifecycle rules \
                     must remove its parts"
                );
            }
        }
        uploaded
    }

    async fn upload_parts(
        &self,
        key: &str,
        bytes: &[u8],
        upload_id: &str,
    ) -> Result<(), StorageError> {
        let mut parts = Vec::new();
        for (i, chunk) in bytes.chunks(MULTIPART_THRESHOLD).enumerate() {
            let number = i32::try_from(i + 1).unwrap_or(i32::MAX);
            let part = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(self.key(key))
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| self.failure("PUT (upload part)", key, e))?;
            tracing::debug!(url = %self.url(key), part = number, bytes = chunk.len(), "uploaded part");
            parts.push(
                CompletedPart::builder()
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .part_number(number)
                    .build(),
            );
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(self.key(key))
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.failure("POST (complete multipart upload)", key, e))?;
        Ok(())
    }
}

/// An error and its causes on one line (`dispatch failure: io error: ... refused`); the
/// SDK's own rendering appends Debug output that helps no user.
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

impl ObjectStore for S3Store {
    fn url(&self, key: &str) -> String {
        let key = self.key(key);
        if key.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{key}", self.bucket)
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        let answer = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await;
        match answer {
            Ok(out) => Ok(Some(ObjectInfo {
                size: out
                    .content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
                sha256: out
                    .metadata()
                    .and_then(|m| m.get(SHA256_META))
                    .map(|s| s.to_ascii_lowercase()),
            })),
            // A HEAD answer has no body, so a missing bucket looks like a missing key here;
            // the PUT that follows names it.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(self.failure("HEAD", key, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let answer = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await;
        let out = match answer {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.failure("GET", key, e)),
        };
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StorageError::Transport {
                op: "GET",
                url: self.url(key),
                detail: causes(&e),
            })?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let sha256 = hex(&Sha256::digest(bytes));
        if bytes.len() > MULTIPART_THRESHOLD {
            return self.put_multipart(key, bytes, &sha256).await;
        }
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .content_type("application/json")
            .metadata(SHA256_META, &sha256)
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .map_err(|e| self.failure("PUT", key, e))?;
        Ok(())
    }
}
