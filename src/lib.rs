//! dynolake turns Amazon DynamoDB exports into analytics-ready data.
//!
//! The library is laid out as the pipeline it runs, data flowing one way:
//!
//! - [`ddb`]: the DynamoDB data model (descriptors, exact numbers, values, the canonical spelling), used by all;
//! - [`store`]: locations (local paths, `s3://`) behind one `object_store` switch;
//! - [`export`]: find exports, parse and check their manifests (knows S3 keys, not Arrow);
//! - [`read`]: bytes → gunzip → lines, with checksums while streaming (knows bytes, not types);
//! - [`decode`]: DynamoDB JSON items → Arrow record batches (knows types, not files);
//! - [`schema`]: the inference lattice, schema files, safe column names;
//! - [`write`](mod@write): Parquet / CSV / JSON Lines sinks, partitioning, atomic commit;
//! - [`sql`]: DataFusion table providers over exports and datasets;
//! - [`ddl`]: Athena / Glue text from a schema;
//! - [`live`]: live tables through the AWS SDK (native exports, Scan exports, Streams);
//! - [`generate`]: exports that look exactly like AWS's, for tests and benchmarks.
//!
//! The `dynolake` binary is a thin shell over [`cli`].

pub mod alloc;
pub mod cancel;
#[cfg(feature = "sql")]
pub mod cli;
pub mod conversion;
pub mod convert;
pub mod ddb;
pub mod ddl;
pub mod decode;
#[cfg(feature = "sql")]
pub mod delta;
pub mod error;
pub mod export;
pub mod generate;
#[cfg(feature = "live")]
pub mod live;
#[cfg(feature = "sql")]
pub mod merge;
pub mod pipeline;
pub mod pool;
pub mod read;
pub mod schema;
#[cfg(feature = "sql")]
pub mod sql;
pub mod store;
pub mod write;

pub use error::{EngineError, Error, Result};
