//! The conversion job: an export in, a committed dataset out.
//!
//! export → scan (read, verify, decode on every core) → per-worker dataset
//! sinks → merge of the partitions they spilled, if any → commit. The
//! manifest checks happen on the same read; any mismatch, and any rejected
//! item unless allowed, stops the job before the commit, leaving the
//! destination as it was.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use parquet::file::metadata::KeyValue;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::export::Export;
use crate::pipeline::{self, PipelineOptions, PipelineReport, Progress};
use crate::schema::Schema;
use crate::store::Location;
use crate::write::commit::{self, CommitRecord, CommittedFile, Mode, SourceInfo};
use crate::write::files::{self, OutFile};
use crate::write::lease;
use crate::write::{DatasetSink, WriteOptions, partition_counts};

pub struct ConvertOptions {
    pub write: WriteOptions,
    pub compression_name: String,
    pub mode: Mode,
    pub scan: PipelineOptions,
    /// Commit even if items were rejected.
    pub allow_rejects: bool,
    /// The schema was inferred from the first items only: gather inference
    /// statistics on the read and commit only if the exact schema they call
    /// for is the one the data was decoded with (see [`Converted`]).
    pub check_schema: bool,
}

/// How a conversion ended.
#[derive(Debug)]
pub enum Converted {
    Done(Box<ConvertSummary>),
    /// With `check_schema`: the whole export calls for another schema than
    /// the one the data was decoded with (the reason says where they differ).
    /// Nothing was committed; convert again with the exact schema.
    SchemaDiffers(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct ConvertSummary {
    pub run_id: String,
    pub destination: String,
    /// Set when this run only finished an interrupted run's commit.
    pub finished_interrupted_run: Option<String>,
    pub cleaned_leftovers: Vec<String>,
    #[serde(flatten)]
    pub scan: PipelineReport,
    pub rows: u64,
    pub files: usize,
    pub partitions: usize,
    pub bytes_out: u64,
    #[serde(flatten)]
    pub spilled: SpillReport,
    pub rejects_file: Option<String>,
    pub elapsed_seconds: f64,
    /// Where the time went.
    pub stages: Stages,
    /// Peak resident memory of the process, where the platform tells.
    pub peak_memory_bytes: Option<u64>,
}

/// Where a conversion's time went: the read's stages summed over the workers
/// (CPU-ish seconds), then the wall-clock time of the steps after it.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stages {
    #[serde(flatten)]
    pub read: crate::pipeline::StageTimes,
    /// Wall time of the read (all workers).
    pub scan_wall_seconds: f64,
    /// Closing the workers' files and writing spilled partitions.
    pub finish_files_seconds: f64,
    /// The atomic commit.
    pub commit_seconds: f64,
}

/// Rows that went through spill files: their partitions had no open file
/// (more partitions than `max_open_files`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SpillReport {
    pub spilled_rows: u64,
    /// Of the rows spilled, those spilled as their source lines (decoded after the scan).
    pub spilled_lines: u64,
    pub spilled_partitions: usize,
}

pub fn source_info(export: &Export) -> SourceInfo {
    SourceInfo {
        table: export.table_name().to_string(),
        table_arn: export.summary.table_arn.clone(),
        export_id: export.id.clone(),
        export_arn: export.summary.export_arn.clone(),
        export_time: export.summary.export_time.clone().or_else(|| export.summary.export_to_time.clone()),
        item_count: export.summary.item_count,
    }
}

/// Parquet key-value metadata: where the data came from, and the schema's
/// columns (the statistics are the dataset's, in the commit record).
pub fn file_metadata(export: &Export, schema: &Schema) -> Vec<KeyValue> {
    let source = serde_json::to_string(&source_info(export)).expect("serializable");
    vec![
        KeyValue::new("dynolake.source".into(), source),
        KeyValue::new("dynolake.schema".into(), schema.columns_only().to_file_string()),
    ]
}

