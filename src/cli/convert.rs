//! `dynolake convert`: an export to a partitioned dataset, committed atomically.

use std::process::ExitCode;
use std::sync::Mutex;

use super::CliResult;
use super::common::{DecodeArgs, SourceArgs, Ticker, human_bytes, items_bar, tick};
use crate::conversion::{Conversion, Event};
use crate::convert::ConvertSummary;
use crate::schema::Schema;
use crate::store::Location;
use crate::write::commit::Mode;
use crate::write::files::Format;

/// Convert an export to Parquet (or CSV, JSON Lines), locally or on S3.
///
/// Files are staged and committed atomically: readers see the old dataset or the
/// new one, never half of it. The manifest's checksums and counts are checked on
/// the way; a mismatch aborts before the commit.
///
/// Examples:
///   dynolake convert examples/orders /tmp/orders
///   dynolake convert s3://bucket/exports/ s3://lake/orders/ --partition-by status --partition-by 'day(createdAt)'
///   dynolake convert examples/orders /tmp/orders.csv --format csv --mode overwrite
///   dynolake convert examples/orders /tmp/orders --schema schemas/orders.json --json
///
/// Exit status: 0 ok; 1 verification failure or rejected items; 2 usage error.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    /// Where to write the dataset (local path or s3://bucket/prefix)
    dest: String,
    #[command(flatten)]
    out: OutputArgs,
}

/// How a dataset is written: `convert`'s options, shared with `scan`.
#[derive(clap::Args, Debug)]
pub struct OutputArgs {
    #[command(flatten)]
    decode: DecodeArgs,
    #[arg(long, value_enum, default_value_t = Format::Parquet)]
    pub(super) format: Format,
    /// Partition by a column or a time transform of one: status, day(createdAt), month(…), year(…), hour(…); repeatable
    #[arg(long = "partition-by", short = 'p')]
    partition_by: Vec<String>,
    /// Parquet compression: zstd[:LEVEL], snappy, gzip, lz4, none (columns nearly empty, under a byte a
    /// row, are written uncompressed)
    #[arg(long, default_value = "zstd:1")]
    compression: String,
    /// error: refuse a destination holding data; overwrite: replace it after the commit; append: add a commit
    #[arg(long, value_enum, default_value_t = Mode::Error)]
    pub(super) mode: Mode,
    /// Fail on the first value the schema cannot hold instead of using the _extra column
    #[arg(long)]
    strict: bool,
    /// Commit even if some items could not be decoded (they are kept in the rejects file)
    #[arg(long)]
    allow_rejects: bool,
    /// Without --schema: decode with the schema of the first N items while checking it against all of them on the
    /// same read (a second read happens only if the exact schema differs)
    #[arg(long, default_value_t = 50_000, value_name = "N")]
    first_items: u64,
    /// Files open at once per worker; rows of further partitions wait on local disk (--spill-dir; as
    /// source lines once the worker spills) and are written after the reading, each partition into its own file(s)
    #[arg(long, default_value_t = 16)]
    max_open_files: usize,
    /// Where rows of partitions beyond --max-open-files wait (a temporary directory, removed afterwards)
    #[arg(long, value_name = "DIR", env = "DYNOLAKE_SPILL_DIR")]
    spill_dir: Option<std::path::PathBuf>,
    /// Rows per output file before another is started
    #[arg(long, default_value_t = 10_000_000)]
    max_rows_per_file: u64,
    /// Rows per Parquet row group (at most; a worker flushes row groups early to stay within --worker-memory)
    #[arg(long, default_value_t = 1_048_576)]
    row_group_rows: usize,
    /// MiB each worker may hold in row groups being built, output buffers and rows waiting to be spilled
    #[arg(long, default_value_t = 96, value_name = "MIB")]
    worker_memory: usize,
    /// Take over the destination's lease from this run, which you know to be dead (its id is in the message
    /// that refused the destination); a dead run of this machine is detected without it
    #[arg(long, value_name = "RUN")]
    pub(super) break_lease: Option<String>,
    /// No progress bar or summary
    #[arg(long, short = 'q')]
    pub(super) quiet: bool,
    /// Print the summary as JSON
    #[arg(long)]
    pub(super) json: bool,
}

