//! What several subcommands share: opening a source, progress bars, sizes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::Result;
use crate::export::{self, Export};
use crate::pipeline::Progress;
use crate::schema::Schema;
use crate::store::Location;

/// Options of every command that reads an export.
#[derive(clap::Args, Debug, Clone)]
pub struct SourceArgs {
    /// The export: its folder, its manifest-summary.json, or a prefix holding AWSDynamoDB/ (local path or s3://)
    pub src: String,
    /// Which export to read when the location holds several (default: the newest complete full export)
    #[arg(long)]
    pub export_id: Option<String>,
    /// Worker threads (default: one per core)
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
}

impl SourceArgs {
    pub fn jobs(&self) -> usize {
        self.jobs.unwrap_or_else(crate::pipeline::default_jobs).max(1)
    }

    pub fn open(&self, rt: &tokio::runtime::Runtime) -> Result<Export> {
        rt.block_on(async {
            let loc = Location::parse(&self.src).await?;
            export::open_at(&loc, self.export_id.as_deref()).await
        })
    }
}

/// Options of every command that decodes items.
#[derive(clap::Args, Debug, Clone)]
pub struct DecodeArgs {
    /// Apply this schema file instead of inferring one (see schemas/README.md)
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// Infer the schema from the first N items only (values that do not fit go to the catch-all column)
    #[arg(long)]
    pub sample: Option<u64>,
    /// An M with more distinct keys than this becomes a map column
    #[arg(long, default_value_t = 100)]
    pub map_threshold: usize,
    /// At most this many top-level columns; further attributes go to the _extra column, counted
    #[arg(long, default_value_t = crate::schema::infer::DEFAULT_MAX_COLUMNS)]
    pub max_columns: usize,
    /// Refuse lines longer than this many bytes, naming the file and line (DynamoDB items are at most 400 KB)
    #[arg(long, default_value_t = crate::schema::infer::DEFAULT_MAX_LINE_BYTES, value_name = "BYTES")]
    pub max_line_bytes: usize,
}

impl DecodeArgs {
    /// The schema to decode with: the file's, or inferred from the export.
    pub fn schema(&self, export: &Export, rt: &tokio::runtime::Runtime, jobs: usize, quiet: bool) -> Result<Schema> {
        if let Some(p) = &self.schema {
            return Schema::load(p);
        }
        self.infer(export, rt, jobs, quiet).map(|i| i.schema)
    }

    /// Infer the schema, with what could not be read.
    pub fn infer(
        &self,
        export: &Export,
        rt: &tokio::runtime::Runtime,
        jobs: usize,
        quiet: bool,
    ) -> Result<crate::pipeline::Inferred> {
        let progress = Arc::new(Progress::default());
        let bar = items_bar(export, quiet, "inferring schema");
        let ticker = tick(&bar, &progress);
        let run =
            crate::pipeline::InferRun { options: self.infer_options(), sample: self.sample, jobs, envelope: None };
        let r = crate::pipeline::infer_schema_report(export, rt.handle(), &run, &progress);
        ticker.stop();
        r
    }

    pub fn infer_options(&self) -> crate::schema::infer::InferOptions {
        crate::schema::infer::InferOptions {
            map_threshold: self.map_threshold,
            max_columns: self.max_columns,
            max_line_bytes: self.max_line_bytes,
        }
    }
}

/// A progress bar over the export's items, hidden when stderr is not a terminal.
pub fn items_bar(export: &Export, quiet: bool, what: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(export.summary.item_count);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:30}} {{human_pos}}/{{human_len}} items  {{per_sec}}  {{msg}} ETA {{eta}}"
        ))
        .unwrap(),
    );
    bar
}

/// Updates a bar from live counters until stopped.
pub struct Ticker {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
    bar: ProgressBar,
}

pub fn tick(bar: &ProgressBar, progress: &Arc<Progress>) -> Ticker {
    use std::sync::atomic::Ordering;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handle = (!bar.is_hidden()).then(|| {
        let (bar, progress, stop) = (bar.clone(), progress.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                bar.set_position(progress.items.load(Ordering::Relaxed));
                let read = human_bytes(progress.uncompressed_bytes.load(Ordering::Relaxed));
                match progress.spilled_rows.load(Ordering::Relaxed) {
                    0 => bar.set_message(format!("{read} read")),
                    n => bar.set_message(format!(
                        "{read} read; writing spilled partitions: {}/{n} rows",
                        progress.spilled_rows_written.load(Ordering::Relaxed)
                    )),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    });
    Ticker { stop, handle, bar: bar.clone() }
}

impl Ticker {
    pub fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.bar.finish_and_clear();
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// Print a table with aligned columns.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(w - c.chars().count()));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(headers.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}