pub fn convert(
    export: &Export,
    schema: &Schema,
    dest: &Location,
    opts: &ConvertOptions,
    rt: &tokio::runtime::Handle,
    progress: &Progress,
) -> Result<Converted> {
    let started = Instant::now();
    crate::write::spill::clean_stale(&opts.write.spill_dir);
    let job = job_key(export, opts);
    let prepared = rt.block_on(commit::prepare(dest, opts.mode, Some(&job)))?;
    if let Some(r) = prepared.rolled_forward.first() {
        return Ok(Converted::Done(Box::new(ConvertSummary {
            run_id: r.run_id.clone(),
            destination: dest.url.clone(),
            finished_interrupted_run: Some(r.run_id.clone()),
            cleaned_leftovers: prepared.cleaned,
            scan: PipelineReport::default(),
            rows: r.rows,
            files: r.files.len(),
            partitions: r.partitions.len(),
            bytes_out: r.files.iter().map(|f| f.bytes).sum(),
            spilled: SpillReport::default(),
            rejects_file: r.rejects_file.clone(),
            elapsed_seconds: started.elapsed().as_secs_f64(),
            stages: Stages::default(),
            peak_memory_bytes: peak_memory(),
        })));
    }

    let run_id = commit::new_run_id();
    let rejects_path = ["_rejects", &format!("{run_id}.jsonl")].iter().fold(dest.prefix.clone(), |p, s| p.join(*s));
    let lazy =
        Arc::new(Mutex::new(LazyOut { dest: dest.clone(), path: rejects_path.clone(), rt: rt.clone(), out: None }));
    let rejects: pipeline::RejectSink = Mutex::new(Box::new(Shared(lazy.clone())));
    let batch_schema = schema.arrow_schema();
    let wopts = Arc::new(opts.write.clone());
    let mut scan_opts = opts.scan.clone();
    scan_opts.decode.collect_stats |= opts.check_schema;
    let scan_started = Instant::now();
    let router = router_options(export, schema, &scan_opts.decode, &opts.write);
    let result = pipeline::decode_export(export, rt, schema, &scan_opts, Some(&rejects), progress, |w| {
        let sink = DatasetSink::new(dest, &run_id, w, batch_schema.clone(), wopts.clone(), rt.clone())?;
        Ok(match &router {
            Some(o) => sink.route_lines(crate::decode::ItemDecoder::new(schema, o.clone())),
            None => sink,
        })
    });
    let mut stages = Stages { scan_wall_seconds: scan_started.elapsed().as_secs_f64(), ..Default::default() };
    let finish_started = Instant::now();
    // Spilled source lines are decoded now: their rejects join the scan's.
    let replay = || pipeline::Replay::new(export, schema, &scan_opts.decode, Some(&rejects));
    let written = result.and_then(|(mut report, sinks)| {
        let jobs = sinks.len();
        let merge_sink = |t| DatasetSink::new(dest, &run_id, jobs + t, batch_schema.clone(), wopts.clone(), rt.clone());
        let (files, spilled, replayed) = finish_sinks(sinks, jobs, progress, merge_sink, Some(&replay))?;
        replayed.add_to(&mut report);
        Ok((report, files, spilled))
    });
    drop(rejects);
    let rejects_written = lazy.lock().unwrap().finish()?;
    let (report, mut files, spilled) = match written {
        Ok(w) => w,
        Err(e) => {
            discard_staging(dest, &run_id, rt);
            return Err(e);
        }
    };
    stages.read = report.stages;
    stages.finish_files_seconds = finish_started.elapsed().as_secs_f64();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let rejects_file = rejects_written.then(|| dest.display(&rejects_path));
    if report.decode.rejected > 0 && !opts.allow_rejects {
        discard_staging(dest, &run_id, rt);
        return Err(Error::Verify(format!(
            "{} item(s) could not be decoded; they are in {}. Nothing was committed: fix the input, or rerun with --allow-rejects",
            report.decode.rejected,
            rejects_file.as_deref().unwrap_or("the rejects file")
        )));
    }
    let mut schema = schema;
    let exact;
    if opts.check_schema {
        match exact_schema(export, schema, &report, &opts.scan.decode.infer) {
            Ok(s) => {
                exact = s;
                schema = &exact;
            }
            Err(reason) => {
                discard_staging(dest, &run_id, rt);
                if rejects_written {
                    use object_store::ObjectStoreExt;
                    let _ = rt.block_on(dest.store.delete(&rejects_path));
                }
                return Ok(Converted::SchemaDiffers(reason));
            }
        }
    }
    // The last point to stop: once the commit starts it runs to its end.
    if let Err(e) = crate::cancel::check() {
        discard_staging(dest, &run_id, rt);
        return Err(e);
    }
    let partitions = partition_counts(&files);
    let rows: u64 = files.iter().map(|f| f.rows).sum();
    let record = CommitRecord {
        version: 1,
        run_id: run_id.clone(),
        committed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        tool: format!("dynolake {}", env!("CARGO_PKG_VERSION")),
        mode: opts.mode,
        format: opts.write.format,
        compression: opts.compression_name.clone(),
        partition_by: opts.write.partition_by.clone(),
        source: source_info(export),
        schema: serde_json::from_str(&schema.to_file_string()).expect("schema is JSON"),
        rows,
        partitions: partitions.clone(),
        files: files.clone(),
        rejected: report.decode.rejected,
        extra_values: report.decode.extra_values,
        rejects_file: rejects_file.clone(),
        merge: None,
    };
    let commit_started = Instant::now();
    rt.block_on(commit::commit(dest, &record))?;
    stages.commit_seconds = commit_started.elapsed().as_secs_f64();
    Ok(Converted::Done(Box::new(ConvertSummary {
        run_id,
        destination: dest.url.clone(),
        finished_interrupted_run: None,
        cleaned_leftovers: prepared.cleaned,
        scan: report,
        rows,
        files: files.len(),
        partitions: partitions.len(),
        bytes_out: files.iter().map(|f| f.bytes).sum(),
        spilled,
        rejects_file,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        stages,
        peak_memory_bytes: peak_memory(),
    })))
}

