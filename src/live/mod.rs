//! Live tables: what dynolake does with a table rather than with files.
//!
//! - [`exports`]: start native exports (point-in-time recovery checked first),
//!   describe, list, wait for and watch them;
//! - [`scan`]: a parallel segmented Scan held to a read-capacity budget,
//!   checkpointed, staged as an export of its own and converted like one;
//! - [`stream`]: follow a table's DynamoDB stream into change files that
//!   `merge` and `sql` read, checkpointed per shard.
//!
//! Items leave the SDK as its `AttributeValue`s and are written as DynamoDB
//! JSON ([`json`]), the text the rest of the pipeline already reads exactly,
//! so there is one decoder for exports, scans and streams.
//!
//! The SDK's configuration is the standard chain (environment, profiles, SSO,
//! instance roles); `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB` point it
//! at another endpoint (the tests' moto server).

pub mod capacity;
pub mod exports;
pub mod json;
pub mod scan;
pub mod stream;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::error::Error;

/// The SDK configuration from the standard chain.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await
}

/// A DynamoDB client, with the SDK's own retries for throttling and
/// transient errors (standard mode, with backoff and jitter).
pub fn dynamodb(cfg: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(cfg)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(10))
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// A DynamoDB Streams client (`AWS_ENDPOINT_URL_DYNAMODB_STREAMS` overrides its endpoint).
pub fn streams(cfg: &aws_config::SdkConfig) -> aws_sdk_dynamodbstreams::Client {
    let conf = aws_sdk_dynamodbstreams::config::Builder::from(cfg)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(10))
        .build();
    aws_sdk_dynamodbstreams::Client::from_conf(conf)
}

/// An SDK call failed: AWS's error code and message, with what was being done.
pub(crate) fn aws<E>(context: impl Into<String>, e: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = e.code().map(str::to_string);
    let message = match (e.code(), e.message(), e.raw_response()) {
        (Some(c), Some(m), _) => format!("{c}: {m}"),
        (Some(c), None, _) => c.to_string(),
        // No AWS error in the answer (a proxy's page, a server failing): say what came back.
        (None, _, Some(raw)) => {
            let body = raw.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
            let body: String = body.chars().take(300).collect();
            format!("HTTP {} without an AWS error: {}", raw.status().as_u16(), body.trim())
        }
        _ => aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
    };
    let context = context.into();
    // A table or export that does not exist is how the tool was called (exit 2), not a failure.
    if code.as_deref() == Some("ResourceNotFoundException") || code.as_deref() == Some("ExportNotFoundException") {
        return Error::NotFound(format!("{context}: {message}"));
    }
    Error::Aws { context, code, message }
}

/// A table name or ARN as the API wants it, and the name alone.
pub fn table_name(table: &str) -> &str {
    table.rsplit_once(":table/").map(|(_, n)| n.split('/').next().unwrap_or(n)).unwrap_or(table)
}
