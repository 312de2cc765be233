//! `dynolake inspect`: what an export is, and with `--verify`, whether it is whole.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use super::CliResult;
use super::common::{human_bytes, print_table};
use crate::export::{self, Export, ExportInfo, ExportType, ManifestSummary};
use crate::read::verify::{VerifyReport, verify};
use crate::store::Location;

/// Show an export (or every export under a prefix); --verify reads every data file once.
///
/// Examples:
///   dynolake inspect examples/orders/AWSDynamoDB/01717210800042-aa17a4ad
///   dynolake inspect s3://my-bucket/exports/ --json
///   dynolake inspect s3://my-bucket/exports/ --export-id 01717210800042-aa17a4ad --verify
///
/// Exit status: 0 ok, 1 verification or data failure, 2 usage error.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    source: super::common::SourceArgs,
    /// Stream every data file: MD5 against the manifest, lines against itemCount, totals against the summary
    #[arg(long)]
    verify: bool,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, rt: &tokio::runtime::Runtime) -> CliResult {
    let loc = rt.block_on(Location::parse(&args.source.src))?;
    let exports = rt.block_on(export::discover(&loc))?;
    let chosen: Vec<ExportInfo> = match (&args.source.export_id, exports.len()) {
        (Some(id), _) => vec![export::choose(&exports, Some(id))?],
        (None, 1) => vec![export::choose(&exports, None)?],
        (None, _) => {
            if !args.json {
                print!("{}", list_table(&exports));
            }
            exports.iter().filter(|e| e.is_complete() && args.verify).cloned().collect()
        }
    };
    let listing = args.source.export_id.is_none() && exports.len() > 1;
    let mut ok = true;
    let mut out = Vec::new();
    for info in &chosen {
        let export = rt.block_on(export::open(&loc, info))?;
        let report = if args.verify {
            let done = AtomicU64::new(0);
            let bar = bytes_bar(&export, args.json);
            let r = verify(&export, rt.handle(), args.source.jobs(), &|n| {
                bar.set_position(done.fetch_add(n, Ordering::Relaxed) + n);
            })?;
            bar.finish_and_clear();
            Some(r)
        } else {
            None
        };
        ok &= export.manifest_problems.is_empty() && report.as_ref().is_none_or(VerifyReport::ok);
        if args.json {
            out.push(export_json(&export, report.as_ref()));
        } else {
            if listing {
                println!();
            }
            print!("{}", details(&export, report.as_ref()));
        }
    }
    if args.json {
        let v = if listing {
            json!({ "exports": exports.iter().map(info_json).collect::<Vec<_>>(), "verified": out })
        } else {
            out.pop().unwrap_or(Value::Null)
        };
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn bytes_bar(export: &Export, quiet: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(export.compressed_bytes());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "verifying {bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap(),
    );
    bar
}

fn kind(s: &ManifestSummary) -> &'static str {
    match s.export_type {
        ExportType::FullExport => "FULL",
        ExportType::IncrementalExport => "INCREMENTAL",
        ExportType::StreamRecords => "STREAMS RECORDS",
    }
}

fn when(s: &ManifestSummary) -> String {
    match s.export_type {
        ExportType::FullExport => s.export_time.clone().unwrap_or_default(),
        ExportType::IncrementalExport => format!(
            "{} .. {}",
            s.export_from_time.as_deref().unwrap_or("?"),
            s.export_to_time.as_deref().unwrap_or("?")
        ),
        ExportType::StreamRecords => String::new(),
    }
}

fn list_table(exports: &[ExportInfo]) -> String {
    let rows: Vec<Vec<String>> = exports
        .iter()
        .map(|e| match &e.summary {
            Some(s) => vec![
                e.id.clone(),
                s.table_name().to_string(),
                kind(s).into(),
                format!("{:?}", s.output_format).to_uppercase().replace("DYNAMODBJSON", "DYNAMODB_JSON"),
                "complete".into(),
                when(s),
                s.item_count.to_string(),
            ],
            None => vec![
                e.id.clone(),
                "?".into(),
                "?".into(),
                "?".into(),
                "IN PROGRESS".into(),
                String::new(),
                String::new(),
            ],
        })
        .collect();
    print_table(&["EXPORT ID", "TABLE", "TYPE", "FORMAT", "STATUS", "TIME", "ITEMS"], &rows)
}

fn details(e: &Export, report: Option<&VerifyReport>) -> String {
    let s = &e.summary;
    let empty = e.files.iter().filter(|f| f.entry.item_count == 0).count();
    let mut rows = vec![
        ("Table", s.table_name().to_string()),
        ("Export", e.id.clone()),
        ("Location", e.location.display(&e.dir)),
        ("Type", kind(s).to_string()),
        ("Format", format!("{:?}", s.output_format).to_uppercase().replace("DYNAMODBJSON", "DYNAMODB_JSON")),
    ];
    if let Some(v) = s.output_view {
        rows.push(("View", format!("{v:?}")));
    }
    match s.export_type {
        ExportType::FullExport => rows.push(("Export time", when(s))),
        ExportType::IncrementalExport => rows.push(("Window", when(s))),
        ExportType::StreamRecords => {}
    }
    rows.push(("Items", s.item_count.to_string()));
    rows.push(("Files", format!("{} ({empty} empty)", e.files.len())));
    rows.push(("Compressed", format!("{} ({} bytes)", human_bytes(e.compressed_bytes()), e.compressed_bytes())));
    let mut out = String::new();
    for (k, v) in rows {
        out.push_str(&format!("{k:<12} {v}\n"));
    }
    for p in &e.manifest_problems {
        out.push_str(&format!("PROBLEM      {p}\n"));
    }
    if let Some(r) = report {
        if r.ok() {
            out.push_str(&format!(
                "Verified     OK: {} files, {} items, {} uncompressed; checksums and counts match the manifest\n",
                r.files_checked,
                r.lines,
                human_bytes(r.uncompressed_bytes)
            ));
        } else {
            // A set: an export can list a million missing files.
            let shown: std::collections::HashSet<&str> = e.manifest_problems.iter().map(String::as_str).collect();
            for p in r.problems.iter().filter(|p| !shown.contains(p.as_str())) {
                out.push_str(&format!("FAILED       {p}\n"));
            }
        }
    }
    out
}

fn info_json(e: &ExportInfo) -> Value {
    json!({
        "export_id": e.id,
        "location": e.url,
        "complete": e.is_complete(),
        "table": e.summary.as_ref().map(|s| s.table_name()),
        "type": e.summary.as_ref().map(|s| s.export_type),
        "item_count": e.summary.as_ref().map(|s| s.item_count),
    })
}

fn export_json(e: &Export, report: Option<&VerifyReport>) -> Value {
    let s = &e.summary;
    json!({
        "table": s.table_name(),
        "table_arn": s.table_arn,
        "export_id": e.id,
        "export_arn": s.export_arn,
        "location": e.location.display(&e.dir),
        "type": s.export_type,
        "format": s.output_format,
        "view": s.output_view,
        "export_time": s.export_time,
        "export_from_time": s.export_from_time,
        "export_to_time": s.export_to_time,
        "item_count": s.item_count,
        "files": e.files.len(),
        "empty_files": e.files.iter().filter(|f| f.entry.item_count == 0).count(),
        "compressed_bytes": e.compressed_bytes(),
        "manifest_problems": e.manifest_problems,
        "verify": report,
        "ok": e.manifest_problems.is_empty() && report.is_none_or(VerifyReport::ok),
    })
}