/// What this conversion writes, to tell a rerun of it from another job.
pub fn job_key(export: &Export, opts: &ConvertOptions) -> commit::JobKey {
    commit::JobKey {
        export_id: export.id.clone(),
        format: opts.write.format,
        partition_by: opts.write.partition_by.clone(),
        mode: opts.mode,
    }
}

/// Run `f` holding `dest`'s lease (see [`crate::write::lease`]): taken
/// before anything is read from or written to the destination, released
/// afterwards whether `f` succeeded or not. `break_lease` names a dead run
/// whose lease may be taken over.
pub fn with_lease<T>(
    dest: &Location,
    job: &str,
    break_lease: Option<&str>,
    rt: &tokio::runtime::Handle,
    f: impl FnOnce(&lease::Lease) -> Result<T>,
) -> Result<T> {
    let held = rt.block_on(lease::acquire(dest, &commit::new_run_id(), job, break_lease))?;
    let result = f(&held);
    let released = rt.block_on(held.release());
    let value = result?;
    released?;
    Ok(value)
}

/// The options of the decoder that finds a source line's partition, when the
/// sinks may spill lines rather than rows ([`DatasetSink::route_lines`]): a
/// partitioned conversion of items (a change table's own columns need the
/// whole decoder). `decode`: the scan's options (before [`pipeline::lines_of`]),
/// which the [`pipeline::Replay`] of the spilled lines must use too: it leaves
/// out the keys the scan would (`merge`'s base), the router does not.
/// Decodes the partition columns only (and of a line, only as far as they
/// are), and never stops on a bad line.
pub(crate) fn router_options(
    export: &Export,
    schema: &Schema,
    decode: &crate::decode::DecodeOptions,
    write: &WriteOptions,
) -> Option<crate::decode::DecodeOptions> {
    let lines = pipeline::lines_of(export, decode);
    if write.partition_by.is_empty() || lines.record != crate::decode::RecordKind::Item {
        return None;
    }
    let arrow = schema.arrow_schema();
    let mut projection = Vec::new();
    for p in &write.partition_by {
        let i = arrow.index_of(&p.source_column).ok()?;
        if !projection.contains(&i) {
            projection.push(i);
        }
    }
    projection.sort_unstable();
    Some(crate::decode::DecodeOptions {
        projection: Some(projection),
        collect_stats: false,
        strict: false,
        batch_size: usize::MAX,
        batch_bytes: usize::MAX,
        stop_when_found: true,
        skip: None,
        ..lines
    })
}

