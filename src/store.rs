//! Locations: a local path, `file://…`, or `s3://bucket/prefix`, behind one
//! `object_store` switch.
//!
//! S3 is configured the way AWS users expect. `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_S3` are read from the environment;
//! when no key is set there, credentials come from the standard AWS chain
//! (`AWS_PROFILE`, shared config and credentials files, SSO, web identity,
//! container and instance metadata) through `aws-config`, bridged into
//! `object_store` the way datafusion-cli does it.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::local::LocalFileSystem;
use object_store::path::{Path, PathPart};
use object_store::{CredentialProvider, ObjectStore};

use crate::error::{Error, Result};

/// Where data lives: a store plus a prefix inside it.
#[derive(Debug, Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    /// The prefix inside the store (for local paths: the absolute path).
    pub prefix: Path,
    /// How the user wrote it, for messages.
    pub url: String,
    pub kind: LocationKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationKind {
    Local,
    S3 { bucket: String },
}

impl Location {
    /// Parse a location string. S3 locations need a Tokio runtime for the
    /// credential chain, hence async.
    pub async fn parse(s: &str) -> Result<Location> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::Usage(format!("`{s}`: an S3 location needs a bucket: s3://bucket/prefix")));
            }
            let store = s3_store(bucket).await?;
            return Ok(Location {
                store,
                prefix: Path::from(prefix.trim_end_matches('/')),
                url: s.to_string(),
                kind: LocationKind::S3 { bucket: bucket.to_string() },
            });
        }
        if s.contains("://") && !s.starts_with("file://") {
            return Err(Error::Usage(format!(
                "`{s}`: unsupported location; use a local path, file://… or s3://bucket/prefix"
            )));
        }
        Self::local(PathBuf::from(s.strip_prefix("file://").unwrap_or(s)))
    }

    /// A local directory or file. The directory need not exist yet (outputs).
    pub fn local(path: PathBuf) -> Result<Location> {
        let abs = std::path::absolute(&path).map_err(|e| Error::io(format!("{}", path.display()), e))?;
        let abs = normalize(&abs);
        let prefix = Path::from_filesystem_path(&abs)
            .or_else(|_| Path::parse(abs.to_string_lossy().trim_start_matches('/')))
            .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
        Ok(Location {
            store: Arc::new(LocalFileSystem::new()),
            prefix,
            url: path.display().to_string(),
            kind: LocationKind::Local,
        })
    }

    /// A location for a path below this one.
    pub fn child(&self, rel: &str) -> Location {
        let mut prefix = self.prefix.clone();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            prefix = prefix.clone().join(part);
        }
        Location {
            store: self.store.clone(),
            url: format!("{}/{}", self.url.trim_end_matches('/'), rel),
            prefix,
            kind: self.kind.clone(),
        }
    }

    /// Same store, another prefix.
    pub fn at(&self, prefix: Path) -> Location {
        Location { store: self.store.clone(), url: self.display(&prefix), prefix, kind: self.kind.clone() }
    }

    /// An object's bytes, or `None` when there is no such object.
    pub async fn get_if_exists(&self, path: &Path) -> Result<Option<bytes::Bytes>> {
        use object_store::ObjectStoreExt;
        match self.store.get(path).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| Error::store(format!("read {}", self.display(path)), e))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(format!("read {}", self.display(path)), e)),
        }
    }

    /// Write an object whole (one PUT: for small files and staged parts).
    pub async fn put_bytes(&self, path: &Path, bytes: Vec<u8>) -> Result<()> {
        use object_store::ObjectStoreExt;
        self.store
            .put(path, object_store::PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| Error::store(format!("write {}", self.display(path)), e))
    }

    /// The local filesystem path of an object, when the store is local disk.
    pub fn local_path(&self, path: &Path) -> Option<PathBuf> {
        match self.kind {
            LocationKind::Local => Some(PathBuf::from(format!("/{path}"))),
            LocationKind::S3 { .. } => None,
        }
    }

    /// How to show an object of this store to a user: `s3://bucket/key` or a path.
    pub fn display(&self, path: &Path) -> String {
        match &self.kind {
            LocationKind::Local => format!("/{path}"),
            LocationKind::S3 { bucket } => format!("s3://{bucket}/{path}"),
        }
    }

    /// The last path segment, handy for names.
    pub fn file_name(&self) -> Option<&str> {
        self.prefix.filename()
    }
}

