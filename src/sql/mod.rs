//! SQL over exports and datasets, with DataFusion.
//!
//! A table location is a raw DynamoDB export (decoded on the fly by
//! [`ExportTable`]), a dataset written by `convert` (its commit record gives
//! the Hive partition columns), or any Parquet folder (partition directories
//! are discovered). Tables are named after the export's table or the
//! dataset's folder, made safe, or as the user says with `name=location`.

mod committed;
pub mod export_table;
pub mod schema_cache;

use std::sync::Arc;

pub use committed::CommittedView;
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::{SessionConfig, SessionContext};
pub use export_table::{ExportExec, ExportTable, Provisional};

use crate::error::{Error, Result};
use crate::export;
use crate::pipeline::{InferRun, Progress, infer_schema};
use crate::schema::{Schema, names::safe_name};
use crate::store::{Location, LocationKind};
use crate::write::commit;
use crate::write::partition::HIVE_NULL;
use datafusion::catalog::TableProvider;

/// How to register tables.
#[derive(Debug, Clone, Default)]
pub struct SqlOptions {
    pub schema_file: Option<std::path::PathBuf>,
    pub export_id: Option<String>,
    pub sample: Option<u64>,
    pub map_threshold: Option<usize>,
    pub jobs: usize,
    /// Refuse raw-export lines longer than this (0: the default, 16 MiB).
    pub max_line_bytes: usize,
    /// Without a schema file, `--sample` or a cached exact schema: decode a raw
    /// export with the schema of its first N items, provisionally (see
    /// [`Registered::provisional`]), instead of inferring exactly first.
    pub first_items: Option<u64>,
}

impl SqlOptions {
    fn line_limit(&self) -> usize {
        if self.max_line_bytes == 0 { crate::schema::infer::DEFAULT_MAX_LINE_BYTES } else { self.max_line_bytes }
    }

    fn infer_options(&self) -> crate::schema::infer::InferOptions {
        crate::schema::infer::InferOptions {
            map_threshold: self.map_threshold.unwrap_or(100),
            max_line_bytes: self.line_limit(),
            ..Default::default()
        }
    }
}

/// A registered table.
#[derive(Debug)]
pub struct Registered {
    pub name: String,
    pub kind: TableKind,
    /// A raw export registered with its first items' schema: a query's result
    /// is exact when [`Provisional::verdict`] says so after it ran; otherwise
    /// [`Registered::make_exact`] and run it again.
    pub provisional: Option<(Arc<Provisional>, export::Export)>,
}

impl Registered {
    /// Infer the exact schema (a whole read; cached for next time) and
    /// register the table again with it.
    pub fn make_exact(&mut self, ctx: &SessionContext, opts: &SqlOptions, rt: &tokio::runtime::Runtime) -> Result<()> {
        let Some((_, ex)) = self.provisional.take() else { return Ok(()) };
        let schema = exact_schema(&ex, opts, rt)?;
        let table = ExportTable::new(ex, schema, opts.jobs).with_max_line_bytes(opts.line_limit());
        ctx.deregister_table(self.name.as_str()).map_err(|e| Error::engine("registering", e))?;
        ctx.register_table(self.name.as_str(), Arc::new(table)).map_err(|e| Error::engine("registering", e))?;
        Ok(())
    }
}

/// The exact schema of a raw export: from the cache, or a whole read (then cached).
fn exact_schema(ex: &export::Export, opts: &SqlOptions, rt: &tokio::runtime::Runtime) -> Result<Schema> {
    let infer = opts.infer_options();
    if let Some(s) = schema_cache::load(ex, &infer) {
        return Ok(s);
    }
    let run = InferRun { options: infer, sample: None, jobs: opts.jobs, envelope: None };
    let schema = infer_schema(ex, rt.handle(), &run, &Progress::default())?;
    schema_cache::store(ex, &infer, &schema);
    Ok(schema)
}

/// A new session: information schema on (for `\d` and `SHOW TABLES`), one partition per core.
pub fn session(jobs: usize) -> SessionContext {
    let config = SessionConfig::new().with_information_schema(true).with_target_partitions(jobs.max(1));
    SessionContext::new_with_config(config)
}

/// What a location turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableKind {
    Export {
        export_id: String,
    },
    /// `unfinished`: what the reader should know (a commit under way or
    /// interrupted): only committed files are read.
    Dataset {
        partitions: Vec<String>,
        unfinished: Vec<String>,
    },
    Parquet {
        partitions: Vec<String>,
    },
    /// A Delta Lake table, read at its newest version.
    Delta {
        version: u64,
    },
}

/// Register `[name=]location` in `ctx`; returns the table name and what it is.
pub fn register(
    ctx: &SessionContext,
    spec: &str,
    opts: &SqlOptions,
    rt: &tokio::runtime::Runtime,
) -> Result<(String, TableKind)> {
    let mut r = register_table(ctx, spec, &SqlOptions { first_items: None, ..opts.clone() }, rt)?;
    r.make_exact(ctx, opts, rt)?;
    Ok((r.name, r.kind))
}

