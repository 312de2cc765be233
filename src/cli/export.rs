//! `dynolake export`: start, describe, list, wait for and watch native exports.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use super::CliResult;
use super::common::print_table;
use crate::Error;
use crate::live::exports::{self, ExportInfo, Format, Incremental, Polling, StartRequest, View};

/// Native DynamoDB exports to S3: start them, follow them, watch them from a scheduler.
///
/// Exports need point-in-time recovery on the table; `start` checks it first (--enable-pitr turns it on).
/// Region, credentials and profiles come from the standard AWS chain; AWS_ENDPOINT_URL(_DYNAMODB)
/// points at another endpoint.
///
/// Examples:
///   dynolake export start --table orders --to s3://bucket/exports/orders --wait
///   dynolake export start --table orders --table users --to s3://bucket/exports
///   dynolake export start --table orders --to s3://bucket/exports/orders --incremental --since-last --wait \
///       --merge s3://lake/orders/
///   dynolake export start --table orders --to s3://bucket/exports/orders --wait --convert s3://lake/orders/ \
///       -- --partition-by status --mode overwrite
///   dynolake export watch --table orders --max-age 26h --max-duration 2h
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Subcommand, Debug)]
enum Sub {
    Start(Start),
    Status(Status),
    List(List),
    Wait(Wait),
    Watch(Watch),
}

impl Args {
    pub fn json(&self) -> bool {
        match &self.command {
            Sub::Start(a) => a.json,
            Sub::Status(a) => a.json,
            Sub::List(a) => a.json,
            Sub::Wait(a) => a.json,
            Sub::Watch(a) => a.json,
        }
    }
}

/// Start an export of one table or several (one export each).
///
/// Exit status: 0 started (with --wait: completed, and converted or merged when asked); 1 an AWS error,
/// or with --wait an export that failed (its failure code and message are printed); 2 usage error
/// (point-in-time recovery off, a window DynamoDB would refuse).
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
struct Start {
    /// Table name or ARN; repeat for several tables
    #[arg(long = "table", required = true)]
    tables: Vec<String>,
    /// Where the export goes: s3://bucket/prefix
    #[arg(long)]
    to: String,
    #[arg(long, value_enum, default_value_t = Format::DynamodbJson)]
    format: Format,
    /// A full export's point in time (RFC 3339; default: now)
    #[arg(long, value_name = "TIME", conflicts_with = "incremental")]
    at: Option<String>,
    /// An incremental export of the changes between --from and --until (or --since-last)
    #[arg(long)]
    incremental: bool,
    /// Window start (RFC 3339), inclusive
    #[arg(long, value_name = "TIME", requires = "incremental")]
    from: Option<String>,
    /// Window end (RFC 3339, exclusive; default: now)
    #[arg(long = "until", alias = "to-time", value_name = "TIME", requires = "incremental")]
    until: Option<String>,
    /// Start where the newest export under --to ended (at most 24 hours, up to now)
    #[arg(long, requires = "incremental", conflicts_with = "from")]
    since_last: bool,
    #[arg(long, value_enum, default_value_t = View::NewAndOld)]
    view: View,
    /// Turn point-in-time recovery on when it is off
    #[arg(long)]
    enable_pitr: bool,
    /// Wait until the export(s) finish
    #[arg(long)]
    wait: bool,
    /// With --wait: convert the finished full export into this dataset; convert's options follow `--`
    #[arg(long, value_name = "DEST", requires = "wait", conflicts_with = "merge")]
    convert: Option<String>,
    /// With --wait: merge the exports under --to (the chain ending with this one) into this dataset; merge's
    /// options follow `--`
    #[arg(long, value_name = "DEST", requires = "wait")]
    merge: Option<String>,
    /// First wait between polls, in seconds (then 1.5× longer each time, up to a minute)
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    poll: f64,
    #[arg(long)]
    json: bool,
    /// Options for --convert or --merge
    #[arg(last = true, value_name = "OPTIONS")]
    then: Vec<String>,
}

