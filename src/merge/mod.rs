//! `dynolake merge`: a table's current state, from a full export (or a
//! dataset an earlier merge or convert wrote) and the incremental exports
//! after it.
//!
//! Two steps. [`plan`] finds the chain and checks it before anything is
//! read: each incremental window must start at or before the time the state
//! is current to (the base's export time, then the end of the last window
//! applied), so a gap is an error naming the missing interval; overlaps are
//! fine (the same change applied twice gives the same row); exports a
//! dataset already holds (its commit record says which) are left out, so a
//! daily run applies only what is new. [`run`] then reads the base once and
//! the changes once, as DataFusion tables over the raw exports: the latest
//! change per key (write time, then the later export) replaces the base's
//! row, or removes it; keys the base lacks are inserted. The result is
//! written like `convert` writes (Parquet, CSV, JSON Lines; partitioned;
//! committed atomically, local or S3), with the new [`MergeState`] in the
//! commit record.
//!
//! Memory: the base streams past the changed keys (a hash set, or a hash
//! anti-join's build side for a dataset base); the changes are ranked by a
//! sort that spills. So memory grows with the changes applied in one run, not
//! with the table. A full export as the base goes through `convert`'s own
//! pipeline rather than SQL (see `direct.rs`).
//!
//! With `--format delta` the result is a Delta Lake table instead (see `delta.rs`).

mod delta;
mod direct;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use serde::Serialize;

use crate::convert::{SpillReport, discard_staging, finish_sinks, peak_memory, source_info};
use crate::error::{Error, Result};
use crate::export::{self, Export, ExportType};
use crate::pipeline::{InferRun, Progress, infer_table_stats};
use crate::schema::Schema;
use crate::schema::infer::{InferOptions, TableStats};
use crate::sql::export_table::ExportTable;
use crate::store::Location;
use crate::write::commit::{self, CommitRecord, MergeState, Mode, SourceInfo};
use crate::write::files::{Format, ParquetSettings, parse_compression};
use crate::write::partition::PartitionSpec;
use crate::write::{DatasetSink, WriteOptions, partition_counts};

/// Where the state starts.
#[derive(Debug)]
pub enum Start {
    /// A full export: the first merge.
    Export(Box<Export>),
    /// A dataset (Parquet) an earlier merge or convert wrote, current to its record's time.
    Dataset { location: Location, record: Box<CommitRecord> },
    /// The Delta table an earlier `merge --format delta` wrote (changes are merged into it in place).
    Delta { location: Location, state: Box<crate::delta::TableState> },
}

/// What a merge will do, checked before anything is read.
#[derive(Debug)]
pub struct Plan {
    pub start: Start,
    /// The incremental exports to apply, in window order.
    pub changes: Vec<Export>,
    /// Exports found and left out, with the reason.
    pub skipped: Vec<String>,
    /// The state the destination holds now, if a merge wrote it.
    pub previous: Option<MergeState>,
    /// The time the result is current to.
    pub current_to: DateTime<Utc>,
    /// Runs whose interrupted commit was finished before planning.
    pub finished_interrupted: Vec<String>,
    /// Streams records written before this time are left out (the state already holds them, or newer).
    pub streams_from: DateTime<Utc>,
}

impl Plan {
    /// One full export alone, as it is (`convert --format delta`).
    pub fn export_alone(export: Export) -> Result<Plan> {
        if export.summary.export_type != ExportType::FullExport {
            return Err(Error::Usage(format!(
                "export {} is incremental: a Delta table starts from a full export (then `dynolake merge` applies \
                 incremental exports onto it)",
                export.id
            )));
        }
        let current_to = time(&format!("export {}", export.id), export.summary.export_time.as_deref())?;
        Ok(Plan {
            start: Start::Export(Box::new(export)),
            changes: Vec::new(),
            skipped: Vec::new(),
            previous: None,
            current_to,
            streams_from: current_to,
            finished_interrupted: Vec::new(),
        })
    }

    /// The full export the merge starts from, when it starts from one.
    pub fn base_export(&self) -> Option<&Export> {
        match &self.start {
            Start::Export(e) => Some(e),
            _ => None,
        }
    }

    /// Nothing to apply onto a dataset that is already the destination.
    pub fn is_nothing_new(&self, dest: &Location) -> bool {
        self.changes.is_empty()
            && matches!(&self.start, Start::Dataset { location, .. } | Start::Delta { location, .. } if location.url == dest.url)
    }

    /// Where the base came from (the full export, or what the dataset's record says).
    fn source(&self) -> SourceInfo {
        match &self.start {
            Start::Export(e) => source_info(e),
            Start::Dataset { record, .. } => record.source.clone(),
            Start::Delta { state, .. } => state.source.clone(),
        }
    }

    /// What the result holds once this plan's changes are applied.
    fn state_after(&self, key: &[String]) -> MergeState {
        let mut applied = match &self.start {
            Start::Dataset { record, .. } => record.merge.as_ref().map(|m| m.applied.clone()).unwrap_or_default(),
            Start::Delta { state, .. } => state.merge.applied.clone(),
            Start::Export(_) => Vec::new(),
        };
        applied.extend(self.changes.iter().map(|e| e.summary.export_arn.clone()));
        MergeState { key: key.to_vec(), base_export_arn: self.base_arn(), applied, current_to: iso(self.current_to) }
    }

    fn base_arn(&self) -> String {
        match &self.start {
            Start::Export(e) => e.summary.export_arn.clone(),
            Start::Dataset { record, .. } => {
                record.merge.as_ref().map_or(record.source.export_arn.clone(), |m| m.base_export_arn.clone())
            }
            Start::Delta { state, .. } => state.merge.base_export_arn.clone(),
        }
    }
}

