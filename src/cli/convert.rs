//! `dynolake convert`: an export to a partitioned dataset, committed atomically.

use std::process::ExitCode;
use std::sync::Arc;

use super::CliResult;
use super::common::{DecodeArgs, SourceArgs, human_bytes, items_bar, tick};
use crate::convert::{ConvertOptions, ConvertSummary, Converted, convert, file_metadata};
use crate::decode::DecodeOptions;
use crate::export::Export;
use crate::scan::{Progress, ScanOptions};
use crate::schema::Schema;
use crate::store::Location;
use crate::write::WriteOptions;
use crate::write::commit::Mode;
use crate::write::files::{Format, ParquetSettings, parse_compression};
use crate::write::partition::PartitionSpec;

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
    decode: DecodeArgs,
    #[arg(long, value_enum, default_value_t = Format::Parquet)]
    format: Format,
    /// Partition by a column or a time transform of one: status, day(createdAt), month(…), year(…), hour(…); repeatable
    #[arg(long = "partition-by", short = 'p')]
    partition_by: Vec<String>,
    /// Parquet compression: zstd[:LEVEL], snappy, gzip, lz4, none
    #[arg(long, default_value = "zstd:1")]
    compression: String,
    /// error: refuse a destination holding data; overwrite: replace it after the commit; append: add a commit
    #[arg(long, value_enum, default_value_t = Mode::Error)]
    mode: Mode,
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
    /// Files open at once per worker; rows of further partitions are sorted on local disk (--spill-dir) and
    /// written after the reading, each partition into its own file(s)
    #[arg(long, default_value_t = 16)]
    max_open_files: usize,
    /// Where rows of partitions beyond --max-open-files are sorted (a temporary directory, removed afterwards)
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
    break_lease: Option<String>,
    /// No progress bar or summary
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn json(&self) -> bool {
        self.json
    }
}

pub fn run(a: Args, rt: &tokio::runtime::Runtime) -> CliResult {
    crate::cancel::install(rt);
    let export = a.source.open(rt)?;
    let dest = rt.block_on(Location::parse(&a.dest))?;
    parse_compression(&a.compression)?; // before any reading
    let job = format!("convert of export {} into {}", export.id, a.format.extension());
    let s = crate::convert::with_lease(&dest, &job, a.break_lease.as_deref(), rt.handle(), |held| {
        if let (Some(old), false) = (&held.took_over, a.quiet || a.json) {
            eprintln!("took over the lease of dead run {} ({}, pid {})", old.run_id, old.host, old.pid);
        }
        run_leased(&a, &export, &dest, rt)
    })?;
    report(&a, &s);
    Ok(ExitCode::SUCCESS)
}

/// The conversion, holding the destination's lease.
fn run_leased(
    a: &Args,
    export: &Export,
    dest: &Location,
    rt: &tokio::runtime::Runtime,
) -> crate::Result<ConvertSummary> {
    let jobs = a.source.jobs();
    let quiet = a.quiet || a.json;
    let dataset = dataset_schema(a, dest, rt)?;
    // Without a schema file, one read usually does: decode with the schema of
    // the first items while gathering the statistics of all of them, and read
    // again only if the exact schema turns out different. (--strict must judge
    // values against the exact schema, so it infers first.)
    let single_read = dataset.is_none() && a.decode.schema.is_none() && a.decode.sample.is_none() && !a.strict;
    let first_try = match single_read {
        true => {
            let schema = a.decode.infer_first(export, rt, a.first_items.max(1), jobs, quiet)?;
            // A partition column the first items lack may be in the exact schema: then read that way.
            options(a, export, &schema, jobs, true).ok().map(|opts| (schema, opts))
        }
        false => None,
    };
    match (first_try, dataset) {
        (Some((schema, opts)), _) => match convert_with(a, export, &schema, dest, &opts, rt)? {
            Converted::Done(s) => Ok(*s),
            Converted::SchemaDiffers(reason) => {
                if !quiet {
                    eprintln!("{reason}; reading the export again with the exact schema");
                }
                exact_run(a, export, dest, jobs, rt)
            }
        },
        (None, Some(schema)) => run_with(a, export, &schema, dest, jobs, rt),
        (None, None) => exact_run(a, export, dest, jobs, rt),
    }
}