/// Close the workers' files and write the partitions they spilled (on
/// `jobs` threads, with sinks from `merge_sink`; spilled source lines are
/// decoded by `replay`'s, see [`crate::write::spill::write_partitions`]).
pub(crate) fn finish_sinks<'a, R: Fn() -> pipeline::Replay<'a> + Sync>(
    mut sinks: Vec<DatasetSink>,
    jobs: usize,
    progress: &Progress,
    merge_sink: impl Fn(usize) -> Result<DatasetSink> + Sync,
    replay: Option<&R>,
) -> Result<(Vec<CommittedFile>, SpillReport, pipeline::Replayed)> {
    let replay = replay.map(|r| r as &(dyn Fn() -> pipeline::Replay<'a> + Sync));
    let mut files = Vec::new();
    let mut spilled = Vec::new();
    let ended = DatasetSink::finish_all(&mut sinks, jobs)?;
    for (s, p) in sinks.iter_mut().zip(ended) {
        spilled.extend(p);
        files.append(&mut s.written);
    }
    drop(sinks);
    let report = SpillReport {
        spilled_rows: spilled.iter().flat_map(|w| w.values()).map(|p| p.rows).sum(),
        spilled_lines: spilled.iter().flat_map(|w| w.values()).map(|p| p.lines).sum(),
        spilled_partitions: spilled.iter().flat_map(|w| w.keys()).collect::<std::collections::BTreeSet<_>>().len(),
    };
    let mut replayed = pipeline::Replayed::default();
    if !spilled.is_empty() {
        use std::sync::atomic::Ordering::Relaxed;
        progress.spilled_rows.store(report.spilled_rows, Relaxed);
        let written = |rows| {
            progress.spilled_rows_written.fetch_add(rows, Relaxed);
        };
        let (more, r) = crate::write::spill::write_partitions(spilled, jobs, merge_sink, replay, written)?;
        files.extend(more);
        replayed = r;
    }
    Ok((files, report, replayed))
}

/// The process's peak resident memory so far (Linux: `VmHWM`).
pub fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().strip_suffix("kB")?.trim();
    kb.parse::<u64>().ok().map(|k| k * 1024)
}

/// The exact schema of the export, from the statistics gathered while
/// decoding with `decoded_with`; an error says why those statistics do not
/// give it or where it differs from `decoded_with`.
fn exact_schema(
    export: &Export,
    decoded_with: &Schema,
    report: &PipelineReport,
    infer: &crate::schema::infer::InferOptions,
) -> std::result::Result<Schema, String> {
    if report.decode.extra_values > 0 {
        let (attr, _) = report.decode.extra_by_attribute.iter().max_by_key(|(_, n)| **n).expect("counted");
        return Err(format!("values of `{attr}` do not fit the schema inferred from the first items"));
    }
    if report.decode.rejected > 0 {
        return Err("items were rejected, and inference counts what they showed".into());
    }
    let stats = report.table_stats.as_ref().ok_or("no statistics were gathered")?;
    let mut exact = stats.schema(infer);
    exact.table = Some(export.table_name().to_string());
    exact.inferred_from = Some("exact".into());
    match decoded_with.column_difference(&exact) {
        None => Ok(exact),
        Some(d) => Err(format!("the schema inferred from the first items differs from the exact one: {d}")),
    }
}

/// Best effort: remove a failed run's staged files.
pub(crate) fn discard_staging(dest: &Location, run_id: &str, rt: &tokio::runtime::Handle) {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    let staging = [commit::TEMPORARY, run_id].iter().fold(dest.prefix.clone(), |p, s| p.join(*s));
    let _ = rt.block_on(async {
        let paths: Vec<_> = dest.store.list(Some(&staging)).map_ok(|m| m.location).try_collect().await?;
        for p in paths {
            let _ = dest.store.delete(&p).await;
        }
        Ok::<_, object_store::Error>(())
    });
    if let Some(p) = dest.local_path(&staging) {
        let _ = std::fs::remove_dir_all(p);
        if let Some(tmp) = dest.local_path(&dest.prefix.clone().join(commit::TEMPORARY)) {
            let _ = std::fs::remove_dir(tmp);
        }
    }
}

/// A file created on first write (the rejects file exists only if needed).
struct LazyOut {
    dest: Location,
    path: object_store::path::Path,
    rt: tokio::runtime::Handle,
    out: Option<Box<dyn OutFile>>,
}

impl Write for LazyOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.is_none() {
            self.out = Some(files::create(&self.dest, &self.path, &self.rt).map_err(std::io::Error::other)?);
        }
        self.out.as_mut().expect("created").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.as_mut().map_or(Ok(()), |o| o.flush())
    }
}

impl LazyOut {
    fn finish(&mut self) -> Result<bool> {
        match self.out.take() {
            Some(o) => o.finish().map(|_| true),
            None => Ok(false),
        }
    }
}

/// Lets the scan write rejects while the job keeps a handle to finish the file.
struct Shared(Arc<Mutex<LazyOut>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap().flush()
    }
}
