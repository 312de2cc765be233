//! `dynolake merge`: a table's current state from a full export and its incremental exports.

use std::path::PathBuf;

use super::CliResult;
use super::common::{human_bytes, items_bar, tick};
use crate::convert::with_lease;
use crate::merge::{self, MergeOptions, MergeSummary};
use crate::schema::Schema;
use crate::store::Location;
use crate::write::files::Format;

/// Apply incremental exports onto a full export (or onto the dataset an earlier merge wrote).
///
/// The result is the table as of the end of the last window applied: per key the latest change wins,
/// removals delete, an update that drops attributes drops them. The chain is checked first: a gap
/// between windows is an error naming the missing interval; overlaps are fine. The commit record
/// keeps which exports the result holds, so running the same command again applies only what is new
/// (and says so when there is nothing).
///
/// BASE is a prefix holding the full export (and perhaps its incrementals: the chain is found there),
/// an export folder, or a dataset an earlier merge or convert wrote. CHANGES are more locations holding
/// incremental exports. The last location is DEST.
///
/// Examples:
///   dynolake merge s3://bucket/exports/orders/ s3://lake/orders/
///   dynolake merge exports/full/ exports/incrementals/ /tmp/orders --partition-by status
///   dynolake merge s3://bucket/exports/ s3://lake/orders/ --key pk,sk --json
///
/// Exit status: 0 ok (also when there was nothing new); 1 a gap in the chain or a verification
/// failure; 2 usage error; 3 another run holds DEST.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// BASE [CHANGES…] DEST
    #[arg(num_args = 2.., required = true, value_name = "LOCATION")]
    locations: Vec<String>,
    /// The key attributes, comma-separated (default: those the change records' Keys name)
    #[arg(long, value_delimiter = ',')]
    key: Option<Vec<String>>,
    /// Apply this schema file instead of inferring one (a dataset base keeps its own)
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Without --schema: infer from the first N items of the base (and N/10 records of each change export),
    /// check that schema on the same read, and read again only if the exact schema differs (as convert does)
    #[arg(long, default_value_t = 50_000, value_name = "N")]
    first_items: u64,
    #[arg(long, value_enum, default_value_t = Format::Parquet)]
    format: Format,
    /// Partition by a column or a time transform of one (as for convert); repeatable
    #[arg(long = "partition-by", short = 'p')]
    partition_by: Vec<String>,
    /// Parquet compression: zstd[:LEVEL], snappy, gzip, lz4, none (columns nearly empty, under a byte a
    /// row, are written uncompressed)
    #[arg(long, default_value = "zstd:1")]
    compression: String,
    /// Worker threads (default: one per core)
    #[arg(long, short = 'j')]
    jobs: Option<usize>,
    /// Files open at once per worker (as for convert)
    #[arg(long, default_value_t = 16)]
    max_open_files: usize,
    /// Where rows of partitions beyond --max-open-files wait (a temporary directory, removed afterwards)
    #[arg(long, value_name = "DIR", env = "DYNOLAKE_SPILL_DIR")]
    spill_dir: Option<PathBuf>,
    /// Rows per output file before another is started
    #[arg(long, default_value_t = 10_000_000)]
    max_rows_per_file: u64,
    /// MiB each worker may hold in row groups being built and output buffers
    #[arg(long, default_value_t = 96, value_name = "MIB")]
    worker_memory: usize,
    /// MiB of decoded changes held in memory while they are ranked (a full
    /// export as the base); more changes than that are read twice instead
    #[arg(long, default_value_t = 192, value_name = "MIB")]
    changes_memory: usize,
    /// Take over the destination's lease from this run, which you know to be dead
    #[arg(long, value_name = "RUN")]
    break_lease: Option<String>,
    /// Print only errors
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
    let (dest, sources) = a.locations.split_last().expect("clap requires two locations");
    let dest = rt.block_on(Location::parse(dest))?;
    let base = rt.block_on(Location::parse(&sources[0]))?;
    let changes: Vec<Location> =
        sources[1..].iter().map(|s| rt.block_on(Location::parse(s))).collect::<crate::Result<_>>()?;
    let progress = std::sync::Arc::new(crate::pipeline::Progress::default());
    let opts = MergeOptions {
        key: a.key.clone(),
        schema: a.schema.as_deref().map(Schema::load).transpose()?,
        first_items: a.first_items,
        format: a.format,
        partition_by: a.partition_by.clone(),
        compression: a.compression.clone(),
        jobs: a.jobs.unwrap_or_else(crate::pipeline::default_jobs).max(1),
        max_open_files: a.max_open_files,
        worker_memory_mib: a.worker_memory,
        changes_memory_mib: a.changes_memory,
        max_rows_per_file: a.max_rows_per_file,
        spill_dir: a.spill_dir.clone(),
        progress: Some(progress.clone()),
        ..Default::default()
    };
    let job = format!("merge into {}", a.format.extension());
    let summary = with_lease(&dest, &job, a.break_lease.as_deref(), rt.handle(), |_| {
        let plan = rt.block_on(merge::plan(&base, &changes, &dest, a.format))?;
        if !a.quiet && !a.json {
            for s in &plan.skipped {
                eprintln!("left out {s}");
            }
        }
        // A bar over the base's items when the base is an export (a dataset base is not counted).
        let bar = match plan.base_export() {
            Some(e) => items_bar(e, a.quiet || a.json, "merging"),
            None => indicatif::ProgressBar::hidden(),
        };
        let ticker = tick(&bar, &progress);
        let r = merge::run(plan, &dest, &opts, rt);
        ticker.stop();
        r
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary).expect("serializable"));
    } else if !a.quiet {
        print_summary(&summary);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn print_summary(s: &MergeSummary) {
    for r in &s.finished_interrupted {
        println!("finished the interrupted commit of run {r}");
    }
    if !s.written {
        println!("nothing new to apply: {} is current to {} (nothing was written)", s.destination, s.current_to);
        return;
    }
    println!(
        "merged {} + {} incremental export(s) ({} change records) into {}: {} rows in {} file(s), {} partition(s), {}; current to {} ({:.1} s)",
        s.base,
        s.applied.len(),
        s.change_records,
        s.destination,
        s.rows,
        s.files,
        s.partitions,
        human_bytes(s.bytes_out),
        s.current_to,
        s.elapsed_seconds
    );
    if !s.key.is_empty() {
        println!("key: {}", s.key.join(", "));
    }
    let st = &s.stages;
    if st.merge_write_seconds > 0.0 {
        println!(
            "time: schema {:.2} s, planning {:.2} s, merge+write {:.2} s, finishing files {:.2} s, commit {:.2} s",
            st.schema_seconds, st.plan_seconds, st.merge_write_seconds, st.finish_files_seconds, st.commit_seconds
        );
    }
}
