//! A whole conversion as one library call: what `dynolake convert` does,
//! for a scheduler, a Python binding or a test to call the same way.
//!
//! ```no_run
//! # fn main() -> dynolake::Result<()> {
//! use dynolake::conversion::Conversion;
//! let rt = tokio::runtime::Runtime::new().unwrap();
//! let export = rt.block_on(async {
//!     let loc = dynolake::store::Location::parse("s3://bucket/exports/").await?;
//!     dynolake::export::open_at(&loc, None).await
//! })?;
//! let dest = rt.block_on(dynolake::store::Location::parse("s3://lake/orders/"))?;
//! let summary = Conversion::new(&export, dest).partition_by(["status"]).run(&rt)?;
//! println!("{} rows in {} files", summary.rows, summary.files);
//! # Ok(()) }
//! ```
//!
//! The policy, with its defaults:
//! - **Schema.** A schema given with [`Conversion::schema`] is used as it is.
//!   Otherwise (the default) the first [`first_items`](Conversion::first_items)
//!   items (50,000) give a first schema; the export is decoded with it while
//!   the statistics of every item are gathered, and read again with the exact
//!   schema only if those call for another one. So the result always has the
//!   exact schema, usually after one read. With [`sample`](Conversion::sample)
//!   the schema of the first N items is used as it is (values it cannot hold go
//!   to the catch-all column). `strict` infers exactly first (values are judged
//!   against the exact schema).
//! - **Appending** (`Mode::Append`) without a schema uses the dataset's (its
//!   last commit record's), and refuses other partitioning.
//! - **One writer.** The destination's lease is held for the whole run
//!   (both reads); [`break_lease`](Conversion::break_lease) takes over a dead
//!   run's on another host.
//! - Output defaults: Parquet, zstd level 1, row groups of up to 1,048,576 rows,
//!   files of up to 10,000,000 rows, 16 open partition files per worker, 96 MiB
//!   of buffers per worker, spill in the system's temporary folder, one worker
//!   per core; `Mode::Error` (refuse a destination holding data); rejected
//!   items stop the commit unless [`allow_rejects`](Conversion::allow_rejects).

use std::path::PathBuf;
use std::sync::Arc;

use crate::convert::{ConvertOptions, ConvertSummary, Converted, convert, file_metadata, with_lease};
use crate::decode::DecodeOptions;
use crate::error::{Error, Result};
use crate::export::Export;
use crate::pipeline::{InferRun, PipelineOptions, Progress, default_jobs, infer_schema};
use crate::schema::Schema;
use crate::schema::infer::InferOptions;
use crate::store::Location;
use crate::write::WriteOptions;
use crate::write::commit::Mode;
use crate::write::files::{Format, ParquetSettings, parse_compression};
use crate::write::lease::LeaseRecord;
use crate::write::partition::PartitionSpec;

