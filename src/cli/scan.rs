//! `dynolake scan`: a live table to a dataset through a segmented Scan.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::CliResult;
use super::convert::{OutputArgs, convert_export, report};
use crate::convert::ConvertSummary;
use crate::live::scan::{self, ScanOptions, ScanProgress, ScanReport};
use crate::store::Location;
use crate::write::commit::Mode;

/// Export a live table with a parallel Scan, then convert it like an export.
///
/// The read capacity the scan may use is a budget (--max-rcu, or --max-read-percent of the
/// table's provisioned reads) held across all segments; throttled requests are retried with
/// backoff. Each segment checkpoints under DEST/_dynolake/scan/: run the same command again
/// after an interruption and the scan continues where it stopped. The scanned items are staged
/// there as a DynamoDB JSON export, converted with `convert`'s options and commit, and removed.
///
/// Examples:
///   dynolake scan orders s3://lake/orders/ --segments 8 --max-read-percent 25
///   dynolake scan orders /tmp/orders --max-rcu 100 --partition-by status
///
/// Exit status: 0 ok; 1 an AWS or data error; 2 usage error; 3 DEST is locked by another run.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The table's name or ARN
    table: String,
    /// Where to write the dataset (local path or s3://bucket/prefix)
    dest: String,
    /// Parallel Scan segments (a resumed scan keeps its own count)
    #[arg(long, default_value_t = 4)]
    segments: u32,
    /// Read capacity units per second for the whole scan
    #[arg(long, value_name = "RCU")]
    max_rcu: Option<f64>,
    /// Percent of the table's provisioned read capacity (or an on-demand table's maximum read throughput)
    #[arg(long, value_name = "PERCENT")]
    max_read_percent: Option<f64>,
    /// Strongly consistent reads (twice the capacity)
    #[arg(long)]
    consistent: bool,
    /// Items per Scan request (default: sized to the capacity budget, else DynamoDB's 1 MB pages)
    #[arg(long, value_name = "N")]
    page_size: Option<i32>,
    /// Uncompressed bytes per staged data file (and so between checkpoints)
    #[arg(long, hide = true, default_value_t = 32 << 20)]
    part_size: usize,
    /// Worker threads of the conversion (default: one per core)
    #[arg(long, short = 'j')]
    jobs: Option<usize>,
    #[command(flatten)]
    out: OutputArgs,
}

impl Args {
    pub fn json(&self) -> bool {
        self.out.json
    }
}

#[derive(Serialize)]
struct Summary<'a> {
    scan: &'a ScanReport,
    #[serde(flatten)]
    convert: Option<&'a ConvertSummary>,
}

pub fn run(a: Args, rt: &tokio::runtime::Runtime) -> CliResult {
    crate::cancel::install(rt);
    let dest = rt.block_on(Location::parse(&a.dest))?;
    let quiet = a.out.quiet || a.out.json;
    let cfg = rt.block_on(crate::live::sdk_config());
    let client = crate::live::dynamodb(&cfg);
    let table = rt.block_on(scan::describe(&client, &a.table))?;
    let max_rcu = scan::budget(&table, a.max_rcu, a.max_read_percent)?;
    if a.out.mode == Mode::Error {
        // Refused before any capacity is spent, not after the scan.
        if let Some(last) = rt.block_on(crate::write::commit::read_commits(&dest))?.last() {
            return Err(crate::Error::Usage(format!(
                "{} already holds a dataset (committed by run {}); use --mode overwrite or --mode append",
                dest.url, last.run_id
            ))
            .into());
        }
    }
    let opts = ScanOptions {
        segments: a.segments.max(1),
        max_rcu,
        consistent: a.consistent,
        page_items: a.page_size,
        part_bytes: a.part_size.max(1),
    };
    let progress = Arc::new(ScanProgress::default());
    let bar = bar(quiet, &table, max_rcu);
    let ticker = ticker(rt, &bar, &progress);
    let job = format!("scan {}", table.name);
    let scanned = crate::convert::with_lease(&dest, &job, a.out.break_lease.as_deref(), rt.handle(), |_| {
        rt.block_on(scan::scan_to_export(client, table.clone(), &dest, opts, progress.clone()))
    });
    ticker.abort();
    bar.finish_and_clear();
    let (export, scanned) = scanned?;
    if !quiet {
        let resumed = match scanned.resumed_segments {
            0 => String::new(),
            n => format!(" ({n} segment(s) continued from a checkpoint)"),
        };
        eprintln!(
            "scanned {} items of {} in {:.1} s with {} segments, {:.1} read capacity units{resumed}",
            scanned.items, scanned.table, scanned.scan_seconds, scanned.segments, scanned.consumed_capacity
        );
    }
    let jobs = a.jobs.unwrap_or_else(crate::pipeline::default_jobs).max(1);
    let converted = convert_export(&export, dest.clone(), &a.out, jobs, rt)?;
    rt.block_on(scan::remove_staging(&dest))?;
    if a.out.json {
        let s = Summary { scan: &scanned, convert: converted.as_ref() };
        println!("{}", serde_json::to_string_pretty(&s).expect("serializable"));
    } else if let Some(c) = &converted {
        report(&a.out, c);
    }
    Ok(ExitCode::SUCCESS)
}

fn bar(quiet: bool, table: &scan::TableInfo, max_rcu: Option<f64>) -> ProgressBar {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match table.item_count.filter(|n| *n > 0) {
        Some(n) => ProgressBar::new(n as u64),
        None => ProgressBar::no_length(),
    };
    let limit = max_rcu.map(|r| format!(" of {r} RCU/s")).unwrap_or_default();
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "scanning {} {{bar:30}} {{human_pos}}/~{{human_len}} items  {{per_sec}}  {{msg}}{limit}",
            table.name
        ))
        .unwrap(),
    );
    bar
}

fn ticker(rt: &tokio::runtime::Runtime, bar: &ProgressBar, p: &Arc<ScanProgress>) -> tokio::task::JoinHandle<()> {
    let (bar, p) = (bar.clone(), p.clone());
    let started = std::time::Instant::now();
    rt.spawn(async move {
        loop {
            bar.set_position(p.items.load(Ordering::Relaxed));
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!("{:.0} RCU, {:.1} RCU/s", p.units(), p.units() / secs));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}