fn time(what: &str, s: Option<&str>) -> Result<DateTime<Utc>> {
    let s = s.ok_or_else(|| Error::Usage(format!("{what} has no time")))?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Usage(format!("{what}: `{s}` is not an ISO-8601 time: {e}")))
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Complete exports at a location (none when it holds no export).
async fn exports_at(loc: &Location) -> Result<Vec<export::ExportInfo>> {
    match export::discover(loc).await {
        Ok(found) => Ok(found.into_iter().filter(|e| e.is_complete()).collect()),
        Err(Error::NotFound(_)) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Find and check the chain: `base` (a prefix holding a full export and
/// perhaps its incrementals, an export folder, or a dataset), more change
/// locations, and what `dest` holds already.
pub async fn plan(base: &Location, changes: &[Location], dest: &Location, format: Format) -> Result<Plan> {
    // A merge killed in its commit is finished first (the commit is the point of no return).
    let (pending, _) = commit::interrupted(dest).await?;
    let mut finished_interrupted = Vec::new();
    if !pending.is_empty() && pending.iter().all(|r| r.merge.is_some()) {
        let prepared = commit::prepare(dest, Mode::Overwrite, None).await?;
        finished_interrupted = prepared.rolled_forward.iter().map(|r| r.run_id.clone()).collect();
    }
    let delta_state = match format {
        Format::Delta => self::delta::previous_state(dest).await?,
        _ => None,
    };
    let dest_commits = match format {
        Format::Delta => Vec::new(),
        _ => commit::read_commits(dest).await?,
    };
    let dest_last = commit::live(&dest_commits).last().cloned();
    let previous = dest_last.as_ref().and_then(|r| r.merge.clone()).or(delta_state.as_ref().map(|s| s.merge.clone()));

    // The base: a full export, or a dataset.
    let base_exports = exports_at(base).await?;
    let mut candidates: Vec<(Location, export::ExportInfo)> = Vec::new();
    let mut full = None;
    if base_exports.is_empty() {
        let commits = commit::read_commits(base).await?;
        if commits.is_empty() {
            return Err(Error::NotFound(format!(
                "{} holds neither a DynamoDB export nor a dataset written by dynolake",
                base.url
            )));
        }
    } else {
        let full_export = base_exports
            .iter()
            .rev()
            .find(|e| e.summary.as_ref().is_some_and(|s| s.export_type == ExportType::FullExport));
        full = full_export.cloned();
        for e in &base_exports {
            if e.summary.as_ref().is_some_and(|s| s.export_type == ExportType::IncrementalExport) {
                candidates.push((base.clone(), e.clone()));
            }
        }
        if full.is_none() && previous.is_none() {
            return Err(Error::NotFound(format!(
                "{} holds incremental exports but no complete full export to apply them to",
                base.url
            )));
        }
    }
    let mut streams = Vec::new();
    for loc in changes {
        let found = exports_at(loc).await?;
        if found.is_empty() {
            // A folder of Streams records (no manifest, no window).
            streams.push(export::open_stream_records(loc).await?);
            continue;
        }
        for e in found {
            if e.summary.as_ref().is_some_and(|s| s.export_type == ExportType::IncrementalExport) {
                candidates.push((loc.clone(), e));
            }
        }
    }

    // Where the state starts, and the time it is current to.
    let mut skipped = Vec::new();
    let (start, mut current_to, applied): (Start, DateTime<Utc>, Vec<String>) = match (&dest_last, &previous) {
        (None, Some(state)) if delta_state.is_some() => {
            let t = time(&format!("the Delta log of {}", dest.url), Some(&state.current_to))?;
            let st = delta_state.clone().expect("checked");
            if let Some(f) = &full
                && let Some(s) = &f.summary
                && s.table_arn != st.source.table_arn
            {
                return Err(Error::Usage(format!(
                    "{} holds table {}, not {}: merge into another destination",
                    dest.url, st.source.table_arn, s.table_arn
                )));
            }
            (Start::Delta { location: dest.clone(), state: Box::new(st) }, t, state.applied.clone())
        }
        (Some(rec), Some(state)) if rec.format == Format::Parquet => {
            if let Some(f) = &full
                && let Some(s) = &f.summary
                && s.table_arn != rec.source.table_arn
            {
                return Err(Error::Usage(format!(
                    "{} holds table {}, not {}: merge into another destination",
                    dest.url, rec.source.table_arn, s.table_arn
                )));
            }
            let t = time(&format!("the commit record of {}", dest.url), Some(&state.current_to))?;
            let start = Start::Dataset { location: dest.clone(), record: Box::new(rec.clone()) };
            (start, t, state.applied.clone())
        }
        (Some(rec), None) if rec.format == Format::Parquet && dest.url == base.url => {
            let t = time(&format!("the commit record of {}", dest.url), rec.source.export_time.as_deref())?;
            (Start::Dataset { location: dest.clone(), record: Box::new(rec.clone()) }, t, Vec::new())
        }
        (Some(rec), None) if dest.url != base.url => {
            return Err(Error::Usage(format!(
                "{} holds a dataset that no merge wrote (run {}); merge into an empty destination, or give it as BASE",
                dest.url, rec.run_id
            )));
        }
        _ => match full {
            Some(f) => {
                let e = export::open(base, &f).await?;
                let t = time(&format!("export {}", e.id), e.summary.export_time.as_deref())?;
                (Start::Export(Box::new(e)), t, Vec::new())
            }
            None => {
                let commits = commit::read_commits(base).await?;
                let rec = commit::live(&commits).last().cloned().expect("checked above");
                if rec.format != Format::Parquet {
                    return Err(Error::Usage(format!(
                        "{} is a {} dataset; merge reads Parquet datasets and raw exports",
                        base.url,
                        rec.format.extension()
                    )));
                }
                let t = match &rec.merge {
                    Some(m) => time(&format!("the commit record of {}", base.url), Some(&m.current_to))?,
                    None => time(&format!("the commit record of {}", base.url), rec.source.export_time.as_deref())?,
                };
                let applied = rec.merge.as_ref().map(|m| m.applied.clone()).unwrap_or_default();
                (Start::Dataset { location: base.clone(), record: Box::new(rec) }, t, applied)
            }
        },
    };

    // Streams records older than the state's time are left out (the state holds them, or newer).
    let streams_from = current_to;
    // The chain: window order; left out what is held already; no gaps.
    let mut seen = BTreeSet::new();
    let mut windows = Vec::new();
    for (loc, info) in candidates {
        let s = info.summary.as_ref().expect("complete");
        if !seen.insert(s.export_arn.clone()) {
            continue;
        }
        let from = time(&format!("export {}", info.id), s.export_from_time.as_deref())?;
        let to = time(&format!("export {}", info.id), s.export_to_time.as_deref())?;
        windows.push((from, to, loc, info));
    }
    windows.sort_by(|a, b| (a.0, a.1, &a.3.id).cmp(&(b.0, b.1, &b.3.id)));
    let mut chosen = Vec::new();
    for (from, to, loc, info) in windows {
        let arn = &info.summary.as_ref().expect("complete").export_arn;
        if applied.contains(arn) {
            skipped.push(format!("{}: already applied", info.id));
            continue;
        }
        if to <= current_to {
            skipped.push(format!(
                "{}: already covered (its window ends at {}; the state is current to {})",
                info.id,
                iso(to),
                iso(current_to)
            ));
            continue;
        }
        if from > current_to {
            return Err(Error::Verify(format!(
                "a gap in the change data: nothing covers {} to {} (export {} starts at {}); find or make the \
                 incremental export of that interval, then merge again. Nothing was written",
                iso(current_to),
                iso(from),
                info.id,
                iso(from)
            )));
        }
        chosen.push((loc, info));
        current_to = current_to.max(to);
    }
    let mut opened = Vec::with_capacity(chosen.len() + streams.len());
    for (loc, info) in chosen {
        opened.push(export::open(&loc, &info).await?);
    }
    opened.extend(streams);
    Ok(Plan { start, changes: opened, skipped, previous, current_to, streams_from, finished_interrupted })
}

/// How to merge.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// The key attributes; by default those the change records' `Keys` name
    /// (or the destination's record).
    pub key: Option<Vec<String>>,
    /// Apply this schema instead of inferring one (a dataset base keeps its own).
    pub schema: Option<Schema>,
    /// Base items the first schema is inferred from (with a tenth as many
    /// records of each change export); the base's scan checks it, and a
    /// mismatch reads again.
    pub first_items: u64,
    pub infer: InferOptions,
    pub format: Format,
    pub partition_by: Vec<String>,
    pub compression: String,
    pub jobs: usize,
    pub max_open_files: usize,
    pub max_rows_per_file: u64,
    pub row_group_rows: usize,
    pub worker_memory_mib: usize,
    /// Decoded changes held in memory at most (a full export as the base); more are read twice.
    pub changes_memory_mib: usize,
    pub spill_dir: Option<std::path::PathBuf>,
    /// Counts the base's items as the merge reads them (a full-export base), for progress bars.
    pub progress: Option<Arc<crate::pipeline::Progress>>,
    /// Delta only: replace a table already there (a new version of it) instead of refusing.
    pub overwrite: bool,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            key: None,
            schema: None,
            first_items: 50_000,
            infer: InferOptions::default(),
            format: Format::Parquet,
            partition_by: Vec::new(),
            compression: "zstd:1".into(),
            jobs: crate::pipeline::default_jobs(),
            max_open_files: 16,
            max_rows_per_file: 10_000_000,
            row_group_rows: 1_048_576,
            worker_memory_mib: 96,
            changes_memory_mib: 192,
            spill_dir: None,
            progress: None,
            overwrite: false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MergeSummary {
    pub run_id: Option<String>,
    pub destination: String,
    /// `export <id>` or `dataset <url>`.
    pub base: String,
    pub applied: Vec<String>,
    pub skipped: Vec<String>,
    pub finished_interrupted: Vec<String>,
    pub key: Vec<String>,
    pub current_to: String,
    /// False when there was nothing new to apply (nothing was written).
    pub written: bool,
    pub change_records: u64,
    /// How many times the changes were read to merge them (inference aside):
    /// 1 when they were held in memory, 2 when they were too big for that.
    pub change_scans: u32,
    pub rows: u64,
    pub files: usize,
    pub partitions: usize,
    pub bytes_out: u64,
    #[serde(flatten)]
    pub spilled: SpillReport,
    pub elapsed_seconds: f64,
    /// Where the time went (wall-clock seconds of each step).
    pub stages: MergeStages,
    pub peak_memory_bytes: Option<u64>,
}

/// A merge's steps, in wall-clock seconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct MergeStages {
    /// The key, and the schema: the changes read exactly, the base's first items.
    pub schema_seconds: f64,
    /// Registering the tables and planning (with the check for tied write times).
    pub plan_seconds: f64,
    /// The query streaming into the writers: read, gunzip, decode, join, encode.
    pub merge_write_seconds: f64,
    /// Closing files, writing spilled partitions.
    pub finish_files_seconds: f64,
    pub commit_seconds: f64,
}

/// Merge along `plan` into `dest`, holding its lease.
pub fn run(mut plan: Plan, dest: &Location, opts: &MergeOptions, rt: &tokio::runtime::Runtime) -> Result<MergeSummary> {
    let started = Instant::now();
    parse_compression(&opts.compression)?;
    let base_desc = match &plan.start {
        Start::Export(e) => format!("export {}", e.id),
        Start::Dataset { location, .. } => format!("dataset {}", location.url),
        Start::Delta { location, .. } => format!("Delta table {}", location.url),
    };
    let applied_ids: Vec<String> = plan.changes.iter().map(|e| e.id.clone()).collect();
    if opts.format == Format::Delta && !plan.is_nothing_new(dest) {
        return self::delta::run(plan, dest, opts, rt, started, base_desc);
    }
    if plan.is_nothing_new(dest) {
        let prev = plan.previous.clone();
        return Ok(MergeSummary {
            run_id: None,
            destination: dest.url.clone(),
            base: base_desc,
            applied: Vec::new(),
            skipped: plan.skipped,
            finished_interrupted: plan.finished_interrupted,
            key: prev.as_ref().map(|p| p.key.clone()).unwrap_or_default(),
            current_to: iso(plan.current_to),
            written: false,
            change_records: 0,
            change_scans: 0,
            rows: 0,
            files: 0,
            partitions: 0,
            bytes_out: 0,
            spilled: SpillReport::default(),
            elapsed_seconds: started.elapsed().as_secs_f64(),
            stages: MergeStages::default(),
            peak_memory_bytes: peak_memory(),
        });
    }
    let mut stages = MergeStages::default();
    let mut clock = Instant::now();
    let mut lap = |into: &mut f64| {
        *into += clock.elapsed().as_secs_f64();
        clock = Instant::now();
    };
    let key = key_attributes(&plan, opts, rt)?;
    // With a full export as the base, the changes' exact statistics come from
    // decoding them (see `direct`), so their first records suffice here too: a
    // tenth as many as the base's items (each holds up to two images, and what
    // a sample misses costs a second read, not a wrong result). The table's
    // attributes come from the base's sample; the changes' adds those newer
    // writes brought, which newer writes bring often.
    let changes_sample = matches!(plan.start, Start::Export(_)).then_some((opts.first_items / 10).max(1));
    let (mut schema, mut check) = merged_schema(&plan, opts, rt, changes_sample)?;
    let mut changes_extra = None;
    lap(&mut stages.schema_seconds);
    loop {
        let key_cols = key_columns(&schema, &key)?;

        let partition_by =
            opts.partition_by.iter().map(|p| PartitionSpec::parse(p, &schema)).collect::<Result<Vec<_>>>()?;
        let source = plan.source();
        let wopts = Arc::new(WriteOptions {
            format: opts.format,
            partition_by: partition_by.clone(),
            parquet: ParquetSettings {
                compression: parse_compression(&opts.compression)?,
                row_group_rows: opts.row_group_rows,
                row_group_bytes: 128 << 20,
                metadata: metadata(&source, &schema),
                dictionary: Default::default(),
            },
            max_open_files: opts.max_open_files,
            max_rows_per_file: opts.max_rows_per_file,
            memory_budget: opts.worker_memory_mib << 20,
            spill_dir: opts.spill_dir.clone().unwrap_or_else(std::env::temp_dir),
        });
        crate::write::spill::clean_stale(&wopts.spill_dir);

        // The query: the base without the changed keys, then each changed key's latest row unless removed.
        // The changes' side of the anti-join is collected once and probed by every
        // partition of the base, which then streams without being shuffled.
        let mut config = datafusion::prelude::SessionConfig::new().with_target_partitions(opts.jobs.max(1));
        config.options_mut().optimizer.hash_join_single_partition_threshold = 1 << 30;
        config.options_mut().optimizer.hash_join_single_partition_threshold_rows = 1 << 26;
        let ctx = datafusion::prelude::SessionContext::new_with_config(config);
        if let Some(p) = &opts.progress {
            p.items.store(0, std::sync::atomic::Ordering::Relaxed);
            p.uncompressed_bytes.store(0, std::sync::atomic::Ordering::Relaxed);
        }
        // A full export as the base is read by convert's pipeline (below), not as a table.
        let export_base = match &plan.start {
            Start::Export(e) => Some(e.as_ref().clone()),
            Start::Dataset { .. } | Start::Delta { .. } => {
                register_base(&ctx, &plan.start, &schema, opts.jobs, rt, None)?;
                None
            }
        };
        let unions = register_changes(&ctx, &plan, &schema, opts.jobs)?;
        advance_for_streams(&ctx, rt, &mut plan, &unions)?;
        let batch_schema = schema.arrow_schema();
        // A full-export base: the changes decoded and ranked here (or, too
        // big to hold, ranked by a narrow scan and filtered from a full one),
        // then the base's unchanged rows (see `direct`). Else one query.
        let from: Vec<Option<i64>> = plan
            .changes
            .iter()
            .map(|e| (e.summary.export_type == ExportType::StreamRecords).then(|| plan.streams_from.timestamp_micros()))
            .collect();
        let (mut latest, mut held, sql) = match (&export_base, unions.is_empty()) {
            (Some(_), true) => (None, None, None),
            (Some(_), false) => {
                let mut change_schema = schema.clone();
                change_schema.changes = true;
                let budget = opts.changes_memory_mib << 20;
                let gather = check.is_some();
                match direct::hold_changes(&plan.changes, &change_schema, opts.jobs, rt.handle(), budget, gather)? {
                    Some(mut held) => {
                        if gather {
                            check = held.stats.take();
                            changes_extra = held.extra.keys().next().cloned();
                        }
                        let latest = direct::Latest::of_held(&mut held, &batch_schema, &key_cols, &from, opts.jobs)?;
                        (Some(latest), Some(held), None)
                    }
                    None => {
                        if check.is_some() {
                            check = Some(changes_stats(&plan, opts, rt, None)?);
                        }
                        let latest = direct::Latest::collect(&ctx, rt, &unions, &batch_schema, &key_cols)?;
                        (Some(latest), None, Some(direct::Latest::scan_sql(&columns(&schema), &unions)))
                    }
                }
            }
            (None, _) => (None, None, Some(merged_query(&ctx, rt, &schema, &unions, &key_cols)?)),
        };
        let change_records: u64 = plan.changes.iter().map(|e| e.summary.item_count).sum();

        let job = commit::JobKey {
            export_id: format!("merge up to {}", iso(plan.current_to)),
            format: opts.format,
            partition_by: partition_by.clone(),
            mode: Mode::Overwrite,
        };
        let prepared = rt.block_on(commit::prepare(dest, Mode::Overwrite, Some(&job)))?;
        let run_id = commit::new_run_id();
        let progress = Progress::default();
        let streams = match &sql {
            Some(sql) => rt
                .block_on(async { ctx.sql(sql).await?.execute_stream_partitioned().await })
                .map_err(|e| Error::engine("planning the merge", e))?,
            None => Vec::new(),
        };
        lap(&mut stages.plan_seconds);
        // One writer per job, not per stream: the query has a stream per
        // partition of each side of its UNION (the base's and the changes'),
        // and every open Parquet writer holds a row group in progress and a
        // zstd context pair per column (~0.5 MiB a column here). A writer
        // takes its streams one after another; none waits on another's. The
        // changes' streams (the UNION's last) go first: their join's build side
        // (the winning changes) is freed before the writers fill up with the base.
        // With a full export as the base, every worker of its scan gets a writer.
        let jobs = match export_base {
            Some(_) => opts.jobs.max(1),
            None => opts.jobs.clamp(1, streams.len().max(1)),
        };
        let mut shares: Vec<Vec<_>> = (0..jobs).map(|_| Vec::new()).collect();
        for (i, stream) in streams.into_iter().rev().enumerate() {
            shares[i % jobs].push(stream);
        }
        let written: Result<Vec<DatasetSink>> = std::thread::scope(|s| {
            let handles: Vec<_> = shares
                .into_iter()
                .enumerate()
                .map(|(w, share)| {
                    let (batch_schema, wopts, run_id, latest) = (batch_schema.clone(), wopts.clone(), &run_id, &latest);
                    s.spawn(move || -> Result<DatasetSink> {
                        let mut sink =
                            DatasetSink::new(dest, run_id, w, batch_schema.clone(), wopts, rt.handle().clone())?;
                        for mut stream in share {
                            while let Some(b) = rt.block_on(stream.next()) {
                                let mut b = b.map_err(|e| Error::engine("merging", e))?;
                                if let Some(l) = latest {
                                    b = l.winners(&b, batch_schema.fields().len())?;
                                }
                                crate::pipeline::BatchSink::write(&mut sink, conform(&b, &batch_schema)?)?;
                                crate::cancel::check()?;
                            }
                        }
                        Ok(sink)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a merge worker panicked")).collect()
        });
        // The held changes' winners, then the base's unchanged rows, into the same writers.
        let held_changes = held.is_some();
        let written = match (held.take(), &latest) {
            (Some(h), Some(l)) => written.and_then(|mut sinks| {
                l.write_winners(h, &batch_schema, &mut sinks)?;
                Ok(sinks)
            }),
            _ => written,
        };
        let mut base_scan = None;
        let mut base_decode = None;
        let written = match &export_base {
            Some(e) => written.and_then(|sinks| {
                let counted = Progress::default();
                let counting = opts.progress.as_deref().unwrap_or(&counted);
                let (report, sinks, decode) = direct::write_unchanged(
                    e,
                    rt.handle(),
                    &schema,
                    sinks,
                    latest.take().map(direct::Latest::into_skip),
                    check.is_some(),
                    opts.infer,
                    counting,
                    &wopts,
                )?;
                base_scan = Some(report);
                base_decode = Some(decode);
                Ok(sinks)
            }),
            None => written,
        };
        lap(&mut stages.merge_write_seconds);
        // The base's spilled source lines are decoded as its scan would have
        // (the key filter included; no rejects file: a line that does not
        // decode stops the merge).
        let replay = |decode: &crate::decode::DecodeOptions| {
            let base = export_base.as_ref().expect("lines come from an export base");
            crate::pipeline::Replay::new(base, &schema, decode, None)
        };
        let replay = base_decode.as_ref().map(|d| move || replay(d));
        let finished = written.and_then(|sinks| {
            let (files, spilled, replayed) = finish_sinks(
                sinks,
                jobs,
                &progress,
                |t| DatasetSink::new(dest, &run_id, jobs + t, batch_schema.clone(), wopts.clone(), rt.handle().clone()),
                replay.as_ref(),
            )?;
            if let Some(scan) = base_scan.as_mut() {
                replayed.add_to(scan);
            }
            Ok((files, spilled))
        });
        let (mut files, spilled) = match finished.and_then(|w| crate::cancel::check().map(|()| w)) {
            Ok(w) => w,
            Err(e) => {
                discard_staging(dest, &run_id, rt.handle());
                return Err(e);
            }
        };
        lap(&mut stages.finish_files_seconds);
        if let Some(changes) = check.take() {
            let Start::Export(base) = &plan.start else { unreachable!("only an export base is checked") };
            let scanned = base_scan.as_ref().expect("an export base is scanned");
            match exact_schema(base, &schema, changes, changes_extra.take(), scanned, &opts.infer) {
                Ok(exact) => schema = exact,
                Err(reason) => {
                    // As convert does: nothing committed; read again with the exact schema.
                    discard_staging(dest, &run_id, rt.handle());
                    eprintln!("reading again: {reason}");
                    schema = exact_merged_schema(&plan, opts, rt)?;
                    lap(&mut stages.schema_seconds);
                    continue;
                }
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let partitions = partition_counts(&files);
        let rows: u64 = files.iter().map(|f| f.rows).sum();
        let state = plan.state_after(&key);
        let record = CommitRecord {
            version: 1,
            run_id: run_id.clone(),
            committed_at: iso(Utc::now()),
            tool: format!("dynolake {}", env!("CARGO_PKG_VERSION")),
            mode: Mode::Overwrite,
            format: opts.format,
            compression: opts.compression.clone(),
            partition_by,
            source,
            schema: serde_json::from_str(&schema.to_file_string()).expect("schema is JSON"),
            rows,
            partitions: partitions.clone(),
            files: files.clone(),
            rejected: 0,
            extra_values: 0,
            rejects_file: None,
            merge: Some(state),
        };
        rt.block_on(commit::commit(dest, &record))?;
        lap(&mut stages.commit_seconds);
        let _ = prepared;
        return Ok(MergeSummary {
            run_id: Some(run_id),
            destination: dest.url.clone(),
            base: base_desc,
            applied: applied_ids,
            skipped: plan.skipped,
            finished_interrupted: plan.finished_interrupted,
            key,
            current_to: iso(plan.current_to),
            written: true,
            change_records,
            change_scans: if unions.is_empty() { 0 } else { 2 - held_changes as u32 },
            rows,
            files: files.len(),
            partitions: partitions.len(),
            bytes_out: files.iter().map(|f| f.bytes).sum(),
            spilled,
            elapsed_seconds: started.elapsed().as_secs_f64(),
            stages,
            peak_memory_bytes: peak_memory(),
        });
    }
}

/// The exact schema of the base and the changes, from the statistics the
/// base's scan gathered and the changes' own; an error says why the schema
/// the data was written with is not it.
fn exact_schema(
    base: &Export,
    decoded_with: &Schema,
    mut changes: TableStats,
    changes_extra: Option<String>,
    scanned: &crate::pipeline::PipelineReport,
    infer: &InferOptions,
) -> std::result::Result<Schema, String> {
    if let Some(attr) = changes_extra {
        return Err(format!("values of `{attr}` in the changes do not fit the schema inferred from the first items"));
    }
    if scanned.files != base.files.len() {
        return Err("the base was not read to its end".into());
    }
    if let Some((attr, _)) = scanned.decode.extra_by_attribute.iter().max_by_key(|(_, n)| **n) {
        return Err(format!("values of `{attr}` do not fit the schema inferred from the first items"));
    }
    changes.merge(scanned.table_stats.clone().ok_or("no statistics were gathered")?);
    let mut exact = changes.schema(infer);
    exact.table = Some(base.table_name().to_string());
    exact.inferred_from = Some("exact".into());
    match decoded_with.column_difference(&exact) {
        None => Ok(exact),
        Some(d) => Err(format!("the schema inferred from the first items differs from the exact one: {d}")),
    }
}

/// Register each incremental export as `changes_<i>` (a change table with
/// the result's columns); returns the `SELECT … , i AS _export` of each.
fn register_changes(
    ctx: &datafusion::prelude::SessionContext,
    plan: &Plan,
    schema: &Schema,
    jobs: usize,
) -> Result<Vec<String>> {
    let mut change_schema = schema.clone();
    change_schema.changes = true;
    let mut unions = Vec::new();
    for (i, e) in plan.changes.iter().enumerate() {
        if let Some(p) = e.manifest_problems.first() {
            return Err(Error::Verify(p.clone()));
        }
        let name = format!("changes_{i}");
        let table = ExportTable::new(e.clone(), change_schema.clone(), jobs);
        ctx.register_table(name.as_str(), Arc::new(table)).map_err(|e| Error::engine("registering changes", e))?;
        unions.push(match e.summary.export_type {
            ExportType::StreamRecords => format!(
                "SELECT *, {i} AS _export FROM {name} WHERE _write_time >= TIMESTAMP '{}'",
                iso(plan.streams_from)
            ),
            _ => format!("SELECT *, {i} AS _export FROM {name}"),
        });
    }
    Ok(unions)
}

/// With Streams records among the changes, the state becomes current to
/// the newest record applied (they have no window to say more).
fn advance_for_streams(
    ctx: &datafusion::prelude::SessionContext,
    rt: &tokio::runtime::Runtime,
    plan: &mut Plan,
    unions: &[String],
) -> Result<()> {
    let streams: Vec<&String> = plan
        .changes
        .iter()
        .zip(unions)
        .filter(|(e, _)| e.summary.export_type == ExportType::StreamRecords)
        .map(|(_, u)| u)
        .collect();
    if streams.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT max(_write_time) FROM ({})",
        streams.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(" UNION ALL ")
    );
    let batches = rt
        .block_on(async { ctx.sql(&sql).await?.collect().await })
        .map_err(|e| Error::engine("reading the Streams records' times", e))?;
    use arrow::array::{Array, AsArray};
    let col = batches[0].column(0).as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    if col.is_valid(0)
        && let Some(t) = DateTime::from_timestamp_micros(col.value(0))
    {
        plan.current_to = plan.current_to.max(t);
    }
    Ok(())
}

/// The order of a key's changes, latest first: write time, then a Streams
/// record's sequence number (digits, compared as integers: the longer is the
/// larger), then the later export.
const ORDER: &str = "ORDER BY _write_time DESC NULLS LAST, length(_sequence) DESC NULLS LAST, \
                                _sequence DESC NULLS LAST, _export DESC";

/// The columns of the key attributes.
fn key_columns(schema: &Schema, key: &[String]) -> Result<Vec<String>> {
    key.iter()
        .map(|k| {
            schema
                .fields
                .iter()
                .find(|f| &f.attribute == k)
                .map(|f| f.column.clone())
                .ok_or_else(|| Error::Usage(format!("key attribute `{k}` is in no item of the base or the changes")))
        })
        .collect()
}

/// `"name"`, for DataFusion SQL.
fn q(c: &str) -> String {
    format!("\"{}\"", c.replace('"', "\"\""))
}

/// The result's columns, quoted, in order.
fn columns(schema: &Schema) -> String {
    let cols: Vec<String> =
        schema.fields.iter().map(|f| q(&f.column)).chain(std::iter::once(q(&schema.catch_all))).collect();
    cols.join(", ")
}

/// The changes' latest row per key (`_op` kept, removals included), ranking whole rows.
fn latest_changes(unions: &[String], key_cols: &[String]) -> String {
    let keys: Vec<String> = key_cols.iter().map(|c| q(c)).collect();
    format!(
        "WITH changes AS ({}), \
         ranked AS (SELECT *, row_number() OVER (PARTITION BY {} {ORDER}) AS _rank FROM changes) \
         SELECT * FROM ranked WHERE _rank = 1",
        unions.join(" UNION ALL "),
        keys.join(", ")
    )
}

/// The query of the result: the base without the changed keys, then each
/// changed key's latest row unless it was removed.
fn merged_query(
    ctx: &datafusion::prelude::SessionContext,
    rt: &tokio::runtime::Runtime,
    schema: &Schema,
    unions: &[String],
    key_cols: &[String],
) -> Result<String> {
    let cols = columns(schema);
    if unions.is_empty() {
        return Ok(format!("SELECT {cols} FROM base"));
    }
    let keys: Vec<String> = key_cols.iter().map(|c| q(c)).collect();
    let keys = keys.join(", ");
    let eq = |a: &str, b: &str| -> String {
        key_cols.iter().map(|c| format!("{a}.{0} = {b}.{0}", q(c))).collect::<Vec<_>>().join(" AND ")
    };
    let order = ORDER;
    let changes = format!("changes AS ({})", unions.join(" UNION ALL "));
    // Ranking only keys and times keeps the wide rows out of the sort: the
    // winners are picked by (key, time, export), which is one change unless
    // two of a key share a write time in one export — then rank whole rows.
    // The (key, time, export) groups are read once, narrow, and kept in memory
    // (a row per change at most): the tie check and the ranking use them
    // without reading the changes again.
    let groups = format!(
        "WITH {changes} SELECT {keys}, _write_time, _export, max(_sequence) AS _sequence, count(*) AS _n \
         FROM changes GROUP BY {keys}, _write_time, _export"
    );
    let ties = rt
        .block_on(async {
            let df = ctx.sql(&groups).await?;
            let schema = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await?;
            let table = datafusion::datasource::MemTable::try_new(schema, vec![batches])?;
            ctx.deregister_table("change_groups")?;
            ctx.register_table("change_groups", Arc::new(table))?;
            ctx.sql("SELECT 1 FROM change_groups WHERE _n > 1 LIMIT 1").await?.count().await
        })
        .map_err(|e| Error::engine("ranking the changes", e))?;
    Ok(if ties == 0 {
        format!(
            "WITH {changes}, \
             ranked AS (SELECT {keys}, _write_time, _export, row_number() OVER (PARTITION BY {keys} {order}) AS _rank FROM change_groups), \
             winners AS (SELECT * FROM ranked WHERE _rank = 1) \
             SELECT {cols} FROM winners RIGHT ANTI JOIN base ON {} \
             UNION ALL SELECT {cols} FROM winners w RIGHT SEMI JOIN changes c ON {} AND w._write_time = c._write_time AND w._export = c._export \
             WHERE c._op <> 'remove'",
            eq("winners", "base"),
            eq("w", "c"),
        )
    } else {
        format!(
            "WITH latest AS ({}) \
             SELECT {cols} FROM latest RIGHT ANTI JOIN base ON {} \
             UNION ALL SELECT {cols} FROM latest WHERE _op <> 'remove'",
            latest_changes(unions, key_cols),
            eq("latest", "base"),
        )
    })
}

/// A batch as the writers expect it: the schema's exact types and field
/// metadata (a dataset read back may come as string views).
fn conform(b: &RecordBatch, schema: &arrow::datatypes::SchemaRef) -> Result<RecordBatch> {
    let cols = b
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| match c.data_type() == f.data_type() {
            true => Ok(c.clone()),
            false => arrow::compute::cast(c, f.data_type()),
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::engine("shaping merged rows", e))?;
    RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::engine("shaping merged rows", e))
}

fn metadata(source: &SourceInfo, schema: &Schema) -> Vec<parquet::file::metadata::KeyValue> {
    use parquet::file::metadata::KeyValue;
    vec![
        KeyValue::new("dynolake.source".into(), serde_json::to_string(source).expect("serializable")),
        KeyValue::new("dynolake.schema".into(), schema.columns_only().to_file_string()),
    ]
}

/// `--key`, else the destination's record, else the attributes the change records' `Keys` name.
pub fn key_attributes(plan: &Plan, opts: &MergeOptions, rt: &tokio::runtime::Runtime) -> Result<Vec<String>> {
    if let Some(k) = &opts.key {
        return Ok(k.clone());
    }
    let recorded = match &plan.start {
        Start::Dataset { record, .. } => record.merge.as_ref().map(|m| m.key.clone()).filter(|k| !k.is_empty()),
        Start::Delta { state, .. } => Some(state.merge.key.clone()).filter(|k| !k.is_empty()),
        Start::Export(_) => None,
    };
    if let Some(k) = recorded {
        return Ok(k);
    }
    let mut names: Option<Vec<String>> = None;
    for e in &plan.changes {
        let run = InferRun {
            options: opts.infer,
            sample: Some(1000),
            jobs: 1,
            envelope: Some(crate::decode::Envelope::Keys),
        };
        let stats = infer_table_stats(e, rt.handle(), &run, &Progress::default())?;
        if stats.items == 0 {
            continue;
        }
        let mut these: Vec<String> = stats.attrs.keys().cloned().collect();
        these.sort();
        match &names {
            None => names = Some(these),
            Some(n) if *n == these => {}
            Some(n) => {
                return Err(Error::Usage(format!(
                    "the change records name different keys ([{}] and [{}] in export {}); say which with --key",
                    n.join(", "),
                    these.join(", "),
                    e.id
                )));
            }
        }
    }
    match names {
        Some(n) => Ok(n),
        None if plan.changes.iter().all(|e| e.summary.item_count == 0) => Ok(Vec::new()),
        None => Err(Error::Usage(
            "the key attributes cannot be known: no change record has `Keys`; say which with --key pk[,sk]".into(),
        )),
    }
}

/// The schema of the result: given; a dataset base's own; else the schema of
/// the changes' images (every one, or with `changes_sample` the first of each
/// export) with the base's first items — and the changes' statistics, to
/// check with what the base's scan gathers (the first items' are replaced by
/// the exact ones that decoding the changes gathers).
fn merged_schema(
    plan: &Plan,
    opts: &MergeOptions,
    rt: &tokio::runtime::Runtime,
    changes_sample: Option<u64>,
) -> Result<(Schema, Option<TableStats>)> {
    if let Some(s) = &opts.schema {
        let mut s = s.clone();
        s.changes = false;
        return Ok((s, None));
    }
    if let Start::Delta { state, location } = &plan.start {
        return Ok((state.schema(&location.url)?, None));
    }
    if let Start::Dataset { record, location } = &plan.start {
        let name = format!("the commit record of {}", location.url);
        return Ok((Schema::from_file_str(&name, &record.schema.to_string())?, None));
    }
    let Start::Export(base) = &plan.start else { unreachable!() };
    let changes = changes_stats(plan, opts, rt, changes_sample)?;
    let run = InferRun { options: opts.infer, sample: Some(opts.first_items), jobs: opts.jobs, envelope: None };
    let mut stats = changes.clone();
    stats.merge(infer_table_stats(base, rt.handle(), &run, &Progress::default())?);
    let mut schema = stats.schema(&opts.infer);
    schema.table = Some(base.table_name().to_string());
    schema.inferred_from = Some(format!("first:{}", opts.first_items));
    Ok((schema, Some(changes)))
}

fn changes_stats(
    plan: &Plan,
    opts: &MergeOptions,
    rt: &tokio::runtime::Runtime,
    sample: Option<u64>,
) -> Result<TableStats> {
    let run = InferRun { options: opts.infer, sample, jobs: opts.jobs, envelope: None };
    let mut stats = TableStats::default();
    for e in &plan.changes {
        stats.merge(infer_table_stats(e, rt.handle(), &run, &Progress::default())?);
    }
    Ok(stats)
}

/// Every item of the base and every image of the changes, inferred exactly.
pub fn exact_merged_schema(plan: &Plan, opts: &MergeOptions, rt: &tokio::runtime::Runtime) -> Result<Schema> {
    let Start::Export(base) = &plan.start else { unreachable!("only an export base is inferred") };
    let run = InferRun { options: opts.infer, sample: None, jobs: opts.jobs, envelope: None };
    let mut stats = changes_stats(plan, opts, rt, None)?;
    stats.merge(infer_table_stats(base, rt.handle(), &run, &Progress::default())?);
    let mut schema = stats.schema(&opts.infer);
    schema.table = Some(base.table_name().to_string());
    schema.inferred_from = Some("exact".into());
    Ok(schema)
}

/// `base`: the base's rows with the schema's columns and types (`counting`: its items, for progress bars).
fn register_base(
    ctx: &datafusion::prelude::SessionContext,
    start: &Start,
    schema: &Schema,
    jobs: usize,
    rt: &tokio::runtime::Runtime,
    counting: Option<&Arc<crate::pipeline::Progress>>,
) -> Result<()> {
    match start {
        Start::Export(e) => {
            if let Some(p) = e.manifest_problems.first() {
                return Err(Error::Verify(p.clone()));
            }
            let mut table = ExportTable::new(e.as_ref().clone(), schema.clone(), jobs);
            if let Some(p) = counting {
                table = table.counting(p.clone());
            }
            ctx.register_table("base", Arc::new(table)).map_err(|e| Error::engine("registering the base", e))?;
        }
        Start::Dataset { location, .. } | Start::Delta { location, .. } => {
            use datafusion::logical_expr::{cast, col};
            let opts = crate::sql::SqlOptions { jobs, ..Default::default() };
            crate::sql::register(ctx, &format!("base_files={}", location.url), &opts, rt)?;
            let arrow = schema.arrow_schema();
            let df = rt.block_on(ctx.table("base_files")).map_err(|e| Error::engine("reading the base", e))?;
            let have: Vec<String> = df.schema().fields().iter().map(|f| f.name().clone()).collect();
            let exprs = arrow
                .fields()
                .iter()
                .map(|f| {
                    let e = match have.contains(f.name()) {
                        true => cast(col(datafusion::common::Column::from_name(f.name())), f.data_type().clone()),
                        false => {
                            datafusion::logical_expr::lit(datafusion::common::ScalarValue::try_from(f.data_type())?)
                        }
                    };
                    Ok(e.alias(f.name()))
                })
                .collect::<datafusion::error::Result<Vec<_>>>()
                .map_err(|e| Error::engine("reading the base", e))?;
            let view = df.select(exprs).map_err(|e| Error::engine("reading the base", e))?.into_view();
            ctx.register_table("base", view).map_err(|e| Error::engine("registering the base", e))?;
        }
    }
    Ok(())
}
