//! The library's one error type.
//!
//! Every variant that is about data names where the data came from: the file
//! (an S3 key or a local path), the line, and the attribute path inside the item
//! (`lines[3].price`). The CLI prints the whole chain; it never has to guess.

use std::fmt;

/// Where in an export a problem was found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// The data file (bucket-relative key or local path).
    pub file: String,
    /// 1-based line number inside the decompressed data file, 0 when unknown.
    pub line: u64,
    /// Attribute path inside the item, such as `lines[3].price`; empty for the whole line.
    pub path: String,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.path.is_empty() {
            write!(f, " at `{}`", self.path)?;
        }
        Ok(())
    }
}

/// Errors raised by dynolake.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user asked for something that cannot work (bad location, bad option).
    #[error("{0}")]
    Usage(String),

    /// Talking to a store (local disk or S3) failed.
    #[error("{context}: {source}")]
    Store {
        context: String,
        #[source]
        source: object_store::Error,
    },

    /// Local I/O failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A manifest is malformed or inconsistent.
    #[error("manifest {file}: {message}")]
    Manifest { file: String, message: String },

    /// No export, or not the one asked for, at a location.
    #[error("{0}")]
    NotFound(String),

    /// A data file does not match what the manifest promises.
    #[error("verification failed: {0}")]
    Verify(String),

    /// A data line could not be decoded.
    #[error("{position}: {message}")]
    Decode { position: Position, message: String },

    /// A schema file is malformed, or data does not fit it under `--strict`.
    #[error("schema: {0}")]
    Schema(String),

    /// Another run holds the destination's lease (see `write::lease`).
    #[error("{0}")]
    Locked(String),

    /// A destination holds something this run must not touch or adopt (an
    /// interrupted commit of another job); the message says how to recover.
    #[error("{0}")]
    Conflict(String),

    /// The run was stopped by a signal (SIGINT, SIGTERM); what it staged was removed.
    #[error("interrupted by {0}; nothing was committed")]
    Interrupted(&'static str),

    /// A row of a decoded batch cannot be written (`row` is its index in the
    /// batch); the scan turns it into [`Error::Decode`] with the row's file and line.
    #[error("row {row} at `{path}`: {message}")]
    Row { row: usize, path: String, message: String },

    /// An AWS API call failed (live tables): AWS's error code, when it gave one, and its message.
    #[error("{context}: {message}")]
    Aws { context: String, code: Option<String>, message: String },

    /// Arrow, Parquet or DataFusion failed: the source stays typed.
    #[error("{context}: {source}")]
    Engine {
        context: String,
        #[source]
        source: EngineError,
    },
}

/// A failure of the engines dynolake builds on, kept as their own error types
/// (so a caller can match on them, and `source()` chains reach their causes).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Boxed: DataFusion's error is large, and most results never hold it.
    #[cfg(feature = "sql")]
    #[error(transparent)]
    DataFusion(Box<datafusion::error::DataFusionError>),
    /// Delta Lake (`deltalake`): the log, a commit, a conflict with another writer.
    #[cfg(feature = "sql")]
    #[error(transparent)]
    Delta(Box<deltalake::DeltaTableError>),
}

#[cfg(feature = "sql")]
impl From<deltalake::DeltaTableError> for EngineError {
    fn from(e: deltalake::DeltaTableError) -> Self {
        EngineError::Delta(Box::new(e))
    }
}

#[cfg(feature = "sql")]
impl From<datafusion::error::DataFusionError> for EngineError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        EngineError::DataFusion(Box::new(e))
    }
}

impl Error {
    pub fn store(context: impl Into<String>, source: object_store::Error) -> Self {
        Error::Store { context: context.into(), source }
    }
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
    pub fn manifest(file: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Manifest { file: file.into(), message: message.into() }
    }
    pub fn engine(context: impl Into<String>, err: impl Into<EngineError>) -> Self {
        Error::Engine { context: context.into(), source: err.into() }
    }
    /// True when the error is about the data or its verification, as opposed
    /// to how the tool was called. The CLI maps this to exit status 1 vs 2.
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Usage(_))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
