//! MongoDB collections as a data source, through the official `mongodb` driver.
//!
//! Each pushed row becomes one document: the schema's columns with typed values, plus
//! `_row` (its 0-based position in the file) and an `_id` derived from the row's content
//! and position. Pushing the same file again therefore inserts nothing new (duplicate
//! `_id`s are counted, not errors), and reading sorts by `_row` so rows come back in file
//! order — which keeps the data fingerprint equal to the file's.

use std::time::Duration;

use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection};
use polars::prelude::*;
use sha2::{Digest, Sha256};

use crate::data::load::Table;
use crate::data::schema::{LabelType, Schema};
use crate::data::typed::{TypedTable, TypedValues};
use crate::secret::{REDACTED, Secret};
use crate::shared::hash::hex;

/// MongoDB's error code for a duplicate key.
const DUPLICATE_KEY: i32 = 11000;
/// How long to look for a server before giving up, so a wrong address fails in seconds.
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// A MongoDB problem, with credentials never included.
#[derive(Debug, thiserror::Error)]
pub enum MongoError {
    /// The URI does not parse.
    #[error("invalid MongoDB URI {uri}: {message}")]
    Uri {
        /// The URI without credentials.
        uri: String,
        /// What is wrong.
        message: String,
    },
    /// The server cannot be reached, refused the login, or failed an operation.
    #[error("MongoDB {operation} on {target} failed: {message}")]
    Server {
        /// What was being done (`ping`, `insert_many`, `find`).
        operation: &'static str,
        /// `host/db.collection` without credentials.
        target: String,
        /// The driver's message, passed through [`scrub`]: the driver's `redact-errors`
        /// feature only hides what servers say about sensitive commands, and its messages
        /// can quote the password or option values of the URI.
        message: String,
    },
    /// A document whose field does not fit the schema.
    #[error("{target}: document {id}: field `{field}` {problem}")]
    Document {
        /// `host/db.collection`.
        target: String,
        /// The document's `_id`.
        id: String,
        /// The field.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The query is not a JSON object.
    #[error("MongoDB query must be a JSON object: {0}")]
    Query(String),
}

impl MongoError {
    /// The process exit code: bad input (URI, query, documents), except a server failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            MongoError::Uri { .. } => crate::exit::BAD_INPUT,
            MongoError::Server { .. } => crate::exit::RUNTIME_FAILURE,
            MongoError::Document { .. } => crate::exit::BAD_INPUT,
            MongoError::Query(_) => crate::exit::BAD_INPUT,
        }
    }
}

impl MongoError {
    /// Whether the error is bad input (URI, query, documents) rather than a server failure.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, MongoError::Server { .. })
    }
}

/// A collection to read from or write to.
#[derive(Debug, Clone)]
pub struct MongoTarget {
    /// Connection string; may hold credentials, so `Debug` and `Display` never show it.
    pub uri: Secret<String>,
    /// Database name.
    pub db: String,
    /// Collection name.
    pub collection: String,
}

impl MongoTarget {
    /// `host/db.collection`, safe to print: user, password and options are left out.
    pub fn display(&self) -> String {
        display_target(self.uri.expose(), &self.db, &self.collection)
    }

    async fn collection(&self) -> Result<Collection<Document>, MongoError> {
        let uri = self.uri.expose();
        let options = client_options(uri, "netsec", SERVER_SELECTION_TIMEOUT)
            .await
            .map_err(|e| MongoError::Uri {
                uri: redacted_hosts(uri),
                message: scrub(&e.kind.to_string(), uri),
            })?;
        let client = Client::with_options(options).map_err(|e| self.server("connect", e))?;
        let db = client.database(&self.db);
        db.run_command(doc! { "ping": 1 })
            .await
            .map_err(|e| self.server("ping", e))?;
        Ok(db.collection(&self.collection))
    }

    fn server(&self, operation: &'static str, err: mongodb::error::Error) -> MongoError {
        MongoError::Server {
            operation,
            target: self.display(),
            message: scrub(&err.kind.to_string(), self.uri.expose()),
        }
    }
}

