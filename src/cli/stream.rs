//! `dynolake stream follow`: a table's DynamoDB stream into change files.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use super::CliResult;
use super::export::parse_duration;
use crate::live::stream::{self, FollowOptions, From};
use crate::store::Location;

/// Follow a table's DynamoDB stream.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Subcommand, Debug)]
enum Sub {
    Follow(Follow),
}

impl Args {
    pub fn json(&self) -> bool {
        match &self.command {
            Sub::Follow(f) => f.json,
        }
    }
}

/// Read every shard of the table's stream into files of Streams records that `merge` and `sql` read.
///
/// Records are flushed every --flush-every into DEST/<n>/<flush>.jsonl.gz (gzip JSON Lines, as Lambda
/// receives them), each flush followed by the checkpoint DEST/_dynolake/stream.json (each shard's last
/// sequence number). Restarted, it continues from the checkpoint without loss or duplication. A
/// parent shard's records are read before its children's. SIGINT / SIGTERM flush and stop.
///
/// Examples:
///   dynolake stream follow orders s3://bucket/changes/orders/
///   dynolake merge s3://bucket/exports/orders/ s3://bucket/changes/orders/ s3://lake/orders/
///
/// Exit status: 0 stopped after a flush; 1 an AWS error, or records past the stream's retention; 2 usage
/// error (the table has no stream).
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
struct Follow {
    /// The table's name or ARN
    table: String,
    /// Where the change files go (local path or s3://bucket/prefix)
    dest: String,
    /// Where a first run starts in shards open now: the oldest records kept (24 hours) or only new ones
    #[arg(long, value_enum, default_value_t = From::TrimHorizon)]
    from: From,
    /// How often buffered records are written: 30s, 1m, 5m
    #[arg(long, value_parser = parse_duration, default_value = "1m")]
    flush_every: Duration,
    /// Stop once a round over all shards finds no new record (for batch jobs and tests)
    #[arg(long)]
    until_idle: bool,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
    #[arg(long, short = 'q')]
    quiet: bool,
}

pub fn run(a: Args, rt: &tokio::runtime::Runtime) -> CliResult {
    crate::cancel::install(rt);
    let Sub::Follow(f) = a.command;
    let dest = rt.block_on(Location::parse(&f.dest))?;
    let cfg = rt.block_on(crate::live::sdk_config());
    let (ddb, streams) = (crate::live::dynamodb(&cfg), crate::live::streams(&cfg));
    let opts =
        FollowOptions { from: f.from, flush_every: f.flush_every, until_idle: f.until_idle, ..Default::default() };
    let chatty = !f.quiet && !f.json;
    let mut shown = 0;
    let report = rt.block_on(stream::follow(&ddb, &streams, &f.table, &dest, &opts, |r| {
        if chatty {
            for file in &r.files[shown..] {
                eprintln!("wrote {file} ({} records so far)", r.records);
            }
        }
        shown = r.files.len();
    }))?;
    if f.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("serializable"));
    } else if !f.quiet {
        eprintln!(
            "{} records in {} file(s); {} shard(s), {} finished; checkpoint in {}",
            report.records,
            report.files.len(),
            report.shards,
            report.shards_finished,
            dest.child(stream::CHECKPOINT).url
        );
    }
    Ok(ExitCode::SUCCESS)
}
