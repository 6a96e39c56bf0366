//! Store URLs: `file://DIR` (a directory) or `s3://BUCKET[/PREFIX]` (a bucket and a key
//! prefix). A store URL names a root; objects are addressed by keys relative to it.

use std::path::PathBuf;

use super::StorageError;

/// Where a store's root is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A local directory.
    File(PathBuf),
    /// A bucket and a key prefix (no leading or trailing `/`; empty for the bucket's root).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
}

impl StoreUrl {
    /// Parses `file://DIR` or `s3://BUCKET[/PREFIX]`.
    pub fn parse(text: &str) -> Result<StoreUrl, StorageError> {
        let invalid = |message: &str| StorageError::InvalidUrl {
            url: text.to_owned(),
            message: message.to_owned(),
        };
        if let Some(dir) = text.strip_prefix("file://") {
            if dir.is_empty() {
                return Err(invalid("no directory"));
            }
            return Ok(StoreUrl::File(PathBuf::from(dir)));
        }
        let Some(rest) = text.strip_prefix("s3://") else {
            return Err(invalid("unknown scheme"));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // The S3 naming rules, in short: 3-63 lower-case letters, digits, dots and hyphens.
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !valid_bucket {
            return Err(invalid(
                "a bucket name has 3-63 lower-case letters, digits, dots or hyphens",
            ));
        }
        Ok(StoreUrl::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    /// The URL of `key` below this root (`key` empty: the root itself).
    pub fn join(&self, key: &str) -> StoreUrl {
        match self {
            StoreUrl::File(dir) if key.is_empty() => StoreUrl::File(dir.clone()),
            StoreUrl::File(dir) => StoreUrl::File(dir.join(key)),
            StoreUrl::S3 { bucket, prefix } => StoreUrl::S3 {
                bucket: bucket.clone(),
                prefix: join_key(prefix, key),
            },
        }
    }
}

/// `prefix/key`, without a leading `/` when the prefix is empty.
pub fn join_key(prefix: &str, key: &str) -> String {
    match (prefix.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}/{key}"),
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::File(dir) => write!(f, "file://{}", dir.display()),
            StoreUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StoreUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_joins() {
        let url = StoreUrl::parse("s3://models-bucket/prod/").unwrap();
        assert_eq!(
            url,
            StoreUrl::S3 {
                bucket: "models-bucket".into(),
                prefix: "prod".into()
            }
        );
        assert_eq!(
            url.join("phish").join("current.json").to_string(),
            "s3://models-bucket/prod/phish/current.json"
        );
        let root = StoreUrl::parse("s3://models-bucket").unwrap();
        assert_eq!(root.join("phish").to_string(), "s3://models-bucket/phish");
        assert_eq!(
            StoreUrl::parse("file:///srv/models").unwrap().join("phish"),
            StoreUrl::File(PathBuf::from("/srv/models/phish"))
        );
    }

    #[test]
    fn refuses_what_cannot_be_a_store() {
        for bad in [
            "s3://",
            "s3://b2/x",
            "s3://Upper/x",
            "http://host/x",
            "file://",
            "dir",
        ] {
            let err = StoreUrl::parse(bad).unwrap_err();
            assert!(err.is_bad_input(), "{bad}: {err}");
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