/// URI options kept in a recorded connection string: they say how to reach and log in to
/// the server but never hold a secret. Everything else is dropped, because options such as
/// `authMechanismProperties` (an AWS session token) or `tlsCertificateKeyFilePassword`
/// carry credentials, and an unknown option is assumed to. Compared case-insensitively, as
/// the driver does.
const HARMLESS_OPTIONS: &[&str] = &[
    "appName",
    "authMechanism",
    "authSource",
    "compressors",
    "connectTimeoutMS",
    "directConnection",
    "heartbeatFrequencyMS",
    "journal",
    "loadBalanced",
    "localThresholdMS",
    "maxIdleTimeMS",
    "maxPoolSize",
    "maxStalenessSeconds",
    "minPoolSize",
    "readConcernLevel",
    "readPreference",
    "readPreferenceTags",
    "replicaSet",
    "retryReads",
    "retryWrites",
    "serverSelectionTimeoutMS",
    "socketTimeoutMS",
    "srvMaxHosts",
    "srvServiceName",
    "ssl",
    "tls",
    "tlsAllowInvalidCertificates",
    "tlsAllowInvalidHostnames",
    "tlsCAFile",
    "tlsInsecure",
    "w",
    "waitQueueTimeoutMS",
    "wTimeoutMS",
    "zlibCompressionLevel",
];

/// Whether the URI option `name` is in [`HARMLESS_OPTIONS`].
fn harmless_option(name: &str) -> bool {
    HARMLESS_OPTIONS
        .iter()
        .any(|o| o.eq_ignore_ascii_case(name))
}

/// The connection string as written in a grid file, safe to store in model files (and so
/// in MLflow and the published store): scheme, hosts, database and `${VAR}` references stay
/// as written, options outside [`HARMLESS_OPTIONS`] are dropped, and a password written in
/// literally is removed with its user (`mongodb://me:pw@host/db` → `mongodb://host/db`). A
/// password given as a reference keeps its user (`mongodb://netsec:${PASSWORD}@host`),
/// since neither is a secret; a user alone is kept only as a reference (with `MONGODB-AWS`
/// or X.509 it may be a key).
pub fn credential_free(written: &str) -> String {
    let Some((scheme, rest)) = written.split_once("://") else {
        return written.to_owned();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => {
            let safe = match rest[..at].split_once(':') {
                Some((_, password)) => only_references(password),
                None => only_references(&rest[..at]),
            };
            if safe { rest } else { &rest[at + 1..] }
        }
        None => rest,
    };
    let kept: Vec<&str> = query
        .unwrap_or("")
        .split(['&', ';'])
        .filter(|option| {
            let name = option.split_once('=').map_or(*option, |(name, _)| name);
            !option.is_empty() && harmless_option(name)
        })
        .collect();
    if kept.is_empty() {
        format!("{scheme}://{rest}")
    } else {
        format!("{scheme}://{rest}?{}", kept.join("&"))
    }
}

/// Whether `text` is made only of `${VAR}` references and `:`.
fn only_references(text: &str) -> bool {
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(':');
        if rest.is_empty() {
            return true;
        }
        let Some(after) = rest.strip_prefix("${") else {
            return false;
        };
        let Some(end) = after.find('}') else {
            return false;
        };
        rest = &after[end + 1..];
    }
}

/// `message` (a driver error about `uri`) with every credential of `uri` replaced by
/// `<redacted>`: the user name and password, and the values of options outside
/// [`HARMLESS_OPTIONS`], both as written and percent-decoded. The driver quotes them in
/// some errors ("invalid mechanism string: …") and redacts none of them.
pub fn scrub(message: &str, uri: &str) -> String {
    let Some((_, rest)) = uri.split_once("://") else {
        // Not a URI the driver parses; it is never quoted whole, but make sure.
        return message.replace(uri, REDACTED);
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let mut secrets: Vec<&str> = Vec::new();
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        secrets.extend(userinfo.split(':'));
    }
    for option in query.split(['&', ';']) {
        if let Some((name, value)) = option.split_once('=')
            && !harmless_option(name)
        {
            secrets.push(value);
            // Values like `AWS_SESSION_TOKEN:secret` are quoted in parts, too.
            secrets.extend(value.split([':', ',']));
        }
    }
    let mut secrets: Vec<String> = secrets
        .into_iter()
        .filter(|s| !s.is_empty())
        .flat_map(|s| [s.to_owned(), percent_decoded(s)])
        .collect();
    // Longest first, so that a part never leaves the rest of a longer value behind.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.iter().fold(message.to_owned(), |text, secret| {
        text.replace(secret.as_str(), REDACTED)
    })
}

