//! `dynolake recover`: finish or remove what an interrupted run left in a destination.

use std::process::ExitCode;

use super::CliResult;
use crate::store::Location;
use crate::write::commit::{self, JobKey, Mode};

/// Finish (default) or discard the interrupted commit of a dead run, and
/// delete staging leftovers, under the destination's lease.
///
/// A conversion killed during its commit leaves a pending commit that only a
/// rerun of the same conversion finishes by itself; any other job refuses the
/// destination until it is recovered. Finishing makes the interrupted run's
/// data visible; --discard removes every file it had moved into place.
///
/// Examples:
///   dynolake recover s3://lake/orders/
///   dynolake recover /data/orders --discard
///   dynolake recover s3://lake/orders/ --break-lease 20261129T101500123Z-3f2a9c01
///
/// Exit status: 0 ok (also when there was nothing to do); 1 storage failure; 3 the lease is held.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The dataset's location (local path or s3://bucket/prefix)
    dest: String,
    /// Remove the interrupted commit instead of finishing it
    #[arg(long)]
    discard: bool,
    /// Take over the lease of this run, which you know to be dead
    #[arg(long, value_name = "RUN")]
    break_lease: Option<String>,
    /// Print what was done as JSON
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize, Default)]
struct Recovered {
    finished: Vec<String>,
    discarded: Vec<String>,
    cleaned: Vec<String>,
}

impl Args {
    pub fn json(&self) -> bool {
        self.json
    }
}

pub fn run(a: Args, rt: &tokio::runtime::Runtime) -> CliResult {
    let dest = rt.block_on(Location::parse(&a.dest))?;
    let done = crate::convert::with_lease(&dest, "recover", a.break_lease.as_deref(), rt.handle(), |_| {
        rt.block_on(async {
            let mut done = Recovered::default();
            if a.discard {
                let (pending, _) = commit::interrupted(&dest).await?;
                for record in &pending {
                    match commit::discard(&dest, record).await? {
                        true => done.discarded.push(describe(record)),
                        false => done.finished.push(describe(record)),
                    }
                }
            }
            // Finishes what is left (none after --discard) and removes leftovers.
            let prepared = commit::prepare(&dest, Mode::Append, None).await?;
            done.finished.extend(prepared.rolled_forward.iter().map(describe));
            done.cleaned = prepared.cleaned;
            Ok(done)
        })
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&done).expect("json"));
    } else {
        for f in &done.finished {
            eprintln!("finished the commit of {f}");
        }
        for d in &done.discarded {
            eprintln!("discarded the commit of {d}");
        }
        if !done.cleaned.is_empty() {
            eprintln!("removed staging leftovers of run(s) {}", done.cleaned.join(", "));
        }
        if done.finished.is_empty() && done.discarded.is_empty() && done.cleaned.is_empty() {
            eprintln!("{}: nothing to recover", dest.url);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(r: &commit::CommitRecord) -> String {
    format!("run {} ({}; {} rows in {} files)", r.run_id, JobKey::of(r).describe(), r.rows, r.files.len())
}