/// Register `[name=]location` in `ctx`, provisionally when `opts.first_items` allows.
pub fn register_table(
    ctx: &SessionContext,
    spec: &str,
    opts: &SqlOptions,
    rt: &tokio::runtime::Runtime,
) -> Result<Registered> {
    let (name, location) = match spec.split_once('=') {
        Some((n, l)) if !n.contains('/') && !n.contains(':') => (Some(n.to_string()), l),
        _ => (None, spec),
    };
    let loc = rt.block_on(Location::parse(location))?;
    if let LocationKind::S3 { bucket } = &loc.kind {
        let url = url::Url::parse(&format!("s3://{bucket}")).map_err(|e| Error::Usage(e.to_string()))?;
        ctx.register_object_store(&url, loc.store.clone());
    }
    // A raw export, or a folder of Streams records?
    let raw = match rt.block_on(export::discover(&loc)) {
        Ok(found) => {
            let info = export::choose(&found, opts.export_id.as_deref())?;
            Ok(rt.block_on(export::open(&loc, &info))?)
        }
        Err(Error::NotFound(m)) => match rt.block_on(export::open_stream_records(&loc)) {
            Ok(ex) => Ok(ex),
            Err(Error::NotFound(_)) => Err(Error::NotFound(m)),
            Err(e) => return Err(e),
        },
        Err(e) => Err(e),
    };
    match raw {
        Ok(ex) => {
            if let Some(p) = ex.manifest_problems.first() {
                return Err(Error::Verify(p.clone()));
            }
            let infer = opts.infer_options();
            let sampled = |n: u64| {
                let run = InferRun { options: infer, sample: Some(n), jobs: opts.jobs, envelope: None };
                infer_schema(&ex, rt.handle(), &run, &Progress::default())
            };
            let whole = ex.summary.export_type != crate::export::ExportType::StreamRecords;
            let (schema, provisional) = match (&opts.schema_file, opts.sample, opts.first_items) {
                (Some(p), _, _) => (Schema::load(p)?, None),
                (None, Some(n), _) => (sampled(n)?, None),
                (None, None, Some(n)) if whole && ex.summary.item_count > n => match schema_cache::load(&ex, &infer) {
                    Some(s) => (s, None),
                    None => (sampled(n)?, Some(Arc::new(Provisional::default()))),
                },
                (None, None, _) => (exact_schema(&ex, opts, rt)?, None),
            };
            let name = name.unwrap_or_else(|| safe_name(ex.table_name()));
            let id = ex.id.clone();
            let mut table = ExportTable::new(ex.clone(), schema, opts.jobs).with_max_line_bytes(opts.line_limit());
            if let Some(p) = &provisional {
                table = table.provisional(p.clone());
            }
            ctx.register_table(name.as_str(), Arc::new(table)).map_err(|e| Error::engine("registering", e))?;
            return Ok(Registered {
                name,
                kind: TableKind::Export { export_id: id },
                provisional: provisional.map(|p| (p, ex)),
            });
        }
        Err(Error::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    // One Parquet file (a `sql -o` result, say).
    if loc.prefix.filename().is_some_and(|f| f.ends_with(".parquet"))
        && rt.block_on(object_store::ObjectStoreExt::head(&loc.store, &loc.prefix)).is_ok()
    {
        let stem = loc.file_name().unwrap_or("t").trim_end_matches(".parquet").to_string();
        let name = name.unwrap_or_else(|| safe_name(&stem));
        let url = match &loc.kind {
            LocationKind::S3 { bucket } => format!("s3://{bucket}/{}", loc.prefix),
            LocationKind::Local => format!("/{}", loc.prefix),
        };
        let options = datafusion::prelude::ParquetReadOptions::default();
        rt.block_on(ctx.register_parquet(name.as_str(), &url, options))
            .map_err(|e| Error::engine(format!("opening {}", loc.url), e))?;
        return Ok(Registered { name, kind: TableKind::Parquet { partitions: Vec::new() }, provisional: None });
    }
    // A Delta table (`merge --format delta` writes them).
    if let Some(table) = rt.block_on(crate::delta::open(&loc))? {
        let name = name.unwrap_or_else(|| safe_name(loc.file_name().unwrap_or("t")));
        rt.block_on(crate::delta::register(ctx, &name, &table))?;
        let kind = TableKind::Delta { version: table.version().unwrap_or(0) };
        return Ok(Registered { name, kind, provisional: None });
    }
    // A dataset written by convert, or a Parquet folder.
    let all = rt.block_on(commit::read_commits(&loc))?;
    let commits = commit::live(&all);
    let base_name = || safe_name(loc.file_name().unwrap_or("t"));
    let (partition_cols, kind): (Vec<(String, DataType)>, _) = if let Some(last) = commits.last() {
        if last.format != crate::write::files::Format::Parquet {
            return Err(Error::Usage(format!(
                "{} is a {:?} dataset; SQL reads Parquet datasets and raw exports",
                loc.url, last.format
            )));
        }
        let cols: Vec<(String, DataType)> = last
            .partition_by
            .iter()
            .map(|p| {
                let t = match p.athena_type.as_str() {
                    "bigint" => DataType::Int64,
                    "boolean" => DataType::Boolean,
                    _ => DataType::Utf8,
                };
                (p.name.clone(), t)
            })
            .collect();
        let names = cols.iter().map(|c| c.0.clone()).collect();
        let unfinished = rt.block_on(commit::unfinished(&loc))?;
        (cols, TableKind::Dataset { partitions: names, unfinished })
    } else {
        (Vec::new(), TableKind::Parquet { partitions: Vec::new() })
    };
    let table_url = match kind {
        TableKind::Dataset { .. } => committed_url(ctx, &loc, commits)?,
        _ => listing_url(&loc)?,
    };
    let state = ctx.state();
    let mut options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let kind = match kind {
        TableKind::Parquet { .. } => {
            let found = rt
                .block_on(options.infer_partitions(&state, &table_url))
                .map_err(|e| Error::engine(format!("listing {}", loc.url), e))?;
            options = options.with_table_partition_cols(found.iter().map(|c| (c.clone(), DataType::Utf8)).collect());
            TableKind::Parquet { partitions: found }
        }
        k => {
            // As text here: the Hive null directory must read as NULL, which a
            // typed column cannot parse (see `null_partitions`).
            let as_text = partition_cols.iter().map(|(n, _)| (n.clone(), DataType::Utf8)).collect();
            options = options.with_table_partition_cols(as_text);
            k
        }
    };
    let schema = rt
        .block_on(options.infer_schema(&state, &table_url))
        .map_err(|e| Error::NotFound(format!("{} is neither a DynamoDB export nor a Parquet dataset: {e}", loc.url)))?;
    let config = ListingTableConfig::new(table_url).with_listing_options(options).with_schema(schema);
    let table: Arc<dyn TableProvider> =
        Arc::new(ListingTable::try_new(config).map_err(|e| Error::engine("opening the dataset", e))?);
    let table = match kind {
        TableKind::Dataset { .. } => null_partitions(ctx, table, &partition_cols)
            .map_err(|e| Error::engine(format!("opening the dataset {}", loc.url), e))?,
        _ => table,
    };
    let name = name.unwrap_or_else(base_name);
    ctx.register_table(name.as_str(), table).map_err(|e| Error::engine("registering", e))?;
    Ok(Registered { name, kind, provisional: None })
}

/// The dataset with its partition columns typed, and the Hive null
/// directory (`__HIVE_DEFAULT_PARTITION__`) read as NULL, as Hive and Athena
/// read it. Filters on the partition columns still prune directories: the
/// expression references only them.
fn null_partitions(
    ctx: &SessionContext,
    table: Arc<dyn TableProvider>,
    typed: &[(String, DataType)],
) -> datafusion::error::Result<Arc<dyn TableProvider>> {
    use datafusion::common::{Column, ScalarValue};
    use datafusion::logical_expr::{Expr, cast, lit, when};
    let df = ctx.read_table(table)?;
    let exprs = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let c = Expr::Column(Column::from_name(f.name()));
            match typed.iter().find(|(n, _)| n == f.name()) {
                Some((n, ty)) => Ok(when(c.clone().eq(lit(HIVE_NULL)), lit(ScalarValue::try_from(ty)?))
                    .otherwise(cast(c, ty.clone()))?
                    .alias(n)),
                None => Ok(c),
            }
        })
        .collect::<datafusion::error::Result<Vec<Expr>>>()?;
    Ok(df.select(exprs)?.into_view())
}