/// `%XX` escapes decoded (invalid ones kept as written).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `mongodb://host:port/db.collection` for a connection string, safe to print.
pub fn display_target(uri: &str, db: &str, collection: &str) -> String {
    format!("{}/{db}.{collection}", redacted_hosts(uri))
}

/// Connection options parsed from `uri`, with a bounded wait for a server (`timeout`,
/// unless the URI sets its own) and the application name servers log.
pub async fn client_options(
    uri: &str,
    app_name: &str,
    timeout: Duration,
) -> Result<ClientOptions, mongodb::error::Error> {
    let mut options = ClientOptions::parse(uri).await?;
    options.server_selection_timeout.get_or_insert(timeout);
    options.connect_timeout.get_or_insert(timeout);
    options.app_name = Some(app_name.into());
    Ok(options)
}

/// `mongodb://user:pw@host:1/?x` → `mongodb://host:1`: a URI safe to print.
pub fn redacted_hosts(uri: &str) -> String {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("mongodb", uri));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, hosts)| hosts);
    let hosts = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{hosts}")
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PushReport {
    /// Documents written now.
    pub inserted: u64,
    /// Rows already in the collection (same content and position).
    pub already_present: u64,
}

/// Writes every row of a typed table (which must have no issues) into the collection in
/// unordered batches; `progress` is called with the rows done so far.
pub async fn push(
    target: &MongoTarget,
    schema: &Schema,
    typed: &TypedTable,
    batch_size: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<PushReport, MongoError> {
    let collection = target.collection().await?;
    let mut report = PushReport {
        inserted: 0,
        already_present: 0,
    };
    let rows: Vec<usize> = (0..typed.rows).collect();
    for chunk in rows.chunks(batch_size.max(1)) {
        let docs: Vec<Document> = chunk
            .iter()
            .map(|&r| row_document(schema, typed, r))
            .collect();
        let result = collection.insert_many(&docs).ordered(false).await;
        match result {
            Ok(done) => report.inserted += done.inserted_ids.len() as u64,
            Err(err) => {
                let (duplicates, other) = match &*err.kind {
                    ErrorKind::InsertMany(failure) => {
                        let errors = failure.write_errors.as_deref().unwrap_or_default();
                        let dup = errors.iter().filter(|e| e.code == DUPLICATE_KEY).count();
                        (
                            dup,
                            errors.len() - dup + usize::from(failure.write_concern_error.is_some()),
                        )
                    }
                    ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == DUPLICATE_KEY => {
                        (1, 0)
                    }
                    _ => (0, 1),
                };
                if other > 0 {
                    return Err(target.server("insert_many", err));
                }
                report.already_present += duplicates as u64;
                report.inserted += (chunk.len() - duplicates) as u64;
            }
        }
        progress(chunk.last().map_or(0, |r| r + 1));
    }
    Ok(report)
}

fn row_document(schema: &Schema, typed: &TypedTable, row: usize) -> Document {
    let mut document = Document::new();
    let mut hasher = Sha256::new();
    hasher.update(row.to_le_bytes());
    for (spec, values) in &typed.columns {
        let value = bson_of(values, row);
        hasher.update(spec.name.as_bytes());
        hasher.update(value.to_string().as_bytes());
        document.insert(spec.name.clone(), value);
    }
    if let Some(labels) = &typed.labels {
        let label = match (&labels[row], schema.label.label_type) {
            (None, _) => Bson::Null,
            (Some(text), LabelType::Integer) => text
                .parse::<i64>()
                .map_or(Bson::String(text.clone()), Bson::Int64),
            (Some(text), LabelType::Boolean) => text
                .parse::<bool>()
                .map_or(Bson::String(text.clone()), Bson::Boolean),
            (Some(text), LabelType::String) => Bson::String(text.clone()),
        };
        hasher.update(label.to_string().as_bytes());
        document.insert(schema.label.column.clone(), label);
    }
    document.insert("_row", row as i64);
    document.insert("_id", hex(&hasher.finalize())[..24].to_owned());
    document
}

fn bson_of(values: &TypedValues, row: usize) -> Bson {
    match values {
        TypedValues::Int(v) => v[row].map_or(Bson::Null, Bson::Int64),
        TypedValues::Float(v) => v[row].map_or(Bson::Null, Bson::Double),
        TypedValues::Bool(v) => v[row].map_or(Bson::Null, Bson::Boolean),
        TypedValues::Text(v) => v[row].clone().map_or(Bson::Null, Bson::String),
    }
}

/// Reads the schema's columns (and the label when present) of the documents matching
/// `query`, in `_row` order, as a table typed later like a CSV file.
pub async fn pull(
    target: &MongoTarget,
    schema: &Schema,
    query: Option<&serde_json::Value>,
) -> Result<Table, MongoError> {
    let filter = match query {
        None => Document::new(),
        Some(value) => match Bson::try_from(value.clone()) {
            Ok(Bson::Document(d)) => d,
            Ok(_) => return Err(MongoError::Query(value.to_string())),
            Err(e) => return Err(MongoError::Query(e.to_string())),
        },
    };
    let collection = target.collection().await?;
    let mut cursor = collection
        .find(filter)
        .sort(doc! { "_row": 1 })
        .await
        .map_err(|e| target.server("find", e))?;
    let mut names: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
    names.push(schema.label.column.clone());
    let mut cells: Vec<Vec<Option<String>>> = vec![Vec::new(); names.len()];
    let mut label_seen = false;
    while cursor
        .advance()
        .await
        .map_err(|e| target.server("find", e))?
    {
        let document: Document = cursor
            .deserialize_current()
            .map_err(|e| target.server("find", e))?;
        let id = document
            .get("_id")
            .map_or_else(|| "?".into(), |v| v.to_string());
        for (name, column) in names.iter().zip(cells.iter_mut()) {
            let value = match document.get(name) {
                None | Some(Bson::Null) => None,
                Some(Bson::Int32(v)) => Some(v.to_string()),
                Some(Bson::Int64(v)) => Some(v.to_string()),
                Some(Bson::Double(v)) => Some(v.to_string()),
                Some(Bson::Boolean(v)) => Some(v.to_string()),
                Some(Bson::String(v)) => Some(v.clone()),
                Some(other) => {
                    return Err(MongoError::Document {
                        target: target.display(),
                        id,
                        field: name.clone(),
                        problem: format!("holds a {:?}, not a scalar", other.element_type()),
                    });
                }
            };
            if *name == schema.label.column && value.is_some() {
                label_seen = true;
            }
            column.push(value);
        }
    }
    if !label_seen {
        // No document has a label: leave the column out, as a prediction input would.
        names.pop();
        cells.pop();
    }
    let height = cells.first().map_or(0, Vec::len);
    let columns: Vec<Column> = names
        .iter()
        .zip(cells)
        .map(|(name, values)| Column::new(name.as_str().into(), values))
        .collect();
    let frame = DataFrame::new(height, columns).map_err(|e| MongoError::Server {
        operation: "find",
        target: target.display(),
        message: e.to_string(),
    })?;
    Ok(Table::from_frame(target.display(), frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_the_display_form() {
        let target = MongoTarget {
            uri: "mongodb://alice:s3cret@db.example:27017/admin?authSource=admin".into(),
            db: "netsec".into(),
            collection: "phishing".into(),
        };
        let shown = target.display();
        assert_eq!(shown, "mongodb://db.example:27017/netsec.phishing");
        assert!(
            !format!(
                "{:?}",
                MongoError::Uri {
                    uri: redacted_hosts(target.uri.expose()),
                    message: "x".into()
                }
            )
            .contains("s3cret")
        );
    }

    #[test]
    fn stored_uris_keep_references_and_drop_literal_credentials() {
        for (written, stored) in [
            ("${MONGODB_URI}", "${MONGODB_URI}"),
            ("mongodb://127.0.0.1:27017", "mongodb://127.0.0.1:27017"),
            (
                "mongodb://${MONGO_USER}:${MONGO_PASSWORD}@db:27017/?authSource=admin",
                "mongodb://${MONGO_USER}:${MONGO_PASSWORD}@db:27017/?authSource=admin",
            ),
            (
                "mongodb://alice:s3cret@db:27017/x?tls=true",
                "mongodb://db:27017/x?tls=true",
            ),
            (
                "mongodb+srv://alice:${PW}@cluster.example/",
                "mongodb+srv://alice:${PW}@cluster.example/",
            ),
            ("mongodb://alice:pw${PW}@db", "mongodb://db"),
            ("mongodb://alice@db", "mongodb://db"),
        ] {
            assert_eq!(credential_free(written), stored, "{written}");
        }
    }

    /// A target whose URI holds canaries in every place a secret can sit.
    fn canary_target(options: &str) -> MongoTarget {
        MongoTarget {
            uri: format!("mongodb://alice:canary-pw@127.0.0.1:9/?{options}").into(),
            db: "netsec".into(),
            collection: "phishing".into(),
        }
    }

    #[test]
    fn debug_of_a_target_never_shows_its_uri() {
        let target = canary_target("authMechanismProperties=AWS_SESSION_TOKEN:canary-token");
        let debug = format!("{target:?} {target:#?}");
        assert!(!debug.contains("canary"), "{debug}");
        assert!(debug.contains("phishing"), "{debug}");
    }

    #[tokio::test]
    async fn driver_errors_never_show_credentials() {
        // URIs the driver refuses (malformed secret options; the driver quotes them) and one
        // it accepts but cannot reach (nothing listens on port 9; bounded by a short server
        // selection timeout). Canaries sit only where secrets do: harmless options such as
        // `authMechanism` may be quoted.
        for options in [
            "authMechanism=MONGODB-AWS&authMechanismProperties=canary-token",
            "authMechanismProperties=AWS_SESSION_TOKEN:canary-token,canary-two",
            "tlsCertificateKeyFilePassword=canary-key&tlsInsecure=canary-value",
            "serverSelectionTimeoutMS=200&connectTimeoutMS=200",
        ] {
            let err = canary_target(options)
                .collection()
                .await
                .expect_err("no server there");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("canary"), "{shown}");
        }
    }

    #[test]
    fn scrub_hides_user_password_and_secret_option_values() {
        let uri = "mongodb://al%69ce:p%40ss@db/?authSource=admin&authMechanismProperties=AWS_SESSION_TOKEN:tok";
        let message = "user alice, password p@ss or p%40ss, AWS_SESSION_TOKEN:tok, source admin";
        assert_eq!(
            scrub(message, uri),
            "user <redacted>, password <redacted> or <redacted>, <redacted>, source admin"
        );
    }

    #[test]
    fn stored_uris_keep_only_harmless_options() {
        for (written, stored) in [
            (
                "mongodb://db:27017/x?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:canary-token&authSource=$external",
                "mongodb://db:27017/x?authMechanism=MONGODB-AWS&authSource=$external",
            ),
            (
                "mongodb://db/?tls=true&tlsCertificateKeyFilePassword=canary-pw&replicaSet=rs0",
                "mongodb://db/?tls=true&replicaSet=rs0",
            ),
            (
                "mongodb://${USER}:${PW}@a:1,b:2/netsec?readPreference=secondary&directConnection=false&password=canary",
                "mongodb://${USER}:${PW}@a:1,b:2/netsec?readPreference=secondary&directConnection=false",
            ),
            // Option names are case-insensitive in MongoDB URIs; `;` also separates them.
            (
                "mongodb://db/?AUTHSOURCE=admin;secret=canary",
                "mongodb://db/?AUTHSOURCE=admin",
            ),
            ("mongodb://db/x?only=canary", "mongodb://db/x"),
            (
                "mongodb://alice:canary@db/?appName=netsec&x=canary",
                "mongodb://db/?appName=netsec",
            ),
        ] {
            let got = credential_free(written);
            assert_eq!(got, stored, "{written}");
            assert!(!got.contains("canary"), "{got}");
        }
    }
}
