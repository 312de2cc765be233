//! Delta Lake tables (the `deltalake` crate), for `merge --format delta`.
//!
//! A Delta table gives readers what a folder of Parquet files cannot: every
//! commit is one entry in `_delta_log/`, seen whole or not at all, and
//! concurrent writers are serialised by the log. The first merge creates the
//! table from the full export (with the changes applied); each later one is
//! one `MERGE` transaction (update, insert, delete by key) that rewrites only
//! the files holding touched keys. Each commit carries what the table holds
//! (the [`MergeState`], the schema file, the source) under [`STATE_KEY`] in
//! its `commitInfo`, so the next run knows what is new without a second place
//! to keep it.
//!
//! The store is ours: the table is opened on the `object_store` the rest of
//! dynolake uses (local, or S3 with the same settings), not a second client.

use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, Result};
use crate::schema::Schema;
use crate::store::{Location, LocationKind};
use crate::write::commit::{MergeState, SourceInfo};

/// The `commitInfo` member holding [`TableState`].
pub const STATE_KEY: &str = "dynolake";

/// What a Delta table written by dynolake holds, in each of its commits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableState {
    pub merge: MergeState,
    pub source: SourceInfo,
    /// The schema file of the table's columns.
    pub schema: serde_json::Value,
}

impl TableState {
    pub fn schema(&self, table: &str) -> Result<Schema> {
        Schema::from_file_str(&format!("the Delta log of {table}"), &self.schema.to_string())
    }
}

/// The table's URL (`file:///…/` or `s3://bucket/prefix/`).
pub fn table_url(loc: &Location) -> Result<Url> {
    let s = match &loc.kind {
        LocationKind::S3 { bucket } => format!("s3://{bucket}/{}/", loc.prefix),
        LocationKind::Local => format!("file:///{}/", loc.prefix),
    };
    Url::parse(&s).map_err(|e| Error::Usage(format!("{}: {e}", loc.url)))
}

fn delta_err(what: impl Into<String>) -> impl FnOnce(DeltaTableError) -> Error {
    let what = what.into();
    move |e| Error::engine(what, e)
}

/// `s3://` tables use delta-rs's default log store on the store dynolake
/// gives them: commits are conditional puts (`If-None-Match`, which S3 has
/// honoured since 2024), so two writers cannot both commit one version.
/// (The `deltalake` `s3` feature would add a second S3 client and a DynamoDB
/// lock client; neither is needed.)
fn register_s3() {
    use deltalake::logstore::{LogStoreFactory, StorageConfig, default_logstore, logstore_factories};
    struct S3Factory;
    impl LogStoreFactory for S3Factory {
        fn with_options(
            &self,
            prefixed_store: deltalake::logstore::ObjectStoreRef,
            root_store: deltalake::logstore::ObjectStoreRef,
            location: &Url,
            options: &StorageConfig,
        ) -> deltalake::DeltaResult<std::sync::Arc<dyn deltalake::logstore::LogStore>> {
            Ok(default_logstore(prefixed_store, root_store, location, options))
        }
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let s3 = Url::parse("s3://").expect("a URL");
        logstore_factories().entry(s3).or_insert_with(|| std::sync::Arc::new(S3Factory));
    });
}

/// A handle on the table at `loc`, on dynolake's store, its log not read yet.
fn handle(loc: &Location) -> Result<DeltaTable> {
    register_s3();
    let url = table_url(loc)?;
    DeltaTableBuilder::from_url(url.clone())
        .and_then(|b| b.with_storage_backend(loc.store.clone(), url).build())
        .map_err(delta_err(format!("opening {}", loc.url)))
}

/// The Delta table at `loc`: `None` when there is none yet.
pub async fn open(loc: &Location) -> Result<Option<DeltaTable>> {
    if let Some(p) = loc.local_path(&loc.prefix)
        && !p.join("_delta_log").is_dir()
    {
        return Ok(None);
    }
    let mut table = handle(loc)?;
    match table.load().await {
        Ok(()) => Ok(Some(table)),
        Err(DeltaTableError::NotATable(_)) => Ok(None),
        Err(e) => Err(delta_err(format!("reading the Delta log of {}", loc.url))(e)),
    }
}

/// A table handle for `loc` whether or not a table is there (to create one).
pub async fn at(loc: &Location) -> Result<DeltaTable> {
    Ok(match open(loc).await? {
        Some(table) => table,
        None => handle(loc)?,
    })
}

/// What the newest commit says the table holds (`None`: not written by dynolake's merge).
pub async fn state(table: &DeltaTable, loc: &Location) -> Result<Option<TableState>> {
    let mut history = table.history(Some(1));
    let Some(last) = history.next().await else { return Ok(None) };
    let last = last.map_err(delta_err(format!("reading the Delta log of {}", loc.url)))?;
    match last.info.get(STATE_KEY) {
        None => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| Error::Usage(format!("{}: the Delta log's dynolake state is unreadable: {e}", loc.url))),
    }
}

/// The commit metadata that records `state`.
pub fn commit_properties(state: &TableState) -> deltalake::kernel::transaction::CommitProperties {
    let v = serde_json::to_value(state).expect("serializable");
    deltalake::kernel::transaction::CommitProperties::default().with_metadata([(STATE_KEY.to_string(), v)])
}

/// Register the table at `loc` as `name` in `ctx` (for `sql`).
pub async fn register(ctx: &datafusion::prelude::SessionContext, name: &str, table: &DeltaTable) -> Result<()> {
    table.update_datafusion_session(&ctx.state()).map_err(delta_err("preparing the session"))?;
    let provider = table.table_provider().await.map_err(|e| Error::engine("reading the Delta table", e))?;
    ctx.register_table(name, provider).map_err(|e| Error::engine("registering the Delta table", e))?;
    Ok(())
}
