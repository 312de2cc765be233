//! `dynolake generate`: write a synthetic export that looks exactly like AWS's.

use std::path::PathBuf;
use std::process::ExitCode;

use super::CliResult;
use crate::generate::{GenerateOptions, generate};

/// Write a deterministic DynamoDB export (an Orders table) for trying things out, tests and benchmarks.
///
/// OUT plays the role of the S3 bucket: the export lands in OUT/[PREFIX/]AWSDynamoDB/<ExportId>/.
///
/// Examples:
///   dynolake generate /tmp/exports --items 100000 --files 4
///   dynolake generate /tmp/exports --prefix backups/orders --incremental
///   dynolake generate /tmp/exports --format ion
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The folder that plays the bucket
    out: PathBuf,
    #[arg(long, default_value_t = 1000)]
    items: u64,
    #[arg(long, default_value_t = 2)]
    files: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The S3 prefix the export sits under (default: none, s3Prefix is null)
    #[arg(long)]
    prefix: Option<String>,
    /// Empty data files to add (AWS writes one per empty table partition)
    #[arg(long, default_value_t = 1)]
    empty_files: usize,
    /// Also write an incremental export of the six hours after the full one
    #[arg(long)]
    incremental: bool,
    /// Add attributes with awkward names (dots, spaces, unicode, reserved words, case collisions)
    #[arg(long)]
    awkward_names: bool,
    #[arg(long, default_value = "Orders")]
    table: String,
    /// The export's output format: DynamoDB JSON, or Ion text (as `outputFormat: ION` exports are written)
    #[arg(long, value_enum, default_value_t = Format::DynamodbJson)]
    format: Format,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Format {
    DynamodbJson,
    Ion,
}

pub fn run(a: Args) -> CliResult {
    let opts = GenerateOptions {
        items: a.items,
        files: a.files,
        seed: a.seed,
        prefix: a.prefix,
        empty_files: a.empty_files,
        incremental: a.incremental,
        table: a.table,
        awkward_names: a.awkward_names,
        format: match a.format {
            Format::DynamodbJson => crate::export::OutputFormat::DynamodbJson,
            Format::Ion => crate::export::OutputFormat::Ion,
        },
        ..GenerateOptions::default()
    };
    let g = generate(&a.out, &opts)?;
    println!("{}", g.full_export_dir.display());
    if let Some(id) = g.incremental_export_id {
        println!("{}", g.root.join("AWSDynamoDB").join(id).display());
    }
    Ok(ExitCode::SUCCESS)
}