/// Describe an export.
#[derive(clap::Args, Debug)]
struct Status {
    /// The export's ARN
    arn: String,
    #[arg(long)]
    json: bool,
}

/// List exports (of one table), newest first.
#[derive(clap::Args, Debug)]
struct List {
    #[arg(long)]
    table: Option<String>,
    #[arg(long)]
    json: bool,
}

/// Wait for an export to finish, showing its progress. Exit status 1 if it failed.
#[derive(clap::Args, Debug)]
struct Wait {
    arn: String,
    /// First wait between polls, in seconds (then 1.5× longer each time, up to a minute)
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    poll: f64,
    #[arg(long)]
    json: bool,
}

/// Check a table's exports for a scheduler or an alarm.
///
/// Exit status: 0 healthy; 4 the newest export failed; 5 no completed export within --max-age;
/// 6 an export has been running longer than --max-duration; 1 the check itself failed.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
struct Watch {
    #[arg(long)]
    table: String,
    /// The newest completed export must be at most this old (its point in time): 26h, 90m, 2d
    #[arg(long, value_parser = parse_duration, default_value = "26h")]
    max_age: Duration,
    /// An export running longer than this is overdue
    #[arg(long, value_parser = parse_duration, default_value = "2h")]
    max_duration: Duration,
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args, rt: &tokio::runtime::Runtime) -> CliResult {
    crate::cancel::install(rt);
    let cfg = rt.block_on(crate::live::sdk_config());
    let client = crate::live::dynamodb(&cfg);
    match a.command {
        Sub::Start(s) => start(s, &client, rt),
        Sub::Status(s) => {
            let info = rt.block_on(exports::describe(&client, &s.arn))?;
            print_info(&info, s.json);
            Ok(ExitCode::SUCCESS)
        }
        Sub::List(l) => {
            let arn = match &l.table {
                Some(t) => Some(rt.block_on(exports::table_arn(&client, t))?),
                None => None,
            };
            let all = rt.block_on(exports::list(&client, arn.as_deref()))?;
            if l.json {
                println!("{}", serde_json::to_string_pretty(&all).expect("serializable"));
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|e| {
                        vec![
                            e.export_arn.clone(),
                            e.status.clone(),
                            e.export_type.clone().unwrap_or_default(),
                            e.start_time.clone().unwrap_or_default(),
                            e.item_count.map(|n| n.to_string()).unwrap_or_default(),
                        ]
                    })
                    .collect();
                print!("{}", print_table(&["export", "status", "type", "started", "items"], &rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        Sub::Wait(w) => {
            let info = wait(&client, &w.arn, w.poll, w.json, rt)?;
            print_info(&info, w.json);
            if info.failed() {
                return Err(exports::failure(&info).into());
            }
            Ok(ExitCode::SUCCESS)
        }
        Sub::Watch(w) => {
            let arn = rt.block_on(exports::table_arn(&client, &w.table))?;
            let all = rt.block_on(exports::list(&client, Some(&arn)))?;
            let verdict = exports::judge(&arn, &all, w.max_age, w.max_duration, Utc::now());
            if w.json {
                println!("{}", serde_json::to_string_pretty(&verdict).expect("serializable"));
            } else {
                println!("{}: {:?}: {}", w.table, verdict.state, verdict.message);
            }
            Ok(ExitCode::from(verdict.state.exit_code()))
        }
    }
}

fn start(s: Start, client: &aws_sdk_dynamodb::Client, rt: &tokio::runtime::Runtime) -> CliResult {
    let (bucket, prefix) =
        s.to.strip_prefix("s3://")
            .map(|r| r.split_once('/').map_or((r, ""), |(b, p)| (b, p.trim_end_matches('/'))))
            .ok_or_else(|| Error::Usage(format!("--to {}: exports go to S3: give s3://bucket/prefix", s.to)))?;
    if (s.convert.is_some() || s.merge.is_some()) && s.tables.len() > 1 {
        return Err(Error::Usage("--convert and --merge take one --table".into()).into());
    }
    if s.convert.is_some() && s.incremental {
        return Err(Error::Usage("--convert takes a full export; apply incremental exports with --merge".into()).into());
    }
    then_command(&s, None)?;
    let now = Utc::now();
    let at = s.at.as_deref().map(|t| parse_time("--at", t)).transpose()?;
    let mut started = Vec::new();
    // Every table is checked (and its window worked out) before any export starts.
    let mut requests = Vec::new();
    for table in &s.tables {
        let arn = rt.block_on(exports::table_arn(client, table))?;
        let pitr_off = !rt.block_on(exports::pitr_enabled(client, &arn))?;
        if pitr_off && !s.enable_pitr {
            return Err(Error::Usage(exports::pitr_off_message(&arn)).into());
        }
        let incremental = if s.incremental {
            let from = match (&s.from, s.since_last) {
                (Some(f), _) => parse_time("--from", f)?,
                (None, true) => rt.block_on(async {
                    let loc = crate::store::Location::parse(&s.to).await?;
                    exports::last_end(&loc, &arn).await
                })?,
                (None, false) => return Err(Error::Usage("--incremental needs --from or --since-last".into()).into()),
            };
            let to = match &s.until {
                Some(t) => parse_time("--until", t)?,
                // Up to now, at most the longest window DynamoDB takes.
                None => now.min(from + exports::MAX_WINDOW),
            };
            exports::check_window(from, to, now)?;
            Some(Incremental { from, to, view: s.view })
        } else {
            None
        };
        let req = StartRequest {
            table_arn: arn.clone(),
            bucket: bucket.to_string(),
            prefix: Some(prefix.to_string()).filter(|p| !p.is_empty()),
            format: s.format,
            at,
            incremental,
        };
        requests.push((req, pitr_off));
    }
    for (req, pitr_off) in &requests {
        let name = crate::live::table_name(&req.table_arn);
        if *pitr_off {
            rt.block_on(exports::enable_pitr(client, &req.table_arn))?;
            if !s.json {
                eprintln!("turned on point-in-time recovery for {name}");
            }
        }
        let info = rt.block_on(exports::start(client, req))?;
        if !s.json {
            eprintln!("started export {} of {name}", info.export_arn);
        }
        started.push(info);
    }
    if !s.wait {
        if s.json {
            println!("{}", serde_json::to_string_pretty(&started).expect("serializable"));
        } else {
            for i in &started {
                println!("{}", i.export_arn);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut done = Vec::new();
    for i in &started {
        done.push(wait(client, &i.export_arn, s.poll, s.json, rt)?);
    }
    if s.json {
        println!("{}", serde_json::to_string_pretty(&done).expect("serializable"));
    }
    if let Some(failed) = done.iter().find(|d| d.failed()) {
        if !s.json {
            for d in &done {
                print_info(d, false);
            }
        }
        return Err(exports::failure(failed).into());
    }
    if !s.json {
        for d in &done {
            eprintln!(
                "export {} completed: {} items at {}",
                d.export_arn,
                d.item_count.unwrap_or(0),
                d.location.as_deref().unwrap_or(&s.to)
            );
        }
    }
    match then_command(&s, Some(done[0].export_id()))? {
        Then::Convert(a) => super::convert::run(*a, rt),
        Then::Merge(a) => super::merge::run(*a, rt),
        Then::Nothing => Ok(ExitCode::SUCCESS),
    }
}

enum Then {
    Convert(Box<super::convert::Args>),
    Merge(Box<super::merge::Args>),
    Nothing,
}

/// The `--convert` / `--merge` command with the options after `--`; parsed
/// before the export starts too (with no id yet), so a typo is found at once
/// and not after an hour's wait.
fn then_command(s: &Start, export_id: Option<&str>) -> Result<Then, Error> {
    let args = |cmd: &str, locations: Vec<String>| -> Vec<String> {
        std::iter::once(format!("dynolake {cmd}")).chain(locations).chain(s.then.iter().cloned()).collect()
    };
    let bad = |e: clap::Error| Error::Usage(format!("the options after `--`: {}", e.render().to_string().trim()));
    if let Some(dest) = &s.convert {
        let id = export_id.unwrap_or("not-started-yet").to_string();
        let a = ConvertCli::try_parse_from(args("convert", vec![s.to.clone(), dest.clone(), "--export-id".into(), id]))
            .map_err(bad)?;
        return Ok(Then::Convert(Box::new(a.args)));
    }
    if let Some(dest) = &s.merge {
        let a = MergeCli::try_parse_from(args("merge", vec![s.to.clone(), dest.clone()])).map_err(bad)?;
        return Ok(Then::Merge(Box::new(a.args)));
    }
    if !s.then.is_empty() {
        return Err(Error::Usage(format!("options after `--` ({}) go with --convert or --merge", s.then.join(" "))));
    }
    Ok(Then::Nothing)
}

#[derive(Parser)]
struct ConvertCli {
    #[command(flatten)]
    args: super::convert::Args,
}

#[derive(Parser)]
struct MergeCli {
    #[command(flatten)]
    args: super::merge::Args,
}

/// Poll with backoff, showing status and elapsed time (and items once known).
fn wait(
    client: &aws_sdk_dynamodb::Client,
    arn: &str,
    first_poll: f64,
    quiet: bool,
    rt: &tokio::runtime::Runtime,
) -> Result<ExportInfo, super::Failure> {
    use std::io::IsTerminal;
    let bar = if quiet || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(Duration::from_millis(200));
        b
    };
    let polling = Polling { first: Duration::from_secs_f64(first_poll.max(0.01)), ..Default::default() };
    let began = Instant::now();
    let mut last_status = String::new();
    let info = rt.block_on(exports::wait(client, arn, polling, |i| {
        let items = i.item_count.filter(|n| *n > 0).map(|n| format!(", {n} items")).unwrap_or_default();
        let line = format!("{}: {}{items}", i.export_id(), i.status);
        bar.set_message(format!("{line} ({} waited)", exports::human_duration(began.elapsed())));
        if bar.is_hidden() && !quiet && line != last_status {
            eprintln!("{line} after {}", exports::human_duration(began.elapsed()));
        }
        last_status = line;
    }));
    bar.finish_and_clear();
    Ok(info?)
}

fn print_info(i: &ExportInfo, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(i).expect("serializable"));
        return;
    }
    let mut rows = vec![vec!["export".to_string(), i.export_arn.clone()], vec!["status".into(), i.status.clone()]];
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            rows.push(vec![k.to_string(), v]);
        }
    };
    add("table", i.table_arn.clone());
    add("type", i.export_type.clone());
    add("format", i.format.clone());
    add("started", i.start_time.clone());
    add("ended", i.end_time.clone());
    add("point in time", i.export_time.clone());
    add("from", i.from_time.clone());
    add("to", i.to_time.clone());
    add("items", i.item_count.map(|n| n.to_string()));
    add("billed bytes", i.billed_size_bytes.map(|n| n.to_string()));
    add("location", i.location.clone());
    add("manifest", i.manifest.clone());
    add("failure code", i.failure_code.clone());
    add("failure message", i.failure_message.clone());
    let width = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
    for r in rows {
        println!("{:width$}  {}", r[0], r[1]);
    }
}

fn parse_time(what: &str, s: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Usage(format!("{what} {s}: not an RFC 3339 time such as 2026-11-30T06:00:00Z ({e})")))
}

/// `90s`, `15m`, `26h`, `2d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let n: f64 = n.parse().map_err(|_| format!("`{s}`: expected a number and a unit (s, m, h, d), such as 26h"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}`; use s, m, h or d")),
    };
    Ok(Duration::from_secs_f64(secs))
}