/// `base/rel` for a relative path dynolake made (`status=A%2FB/part-….parquet`):
/// segments are taken as they are, not percent-encoded again (`Path::join`
/// would turn a Hive escape `%2F` into `%252F`). A segment object_store
/// cannot hold as it is (`..`, a control character) is encoded instead.
pub fn join_rel(base: &Path, rel: &str) -> Path {
    rel.split('/').filter(|p| !p.is_empty()).fold(base.clone(), |p, part| match PathPart::parse(part) {
        Ok(part) => p.join(part),
        Err(_) => p.join(part),
    })
}

/// Lexically remove `.` and `..` so that prefixes compare as users expect.
fn normalize(p: &std::path::Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

async fn s3_store(bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3").or_else(|_| std::env::var("AWS_ENDPOINT_URL")).ok();
    if let Some(ep) = &endpoint {
        builder = builder.with_endpoint(ep);
        if ep.starts_with("http://") {
            builder = builder.with_allow_http(true);
        }
    }
    builder = builder.with_retry(retry_config());
    let have_env_keys = std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
    let have_region = std::env::var_os("AWS_REGION").is_some() || std::env::var_os("AWS_DEFAULT_REGION").is_some();
    if !have_env_keys || !have_region {
        // The standard AWS chain: profiles, SSO, web identity, IMDS.
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        if !have_region && let Some(region) = config.region() {
            builder = builder.with_region(region.to_string());
        }
        if !have_env_keys && let Some(provider) = config.credentials_provider() {
            builder = builder.with_credentials(Arc::new(AwsChainCredentials { provider }));
        }
    }
    let store = builder.build().map_err(|e| Error::store(format!("configuring S3 for bucket `{bucket}`"), e))?;
    Ok(Arc::new(store))
}

/// How S3 requests are retried. Throttling (503 SlowDown), server errors
/// (5xx), connection resets, timeouts and bodies cut short are retried, the
/// latter resuming a download where it stopped (object_store checks the ETag
/// so a changed object is never stitched together). Backoff starts at 100 ms
/// and doubles (with jitter) up to 15 s; a request gives up after
/// `DYNOLAKE_S3_MAX_RETRIES` retries (10) or `DYNOLAKE_S3_RETRY_TIMEOUT`
/// seconds (180), and the error then names the object.
pub fn retry_config() -> object_store::RetryConfig {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: std::time::Duration::from_millis(100),
            max_backoff: std::time::Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: env("DYNOLAKE_S3_MAX_RETRIES").unwrap_or(10) as usize,
        retry_timeout: std::time::Duration::from_secs(env("DYNOLAKE_S3_RETRY_TIMEOUT").unwrap_or(180)),
    }
}

/// Bridges the `aws-config` credential chain into `object_store`.
#[derive(Debug)]
struct AwsChainCredentials {
    provider: aws_credential_types::provider::SharedCredentialsProvider,
}

#[async_trait::async_trait]
impl CredentialProvider for AwsChainCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        use aws_credential_types::provider::ProvideCredentials;
        let creds = self.provider.provide_credentials().await.map_err(|e| object_store::Error::Generic {
            store: "S3",
            source: format!("no AWS credentials found (environment, profile, SSO or instance role): {e}").into(),
        })?;
        Ok(Arc::new(AwsCredential {
            key_id: creds.access_key_id().to_string(),
            secret_key: creds.secret_access_key().to_string(),
            token: creds.session_token().map(str::to_string),
        }))
    }
}