/// The listing URL of a Parquet folder.
fn listing_url(loc: &Location) -> Result<ListingTableUrl> {
    let s = match &loc.kind {
        LocationKind::S3 { bucket } => format!("s3://{bucket}/{}/", loc.prefix),
        LocationKind::Local => format!("/{}/", loc.prefix),
    };
    ListingTableUrl::parse(&s).map_err(|e| Error::Usage(format!("{}: {e}", loc.url)))
}

/// The listing URL of a dataset: the same folder seen through a
/// [`CommittedView`] of its commit records, registered under a URL of its own.
fn committed_url(ctx: &SessionContext, loc: &Location, commits: &[commit::CommitRecord]) -> Result<ListingTableUrl> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let host = format!("dataset{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let files = commits.iter().flat_map(|c| &c.files).map(|f| (crate::store::join_rel(&loc.prefix, &f.path), f.bytes));
    let view = CommittedView::new(loc.store.clone(), files);
    let base = url::Url::parse(&format!("dynolake://{host}")).map_err(|e| Error::Usage(e.to_string()))?;
    ctx.register_object_store(&base, Arc::new(view));
    ListingTableUrl::parse(format!("dynolake://{host}/{}/", loc.prefix))
        .map_err(|e| Error::Usage(format!("{}: {e}", loc.url)))
}