/// What a conversion is doing, for progress displays and logs.
#[derive(Debug)]
pub enum Event<'a> {
    /// A read of the export starts: `what` it is for, and the counters it moves.
    Reading { what: &'static str, progress: &'a Arc<Progress> },
    /// That read ended.
    ReadDone,
    /// The lease of a dead run was taken over.
    TookOverLease(&'a LeaseRecord),
    /// The first items' schema was not the exact one: reading again (the reason says where they differ).
    ReadingAgain(&'a str),
    /// Appending with the dataset's schema, from this run's commit record.
    AppendingWithDatasetSchema { run_id: &'a str },
}

type Listener<'a> = Box<dyn Fn(Event) + Sync + 'a>;

/// A conversion of one export into one destination; see the module docs for the policy.
pub struct Conversion<'a> {
    export: &'a Export,
    dest: Location,
    schema: Option<Schema>,
    sample: Option<u64>,
    first_items: u64,
    infer: InferOptions,
    partition_by: Vec<String>,
    format: Format,
    compression: String,
    mode: Mode,
    strict: bool,
    allow_rejects: bool,
    max_open_files: usize,
    spill_dir: Option<PathBuf>,
    max_rows_per_file: u64,
    row_group_rows: usize,
    worker_memory_mib: usize,
    jobs: usize,
    break_lease: Option<String>,
    listener: Option<Listener<'a>>,
}

impl<'a> Conversion<'a> {
    pub fn new(export: &'a Export, dest: Location) -> Self {
        Conversion {
            export,
            dest,
            schema: None,
            sample: None,
            first_items: 50_000,
            infer: InferOptions::default(),
            partition_by: Vec::new(),
            format: Format::Parquet,
            compression: "zstd:1".into(),
            mode: Mode::Error,
            strict: false,
            allow_rejects: false,
            max_open_files: 16,
            spill_dir: None,
            max_rows_per_file: 10_000_000,
            row_group_rows: 1_048_576,
            worker_memory_mib: 96,
            jobs: default_jobs(),
            break_lease: None,
            listener: None,
        }
    }

    /// Decode with this schema (a schema file's) instead of inferring one.
    pub fn schema(mut self, schema: Schema) -> Self {
        self.schema = Some(schema);
        self
    }
    /// Infer the schema from the first `n` items only, and use it as it is.
    pub fn sample(mut self, n: u64) -> Self {
        self.sample = Some(n);
        self
    }
    /// How many first items give the first schema (default 50,000).
    pub fn first_items(mut self, n: u64) -> Self {
        self.first_items = n.max(1);
        self
    }
    pub fn infer_options(mut self, o: InferOptions) -> Self {
        self.infer = o;
        self
    }
    /// Partition columns or transforms (`status`, `day(createdAt)`).
    pub fn partition_by<S: Into<String>>(mut self, p: impl IntoIterator<Item = S>) -> Self {
        self.partition_by = p.into_iter().map(Into::into).collect();
        self
    }
    pub fn format(mut self, f: Format) -> Self {
        self.format = f;
        self
    }
    /// Parquet compression, `codec[:level]` (default `zstd:1`).
    pub fn compression(mut self, c: impl Into<String>) -> Self {
        self.compression = c.into();
        self
    }
    pub fn mode(mut self, m: Mode) -> Self {
        self.mode = m;
        self
    }
    /// Fail on the first value the schema cannot hold or the first bad line.
    pub fn strict(mut self, yes: bool) -> Self {
        self.strict = yes;
        self
    }
    /// Commit even when items were rejected (they are in the rejects file).
    pub fn allow_rejects(mut self, yes: bool) -> Self {
        self.allow_rejects = yes;
        self
    }
    pub fn max_open_files(mut self, n: usize) -> Self {
        self.max_open_files = n.max(1);
        self
    }
    pub fn spill_dir(mut self, d: Option<PathBuf>) -> Self {
        self.spill_dir = d;
        self
    }
    pub fn max_rows_per_file(mut self, n: u64) -> Self {
        self.max_rows_per_file = n.max(1);
        self
    }
    pub fn row_group_rows(mut self, n: usize) -> Self {
        self.row_group_rows = n.max(1);
        self
    }
    /// Buffers per worker, in MiB (default 96).
    pub fn worker_memory_mib(mut self, n: usize) -> Self {
        self.worker_memory_mib = n.max(1);
        self
    }
    /// Worker threads (default: one per core).
    pub fn jobs(mut self, n: usize) -> Self {
        self.jobs = n.max(1);
        self
    }
    /// Take over the lease of this dead run (held from another host).
    pub fn break_lease(mut self, run: Option<String>) -> Self {
        self.break_lease = run;
        self
    }
    /// Be told what the conversion is doing (see [`Event`]).
    pub fn on_event(mut self, f: impl Fn(Event) + Sync + 'a) -> Self {
        self.listener = Some(Box::new(f));
        self
    }

    fn emit(&self, e: Event) {
        if let Some(l) = &self.listener {
            l(e);
        }
    }

    /// Convert, holding the destination's lease throughout.
    pub fn run(self, rt: &tokio::runtime::Runtime) -> Result<ConvertSummary> {
        parse_compression(&self.compression)?; // before any reading
        let job = format!("convert of export {} into {}", self.export.id, self.format.extension());
        with_lease(&self.dest, &job, self.break_lease.as_deref(), rt.handle(), |held| {
            if let Some(old) = &held.took_over {
                self.emit(Event::TookOverLease(old));
            }
            self.run_leased(rt)
        })
    }

    fn run_leased(&self, rt: &tokio::runtime::Runtime) -> Result<ConvertSummary> {
        let dataset = self.dataset_schema(rt)?;
        // Without a schema, one read usually does: decode with the schema of the
        // first items while gathering the statistics of all of them, and read
        // again only if the exact schema turns out different. (`strict` must
        // judge values against the exact schema, so it infers first.)
        let single_read = dataset.is_none() && self.schema.is_none() && self.sample.is_none() && !self.strict;
        let first_try = match single_read {
            true => {
                let mut schema = self.infer(rt, Some(self.first_items), "reading the first items")?;
                schema.inferred_from = Some(format!("first:{}", self.first_items));
                // A partition column the first items lack may be in the exact schema: then read that way.
                self.options(&schema, true).ok().map(|opts| (schema, opts))
            }
            false => None,
        };
        match (first_try, dataset) {
            (Some((schema, opts)), _) => match self.convert_with(&schema, &opts, rt)? {
                Converted::Done(s) => Ok(*s),
                Converted::SchemaDiffers(reason) => {
                    self.emit(Event::ReadingAgain(&reason));
                    let schema = self.infer(rt, None, "inferring schema")?;
                    self.run_with(&schema, rt)
                }
            },
            (None, Some(schema)) => self.run_with(&schema, rt),
            (None, None) => {
                let schema = match &self.schema {
                    Some(s) => s.clone(),
                    None => self.infer(rt, self.sample, "inferring schema")?,
                };
                self.run_with(&schema, rt)
            }
        }
    }

    /// Infer from the first `sample` items, or from every item.
    fn infer(&self, rt: &tokio::runtime::Runtime, sample: Option<u64>, what: &'static str) -> Result<Schema> {
        let progress = Arc::new(Progress::default());
        self.emit(Event::Reading { what, progress: &progress });
        let run = InferRun { options: self.infer, sample, jobs: self.jobs, envelope: None };
        let r = infer_schema(self.export, rt.handle(), &run, &progress);
        self.emit(Event::ReadDone);
        r
    }

    /// `Mode::Append` without a schema onto a dataset: the schema of its last
    /// commit, so every commit's files read as one table. Appending with
    /// other partitioning would mix layouts: refused.
    fn dataset_schema(&self, rt: &tokio::runtime::Runtime) -> Result<Option<Schema>> {
        if self.mode != Mode::Append || self.schema.is_some() {
            return Ok(None);
        }
        let Some(last) = rt.block_on(crate::write::commit::read_commits(&self.dest))?.pop() else {
            return Ok(None);
        };
        let theirs: Vec<String> = last.partition_by.iter().map(|p| p.name.clone()).collect();
        let schema =
            Schema::from_file_str(&format!("the commit record of run {}", last.run_id), &last.schema.to_string())?;
        let ours: Vec<String> = self
            .partition_by
            .iter()
            .map(|p| PartitionSpec::parse(p, &schema).map(|p| p.name))
            .collect::<Result<_>>()?;
        if ours != theirs {
            return Err(Error::Usage(format!(
                "{} is partitioned by [{}]; append with the same --partition-by (or write elsewhere)",
                self.dest.display(&self.dest.prefix),
                theirs.join(", ")
            )));
        }
        self.emit(Event::AppendingWithDatasetSchema { run_id: &last.run_id });
        Ok(Some(schema))
    }

    /// Convert with a schema that is not checked (given, exact, the dataset's).
    fn run_with(&self, schema: &Schema, rt: &tokio::runtime::Runtime) -> Result<ConvertSummary> {
        let opts = self.options(schema, false)?;
        match self.convert_with(schema, &opts, rt)? {
            Converted::Done(s) => Ok(*s),
            Converted::SchemaDiffers(_) => unreachable!("the schema is only checked when it came from the first items"),
        }
    }

    fn convert_with(&self, schema: &Schema, opts: &ConvertOptions, rt: &tokio::runtime::Runtime) -> Result<Converted> {
        let progress = Arc::new(Progress::default());
        self.emit(Event::Reading { what: "converting", progress: &progress });
        let result = convert(self.export, schema, &self.dest, opts, rt.handle(), &progress);
        self.emit(Event::ReadDone);
        result
    }

    /// `check_schema`: the schema comes from the first items (see [`ConvertOptions::check_schema`]).
    fn options(&self, schema: &Schema, check_schema: bool) -> Result<ConvertOptions> {
        let partition_by =
            self.partition_by.iter().map(|p| PartitionSpec::parse(p, schema)).collect::<Result<Vec<_>>>()?;
        Ok(ConvertOptions {
            write: WriteOptions {
                format: self.format,
                partition_by,
                parquet: ParquetSettings {
                    compression: parse_compression(&self.compression)?,
                    row_group_rows: self.row_group_rows,
                    row_group_bytes: 128 << 20,
                    metadata: file_metadata(self.export, schema),
                    dictionary: Default::default(),
                },
                max_open_files: self.max_open_files,
                max_rows_per_file: self.max_rows_per_file,
                memory_budget: self.worker_memory_mib << 20,
                spill_dir: self.spill_dir.clone().unwrap_or_else(std::env::temp_dir),
            },
            compression_name: self.compression.clone(),
            mode: self.mode,
            scan: PipelineOptions {
                jobs: self.jobs,
                decode: DecodeOptions { strict: self.strict, infer: self.infer, ..Default::default() },
                verify: true,
            },
            allow_rejects: self.allow_rejects,
            check_schema,
        })
    }
}