/// `--mode append` without `--schema` onto a dataset: the schema of its last
/// commit, so every commit's files read as one table (values it cannot hold
/// go to the catch-all column, counted, as with any schema file). Appending
/// with other partitioning would mix layouts: refused.
fn dataset_schema(a: &Args, dest: &Location, rt: &tokio::runtime::Runtime) -> crate::Result<Option<Schema>> {
    if a.mode != Mode::Append || a.decode.schema.is_some() {
        return Ok(None);
    }
    let Some(last) = rt.block_on(crate::write::commit::read_commits(dest))?.pop() else {
        return Ok(None);
    };
    let theirs: Vec<String> = last.partition_by.iter().map(|p| p.name.clone()).collect();
    let schema = Schema::from_file_str(&format!("the commit record of run {}", last.run_id), &last.schema.to_string())?;
    let ours: Vec<String> = a
        .partition_by
        .iter()
        .map(|p| PartitionSpec::parse(p, &schema).map(|p| p.name))
        .collect::<crate::Result<_>>()?;
    if ours != theirs {
        return Err(crate::Error::Usage(format!(
            "{} is partitioned by [{}]; append with the same --partition-by (or write elsewhere)",
            dest.display(&dest.prefix),
            theirs.join(", ")
        )));
    }
    if !(a.quiet || a.json) {
        eprintln!("appending with the dataset's schema (from run {}); pass --schema to choose another", last.run_id);
    }
    Ok(Some(schema))
}

/// Convert with the schema file, or with the schema inferred from every item.
fn exact_run(
    a: &Args,
    export: &Export,
    dest: &Location,
    jobs: usize,
    rt: &tokio::runtime::Runtime,
) -> crate::Result<ConvertSummary> {
    let schema = a.decode.schema(export, rt, jobs, a.quiet || a.json)?;
    run_with(a, export, &schema, dest, jobs, rt)
}

/// Convert with a schema that is not checked (a file, the exact one, the dataset's).
fn run_with(
    a: &Args,
    export: &Export,
    schema: &Schema,
    dest: &Location,
    jobs: usize,
    rt: &tokio::runtime::Runtime,
) -> crate::Result<ConvertSummary> {
    let opts = options(a, export, schema, jobs, false)?;
    match convert_with(a, export, schema, dest, &opts, rt)? {
        Converted::Done(s) => Ok(*s),
        Converted::SchemaDiffers(_) => unreachable!("the schema is only checked when it was inferred from a sample"),
    }
}

fn convert_with(
    a: &Args,
    export: &Export,
    schema: &Schema,
    dest: &Location,
    opts: &ConvertOptions,
    rt: &tokio::runtime::Runtime,
) -> crate::Result<Converted> {
    let progress = Arc::new(Progress::default());
    let bar = items_bar(export, a.quiet || a.json, "converting");
    let ticker = tick(&bar, &progress);
    let result = convert(export, schema, dest, opts, rt.handle(), &progress);
    ticker.stop();
    result
}

/// `check_schema`: the schema comes from the first items (see [`ConvertOptions::check_schema`]).
fn options(
    a: &Args,
    export: &Export,
    schema: &Schema,
    jobs: usize,
    check_schema: bool,
) -> crate::Result<ConvertOptions> {
    let partition_by =
        a.partition_by.iter().map(|p| PartitionSpec::parse(p, schema)).collect::<crate::Result<Vec<_>>>()?;
    Ok(ConvertOptions {
        write: WriteOptions {
            format: a.format,
            partition_by,
            parquet: ParquetSettings {
                compression: parse_compression(&a.compression)?,
                row_group_rows: a.row_group_rows.max(1),
                row_group_bytes: 128 << 20,
                metadata: file_metadata(export, schema),
            },
            max_open_files: a.max_open_files.max(1),
            max_rows_per_file: a.max_rows_per_file.max(1),
            memory_budget: a.worker_memory.max(1) << 20,
            spill_dir: a.spill_dir.clone().unwrap_or_else(std::env::temp_dir),
        },
        compression_name: a.compression.clone(),
        mode: a.mode,
        scan: ScanOptions {
            jobs,
            decode: DecodeOptions { strict: a.strict, infer: a.decode.infer_options(), ..Default::default() },
            verify: true,
        },
        allow_rejects: a.allow_rejects,
        check_schema,
    })
}

fn report(a: &Args, s: &ConvertSummary) {
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
            "converted {} items from {} files ({} compressed, {} JSON) into {} rows, {} files, {} partition(s), {} at {}",
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
            "{:.2} s, {:.0} items/s, {}/s of JSON{peak}; run {}",
            s.elapsed_seconds,
            s.scan.decode.items as f64 / secs,
            human_bytes((s.scan.uncompressed_bytes as f64 / secs) as u64),
            s.run_id
        );
        if s.spilled.spilled_rows > 0 {
            eprintln!(
                "{} rows of {} partition(s) were sorted on disk before writing: more partitions than --max-open-files ({}) per worker",
                s.spilled.spilled_rows, s.spilled.spilled_partitions, a.max_open_files
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