impl Args {
    pub fn json(&self) -> bool {
        self.out.json
    }
}

pub fn run(a: Args, rt: &tokio::runtime::Runtime) -> CliResult {
    crate::cancel::install(rt);
    let export = a.source.open(rt)?;
    let dest = rt.block_on(Location::parse(&a.dest))?;
    if let Some(s) = convert_export(&export, dest, &a.out, a.source.jobs(), rt)? {
        report(&a.out, &s);
    }
    Ok(ExitCode::SUCCESS)
}

/// Convert `export` into `dest` as `out` says, with progress bars and
/// messages; `None` when the result was a Delta table (reported already).
pub(super) fn convert_export(
    export: &crate::export::Export,
    dest: Location,
    a: &OutputArgs,
    jobs: usize,
    rt: &tokio::runtime::Runtime,
) -> Result<Option<ConvertSummary>, super::Failure> {
    let quiet = a.quiet || a.json;
    if a.format == Format::Delta {
        delta(a, export.clone(), dest, jobs, rt)?;
        return Ok(None);
    }
    // The policy is the library's (`Conversion`); the command line adds bars and messages.
    let mut c = Conversion::new(export, dest)
        .first_items(a.first_items)
        .infer_options(a.decode.infer_options())
        .partition_by(a.partition_by.clone())
        .format(a.format)
        .compression(a.compression.clone())
        .mode(a.mode)
        .strict(a.strict)
        .allow_rejects(a.allow_rejects)
        .max_open_files(a.max_open_files)
        .spill_dir(a.spill_dir.clone())
        .max_rows_per_file(a.max_rows_per_file)
        .row_group_rows(a.row_group_rows)
        .worker_memory_mib(a.worker_memory)
        .jobs(jobs)
        .break_lease(a.break_lease.clone());
    if let Some(p) = &a.decode.schema {
        c = c.schema(Schema::load(p)?);
    }
    if let Some(n) = a.decode.sample {
        c = c.sample(n);
    }
    let ticker: Mutex<Option<Ticker>> = Mutex::new(None);
    let s = c
        .on_event(|e| match e {
            Event::Reading { what, progress } => {
                let bar = items_bar(export, quiet, what);
                *ticker.lock().unwrap() = Some(tick(&bar, progress));
            }
            Event::ReadDone => {
                if let Some(t) = ticker.lock().unwrap().take() {
                    t.stop();
                }
            }
            Event::TookOverLease(old) if !quiet => {
                eprintln!("took over the lease of dead run {} ({}, pid {})", old.run_id, old.host, old.pid)
            }
            Event::ReadingAgain(reason) if !quiet => {
                eprintln!("{reason}; reading the export again with the exact schema")
            }
            Event::AppendingWithDatasetSchema { run_id } if !quiet => {
                eprintln!("appending with the dataset's schema (from run {run_id}); pass --schema to choose another")
            }
            _ => {}
        })
        .run(rt)?;
    Ok(Some(s))
}

pub(super) fn report(a: &OutputArgs, s: &ConvertSummary) {
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s).expect("json"));
    } else if !a.quiet {
        if let Some(run) = &s.finished_interrupted_run {
            eprintln!(
                "finished the commit of interrupted run {run}: {} rows in {} files at {}",
                s.rows, s.files, s.destination
            );
            return;
        }
        let secs = s.elapsed_seconds.max(1e-9);
        eprintln!(
            "converted {} items from {} files ({} compressed, {} decompressed) into {} rows, {} files, {} partition(s), {} at {}",
            s.scan.decode.items,
            s.scan.files,
            human_bytes(s.scan.compressed_bytes),
            human_bytes(s.scan.uncompressed_bytes),
            s.rows,
            s.files,
            s.partitions,
            human_bytes(s.bytes_out),
            s.destination
        );
        let peak = s.peak_memory_bytes.map(|b| format!(", peak memory {}", human_bytes(b))).unwrap_or_default();
        eprintln!(
            "{:.2} s, {:.0} items/s, {}/s decompressed{peak}; run {}",
            s.elapsed_seconds,
            s.scan.decode.items as f64 / secs,
            human_bytes((s.scan.uncompressed_bytes as f64 / secs) as u64),
            s.run_id
        );
        let st = &s.stages;
        eprintln!(
            "time: read+gunzip {:.2} s, decode {:.2} s, encode+write {:.2} s (summed over workers, in {:.2} s); \
             finishing files {:.2} s; commit {:.2} s",
            st.read.read_inflate_seconds,
            st.read.decode_seconds,
            st.read.encode_write_seconds,
            st.scan_wall_seconds,
            st.finish_files_seconds,
            st.commit_seconds
        );
        if s.spilled.spilled_rows > 0 {
            eprintln!(
                "{} rows of {} partition(s) waited on disk before writing ({} of them as source lines, decoded after the scan): \
                 more partitions than --max-open-files ({}) per worker",
                s.spilled.spilled_rows, s.spilled.spilled_partitions, s.spilled.spilled_lines, a.max_open_files
            );
        }
        if s.scan.decode.extra_values > 0 {
            let per: Vec<String> =
                s.scan.decode.extra_by_attribute.iter().take(10).map(|(k, v)| format!("{k} ({v})")).collect();
            eprintln!(
                "{} value(s) did not fit the schema and went to the _extra column: {}",
                s.scan.decode.extra_values,
                per.join(", ")
            );
        }
        if s.scan.decode.rejected > 0 {
            eprintln!("{} item(s) rejected: see {}", s.scan.decode.rejected, s.rejects_file.as_deref().unwrap_or("?"));
        }
        if !s.cleaned_leftovers.is_empty() {
            eprintln!("removed leftovers of interrupted run(s): {}", s.cleaned_leftovers.join(", "));
        }
    }
}

/// `--format delta`: the export as a new Delta Lake table (one commit), written
/// the way `merge --format delta` writes its first version; `merge` applies
/// incremental exports onto it later.
fn delta(
    a: &OutputArgs,
    export: crate::export::Export,
    dest: Location,
    jobs: usize,
    rt: &tokio::runtime::Runtime,
) -> Result<(), super::Failure> {
    use crate::merge::{self, MergeOptions};
    if a.mode == Mode::Append {
        return Err(crate::Error::Usage(
            "--format delta with --mode append: apply incremental exports with `dynolake merge` instead".into(),
        )
        .into());
    }
    if a.mode == Mode::Error && rt.block_on(crate::delta::open(&dest))?.is_some() {
        return Err(crate::Error::Usage(format!(
            "{} already holds a Delta table; --mode overwrite writes a new version of it, `dynolake merge` applies \
             incremental exports onto it",
            dest.url
        ))
        .into());
    }
    let plan = merge::Plan::export_alone(export)?;
    let opts = MergeOptions {
        schema: a.decode.schema.as_deref().map(Schema::load).transpose()?,
        infer: a.decode.infer_options(),
        format: Format::Delta,
        partition_by: a.partition_by.clone(),
        jobs,
        overwrite: a.mode == Mode::Overwrite,
        ..Default::default()
    };
    let job = "convert into a Delta table".to_string();
    let s = crate::convert::with_lease(&dest, &job, a.break_lease.as_deref(), rt.handle(), |_| {
        merge::run(plan, &dest, &opts, rt)
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s).expect("serializable"));
    } else if !a.quiet {
        println!(
            "wrote {} rows of {} into the Delta table {} ({}, {:.1} s)",
            s.rows,
            s.base,
            s.destination,
            s.run_id.as_deref().unwrap_or(""),
            s.elapsed_seconds
        );
    }
    Ok(())
}
