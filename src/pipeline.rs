//! Running an export's data files through read → decode on worker threads.
//!
//! Each worker takes whole data files from a shared queue (files are the unit
//! of parallelism: gzip cannot be split), streams them, and hands record
//! batches to its own sink, so nothing is shared on the hot path. The manifest
//! checks of `inspect --verify` (MD5, line count) are made on the same read,
//! and any mismatch stops the scan with an error naming the file.

use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::RecordBatch;
use serde::Serialize;

use crate::decode::{DecodeOptions, DecodeStats, Envelope, Inferrer, ItemDecoder, RecordKind, Reject, Syntax};
use crate::error::{Error, Position, Result};
use crate::export::Export;
use crate::pool::{self, Queue, Stop};
use crate::read::{CHUNK, DataStream, check_facts};
use crate::schema::Schema;
use crate::schema::infer::{InferOptions, TableStats};

/// Live counters, for progress bars.
#[derive(Debug, Default)]
pub struct Progress {
    pub items: AtomicU64,
    pub uncompressed_bytes: AtomicU64,
    pub compressed_bytes: AtomicU64,
    pub files_done: AtomicUsize,
    /// After the scan: rows of spilled partitions to write, and written.
    pub spilled_rows: AtomicU64,
    pub spilled_rows_written: AtomicU64,
}

/// Where a scan's worker time went, summed over workers (CPU-ish seconds:
/// two busy workers make two seconds a second).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageTimes {
    /// Reading the data files: fetching, gunzip, MD5.
    pub read_inflate_seconds: f64,
    /// Text → Arrow arrays.
    pub decode_seconds: f64,
    /// Handing batches on: Parquet / CSV / JSON encoding and buffered writes (for
    /// `convert`), or the query's consumer (for `sql`).
    pub encode_write_seconds: f64,
}

impl StageTimes {
    pub fn add(&mut self, o: &StageTimes) {
        self.read_inflate_seconds += o.read_inflate_seconds;
        self.decode_seconds += o.decode_seconds;
        self.encode_write_seconds += o.encode_write_seconds;
    }
}

/// Where decoded batches go: one sink per worker.
pub trait BatchSink: Send {
    /// A data file starts (`index` is its position in the manifest).
    fn start_file(&mut self, _index: usize, _name: &str) -> Result<()> {
        Ok(())
    }
    fn write(&mut self, batch: RecordBatch) -> Result<()>;
    /// The data file ended and passed its checks.
    fn finish_file(&mut self) -> Result<()> {
        Ok(())
    }
    /// Whether [`take_lines`](Self::take_lines) may take lines now (asked
    /// before each decompressed chunk; once true, it stays true for the scan).
    fn takes_lines(&self) -> bool {
        false
    }
    /// Take source lines as they are, before they are decoded: mark those
    /// taken in `taken` and return how many. The sink answers for them (a
    /// spill of source lines, decoded after the scan with a [`Replay`]); the
    /// lines left are decoded and come to [`write`](Self::write) as rows.
    fn take_lines(&mut self, _lines: &LineBatch, _taken: &mut [bool]) -> Result<u64> {
        Ok(0)
    }
}

/// Whole lines of one data file, as read (newlines removed), with their
/// line numbers.
#[derive(Debug, Default)]
pub struct LineBatch {
    /// The data file's place in the manifest.
    pub file: usize,
    bytes: Vec<u8>,
    ends: Vec<usize>,
    numbers: Vec<u64>,
}

impl LineBatch {
    /// Lines a batch holds before it is handed on (and at most this many bytes).
    const LINES: usize = 16384;
    const BYTES: usize = 16 << 20;

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Line `i` of the batch, and its number in its file.
    pub fn line(&self, i: usize) -> (u64, &[u8]) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        (self.numbers[i], &self.bytes[start..self.ends[i]])
    }

    fn push(&mut self, number: u64, line: &[u8]) {
        self.bytes.extend_from_slice(line);
        self.ends.push(self.bytes.len());
        self.numbers.push(number);
    }

    fn is_full(&self) -> bool {
        self.ends.len() >= Self::LINES || self.bytes.len() >= Self::BYTES
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.numbers.clear();
    }
}

/// Receives rejected lines (shared by all workers).
pub type RejectSink = Mutex<Box<dyn Write + Send>>;

#[derive(Debug, Clone, Default, Serialize)]
pub struct PipelineReport {
    /// Data files read.
    #[serde(rename = "source_files")]
    pub files: usize,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    #[serde(flatten)]
    pub decode: DecodeStatsReport,
    /// Inference statistics of the items read, when the decode options asked for them.
    #[serde(skip)]
    pub table_stats: Option<TableStats>,
    /// Where the workers' time went (reported by the jobs, with their own stages).
    #[serde(skip)]
    pub stages: StageTimes,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DecodeStatsReport {
    pub items: u64,
    pub rejected: u64,
    pub extra_values: u64,
    pub extra_by_attribute: std::collections::BTreeMap<String, u64>,
}

impl From<&DecodeStats> for DecodeStatsReport {
    fn from(s: &DecodeStats) -> Self {
        DecodeStatsReport {
            items: s.items,
            rejected: s.rejected,
            extra_values: s.extra_values,
            extra_by_attribute: s.extra_by_attribute.clone(),
        }
    }
}

/// How to scan.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    pub jobs: usize,
    pub decode: DecodeOptions,
    /// Check MD5 and line counts against the manifest while reading.
    pub verify: bool,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions { jobs: default_jobs(), decode: DecodeOptions::default(), verify: true }
    }
}

pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// The order workers take files in: largest first (compressed size, else the
/// manifest's item count), so the last file to finish is a small one and no
/// worker idles long at the end. Files keep their manifest index wherever it
/// matters (order keys, error messages); only the schedule changes.
pub fn work_order(files: &[crate::export::DataFile]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse((files[i].size.unwrap_or(0), files[i].entry.item_count)));
    order
}

/// How `export`'s lines read, on top of `opts`: their syntax, and for an
/// incremental export, change records whose row is the change's image (new,
/// else old, else keys) unless `opts` asks for one image.
pub fn lines_of(export: &Export, opts: &DecodeOptions) -> DecodeOptions {
    let mut o = DecodeOptions { syntax: Syntax::from(export.summary.output_format), ..opts.clone() };
    let kind = export.summary.export_type;
    if kind != crate::export::ExportType::FullExport {
        o.record = match kind {
            crate::export::ExportType::StreamRecords => RecordKind::Stream,
            _ => RecordKind::Change,
        };
        if o.envelope == Envelope::Item {
            o.envelope = Envelope::Row;
        }
        o.upserts = export.summary.output_view == Some(crate::export::OutputView::NewImage);
    }
    o
}

/// Decode every data file of `export` with `schema`; `make_sink(worker)` gives
/// each worker its sink. Rejected lines go to `rejects`; without it the first
/// one stops the scan with an error naming it.
pub fn decode_export<S: BatchSink>(
    export: &Export,
    rt: &tokio::runtime::Handle,
    schema: &Schema,
    opts: &PipelineOptions,
    rejects: Option<&RejectSink>,
    progress: &Progress,
    make_sink: impl Fn(usize) -> Result<S> + Sync,
) -> Result<(PipelineReport, Vec<S>)> {
    if let Some(p) = export.manifest_problems.first().filter(|_| opts.verify) {
        return Err(Error::Verify(p.clone()));
    }
    let order = work_order(&export.files);
    let report = Mutex::new(PipelineReport::default());
    struct Worker<S> {
        sink: S,
        decoder: ItemDecoder,
        buf: Vec<u8>,
        local: PipelineReport,
    }
    let sinks = pool::run(
        opts.jobs,
        order.len(),
        Queue::Shared,
        |w| {
            Ok(Worker {
                sink: make_sink(w)?,
                decoder: ItemDecoder::new(schema, lines_of(export, &opts.decode)),
                buf: vec![0u8; CHUNK],
                local: PipelineReport::default(),
            })
        },
        |wk, slot, stop| {
            let i = order[slot];
            let file = &export.files[i];
            let facts = scan_file(
                export,
                rt,
                i,
                file,
                &mut wk.decoder,
                &mut wk.buf,
                &mut wk.sink,
                opts,
                rejects,
                progress,
                stop,
            )?;
            wk.local.files += 1;
            wk.local.stages.add(&facts.1);
            let facts = facts.0;
            wk.local.compressed_bytes += facts.compressed_bytes;
            wk.local.uncompressed_bytes += facts.uncompressed_bytes;
            Ok(true)
        },
        |_, mut wk| {
            let mut r = report.lock().unwrap();
            r.files += wk.local.files;
            r.stages.add(&wk.local.stages);
            r.compressed_bytes += wk.local.compressed_bytes;
            r.uncompressed_bytes += wk.local.uncompressed_bytes;
            let mut stats = DecodeStats {
                items: r.decode.items,
                rejected: r.decode.rejected,
                extra_values: r.decode.extra_values,
                extra_by_attribute: std::mem::take(&mut r.decode.extra_by_attribute),
            };
            stats.merge(wk.decoder.stats());
            r.decode = DecodeStatsReport::from(&stats);
            if let Some(t) = wk.decoder.take_table_stats() {
                r.table_stats.get_or_insert_with(TableStats::default).merge(t);
            }
            Ok(wk.sink)
        },
    )?;
    Ok((report.into_inner().unwrap(), sinks))
}

/// Stream one data file through `decoder`: `on_batch` receives each batch and
/// returns whether to go on; `on_chunk` sees the size of each decompressed chunk
/// and the items decoded so far (progress, cancellation). Returns what reading
/// the file found when it was read to its end (checked against the manifest
/// when `verify`), `None` when `on_batch` stopped early. `on_chunk` is called
/// once more, with 0 bytes, when the file's last rows are out. `times` gathers
/// where the time went.
#[allow(clippy::too_many_arguments)]
pub fn decode_file(
    export: &Export,
    index: usize,
    rt: &tokio::runtime::Handle,
    decoder: &mut ItemDecoder,
    buf: &mut [u8],
    verify: bool,
    times: &mut StageTimes,
    on_batch: impl FnMut(RecordBatch) -> Result<bool>,
    on_chunk: impl FnMut(usize, u64) -> Result<()>,
) -> Result<Option<crate::read::FileFacts>> {
    struct Batches<F>(F);
    impl<F: FnMut(RecordBatch) -> Result<bool>> Rows for Batches<F> {
        fn batch(&mut self, b: RecordBatch) -> Result<bool> {
            (self.0)(b)
        }
    }
    decode_file_into(export, index, rt, decoder, buf, verify, times, &mut Batches(on_batch), on_chunk)
}

/// Where [`decode_file_into`] hands a file's rows (and, if taken, its lines).
trait Rows {
    /// A batch of rows; returns whether to go on.
    fn batch(&mut self, b: RecordBatch) -> Result<bool>;
    /// See [`BatchSink::takes_lines`].
    fn takes_lines(&self) -> bool {
        false
    }
    /// See [`BatchSink::take_lines`].
    fn take_lines(&mut self, _lines: &LineBatch, _taken: &mut [bool]) -> Result<u64> {
        Ok(0)
    }
}

/// A sink as [`Rows`]: it never stops a file early.
struct SinkRows<'a, S>(&'a mut S);

impl<S: BatchSink> Rows for SinkRows<'_, S> {
    fn batch(&mut self, b: RecordBatch) -> Result<bool> {
        self.0.write(b).map(|()| true)
    }
    fn takes_lines(&self) -> bool {
        self.0.takes_lines()
    }
    fn take_lines(&mut self, lines: &LineBatch, taken: &mut [bool]) -> Result<u64> {
        self.0.take_lines(lines, taken)
    }
}

/// [`decode_file`] into `rows`. While `rows` takes no lines the decoder frames
/// the lines itself; from the first chunk on which it does, lines are framed
/// here, offered to `rows` a [`LineBatch`] at a time, and the lines left are
/// decoded one by one. `on_chunk`'s count includes the lines taken.
#[allow(clippy::too_many_arguments)]
fn decode_file_into<R: Rows>(
    export: &Export,
    index: usize,
    rt: &tokio::runtime::Handle,
    decoder: &mut ItemDecoder,
    buf: &mut [u8],
    verify: bool,
    times: &mut StageTimes,
    rows: &mut R,
    mut on_chunk: impl FnMut(usize, u64) -> Result<()>,
) -> Result<Option<crate::read::FileFacts>> {
    let file = &export.files[index];
    let name = export.display(file);
    if file.size.is_none() {
        return Err(Error::Verify(format!("{name}: data file is missing")));
    }
    decoder.start_file(index, &name);
    let mut stream = DataStream::open(export, file, rt)?;
    let mut framing: Option<Framing> = None;
    loop {
        let t = Instant::now();
        let n = stream.next_chunk(buf)?;
        times.read_inflate_seconds += t.elapsed().as_secs_f64();
        if n == 0 {
            break;
        }
        if framing.is_none() && rows.takes_lines() {
            framing = Some(Framing::new(index, decoder));
        }
        let go_on = match &mut framing {
            Some(f) => f.chunk(&buf[..n], &name, decoder, rows, times)?,
            None => decode_chunk(&buf[..n], decoder, rows, times)?,
        };
        if !go_on {
            return Ok(None);
        }
        on_chunk(n, decoder.stats().items + framing.as_ref().map_or(0, |f| f.taken_total))?;
    }
    let t = Instant::now();
    match &mut framing {
        Some(f) => {
            if !f.finish(decoder, rows, times)? {
                return Ok(None);
            }
        }
        None => decoder.finish_file()?,
    }
    let last = decoder.flush()?;
    times.decode_seconds += t.elapsed().as_secs_f64();
    if let Some(b) = last
        && !emit(b, decoder, rows, times)?
    {
        return Ok(None);
    }
    on_chunk(0, decoder.stats().items + framing.as_ref().map_or(0, |f| f.taken_total))?;
    let t = Instant::now();
    let facts = stream.finish()?;
    times.read_inflate_seconds += t.elapsed().as_secs_f64();
    if verify && let Some(p) = check_facts(export, file, &facts).into_iter().next() {
        return Err(Error::Verify(p));
    }
    Ok(Some(facts))
}

/// Hand a batch on. A sink's complaint about a row names the row's file and line.
fn emit<R: Rows>(b: RecordBatch, decoder: &ItemDecoder, rows: &mut R, times: &mut StageTimes) -> Result<bool> {
    let t = Instant::now();
    let r = rows.batch(b).map_err(|e| match e {
        Error::Row { row, path, message } => {
            Error::Decode { position: Position { path, ..decoder.position_of_flushed(row) }, message }
        }
        e => e,
    });
    times.encode_write_seconds += t.elapsed().as_secs_f64();
    r
}

/// Decode a chunk, the decoder framing its lines.
fn decode_chunk<R: Rows>(
    chunk: &[u8],
    decoder: &mut ItemDecoder,
    rows: &mut R,
    times: &mut StageTimes,
) -> Result<bool> {
    let mut off = 0;
    while off < chunk.len() {
        let t = Instant::now();
        off += decoder.decode(&chunk[off..])?;
        let full = if decoder.is_full() { decoder.flush()? } else { None };
        times.decode_seconds += t.elapsed().as_secs_f64();
        if let Some(b) = full
            && !emit(b, decoder, rows, times)?
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Lines framed here rather than by the decoder (see [`decode_file_into`]).
struct Framing {
    carry: Vec<u8>,
    /// The number of the last line framed.
    line: u64,
    max: usize,
    batch: LineBatch,
    taken: Vec<bool>,
    taken_total: u64,
}

impl Framing {
    /// Take the framing over from `decoder`, mid-file.
    fn new(file: usize, decoder: &mut ItemDecoder) -> Framing {
        let max = decoder.options().infer.max_line_bytes;
        let (carry, line) = decoder.take_framing();
        let batch = LineBatch { file, ..Default::default() };
        Framing { carry, line, max, batch, taken: Vec::new(), taken_total: 0 }
    }

    fn chunk<R: Rows>(
        &mut self,
        chunk: &[u8],
        name: &str,
        decoder: &mut ItemDecoder,
        rows: &mut R,
        times: &mut StageTimes,
    ) -> Result<bool> {
        let mut off = 0;
        while off < chunk.len() {
            let t = Instant::now();
            let (batch, line) = (&mut self.batch, &mut self.line);
            let framed = crate::decode::lines::for_each_line(&mut self.carry, &chunk[off..], self.max, |l| {
                *line += 1;
                batch.push(*line, l);
                Ok(!batch.is_full())
            })?;
            times.decode_seconds += t.elapsed().as_secs_f64();
            match framed {
                Ok(n) => off += n,
                Err(_) => return Err(crate::decode::lines::too_long(name, self.line + 1, self.max)),
            }
            if self.batch.is_full() && !self.offer(decoder, rows, times)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The file ended: a last line without a newline, then what is framed.
    fn finish<R: Rows>(&mut self, decoder: &mut ItemDecoder, rows: &mut R, times: &mut StageTimes) -> Result<bool> {
        if !self.carry.is_empty() {
            self.line += 1;
            self.batch.push(self.line, &self.carry);
            self.carry.clear();
        }
        self.offer(decoder, rows, times)
    }

    /// Offer the framed lines to `rows`; decode those it leaves.
    fn offer<R: Rows>(&mut self, decoder: &mut ItemDecoder, rows: &mut R, times: &mut StageTimes) -> Result<bool> {
        let t = Instant::now();
        self.taken.clear();
        self.taken.resize(self.batch.len(), false);
        self.taken_total += rows.take_lines(&self.batch, &mut self.taken)?;
        times.encode_write_seconds += t.elapsed().as_secs_f64();
        let mut t = Instant::now();
        for i in (0..self.batch.len()).filter(|&i| !self.taken[i]) {
            let (number, line) = self.batch.line(i);
            decoder.decode_line(number, line)?;
            if decoder.is_full() {
                let b = decoder.flush()?.expect("a full decoder has rows");
                times.decode_seconds += t.elapsed().as_secs_f64();
                if !emit(b, decoder, rows, times)? {
                    return Ok(false);
                }
                // `emit` timed itself: decoding starts over from here.
                t = Instant::now();
            }
        }
        times.decode_seconds += t.elapsed().as_secs_f64();
        self.batch.clear();
        Ok(true)
    }
}

/// What [`Replay`]s found, summed.
#[derive(Debug, Clone, Default)]
pub struct Replayed {
    pub stats: DecodeStats,
    pub table_stats: Option<TableStats>,
    pub decode_seconds: f64,
}

impl Replayed {
    pub fn add(&mut self, (stats, table_stats, seconds): (DecodeStats, Option<TableStats>, f64)) {
        self.stats.merge(&stats);
        if let Some(t) = table_stats {
            self.table_stats.get_or_insert_with(TableStats::default).merge(t);
        }
        self.decode_seconds += seconds;
    }

    /// Add these to a scan's report.
    pub fn add_to(self, report: &mut PipelineReport) {
        let mut stats = DecodeStats {
            items: report.decode.items,
            rejected: report.decode.rejected,
            extra_values: report.decode.extra_values,
            extra_by_attribute: std::mem::take(&mut report.decode.extra_by_attribute),
        };
        stats.merge(&self.stats);
        report.decode = DecodeStatsReport::from(&stats);
        if let Some(t) = self.table_stats {
            report.table_stats.get_or_insert_with(TableStats::default).merge(t);
        }
        report.stages.decode_seconds += self.decode_seconds;
    }
}

/// Decodes source lines spilled by a sink (see [`BatchSink::take_lines`])
/// after the scan: rejects go where the scan's went, and the statistics are
/// added to the scan's.
pub struct Replay<'a> {
    export: &'a Export,
    decoder: ItemDecoder,
    file: Option<usize>,
    rejects: Option<&'a RejectSink>,
    decode_seconds: f64,
}

impl<'a> Replay<'a> {
    /// `opts`: the scan's decode options (before [`lines_of`]).
    pub fn new(export: &'a Export, schema: &Schema, opts: &DecodeOptions, rejects: Option<&'a RejectSink>) -> Self {
        let decoder = ItemDecoder::new(schema, lines_of(export, opts));
        Replay { export, decoder, file: None, rejects, decode_seconds: 0.0 }
    }

    /// Decode line `number` of data file `file`; a batch when one is full.
    /// Not timed: the caller times a block of lines with [`timed`](Self::timed)
    /// (two clock reads a line were ~1 % of a `day(…)` conversion's CPU).
    pub fn line(&mut self, file: usize, number: u64, text: &[u8]) -> Result<Option<RecordBatch>> {
        if self.file != Some(file) {
            self.decoder.start_file(file, &self.export.display(&self.export.files[file]));
            self.file = Some(file);
        }
        self.decoder.decode_line(number, text)?;
        if self.decoder.is_full() { self.flush() } else { Ok(None) }
    }

    /// Run `f` (decoding: [`line`](Self::line)s, [`flush`](Self::flush)),
    /// counting its time as the decode stage's.
    pub fn timed<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let t = Instant::now();
        let r = f(self);
        self.decode_seconds += t.elapsed().as_secs_f64();
        r
    }

    /// The rows decoded and not yet handed on; rejected lines go to the rejects.
    pub fn flush(&mut self) -> Result<Option<RecordBatch>> {
        let b = self.decoder.flush()?;
        write_rejects(self.rejects, self.decoder.take_rejects())?;
        Ok(b)
    }

    /// What decoding found: counts, the inference statistics if gathered,
    /// and the seconds spent.
    pub fn finish(mut self) -> (DecodeStats, Option<TableStats>, f64) {
        let t = self.decoder.take_table_stats();
        (self.decoder.stats().clone(), t, self.decode_seconds)
    }
}

#[allow(clippy::too_many_arguments)]
fn scan_file<S: BatchSink>(
    export: &Export,
    rt: &tokio::runtime::Handle,
    index: usize,
    file: &crate::export::DataFile,
    decoder: &mut ItemDecoder,
    buf: &mut [u8],
    sink: &mut S,
    opts: &PipelineOptions,
    rejects: Option<&RejectSink>,
    progress: &Progress,
    stop: &Stop,
) -> Result<(crate::read::FileFacts, StageTimes)> {
    sink.start_file(index, &export.display(file))?;
    let mut items_before = decoder.stats().items;
    let mut times = StageTimes::default();
    let facts =
        decode_file_into(export, index, rt, decoder, buf, opts.verify, &mut times, &mut SinkRows(sink), |n, items| {
            progress.items.fetch_add(items - items_before, Ordering::Relaxed);
            progress.uncompressed_bytes.fetch_add(n as u64, Ordering::Relaxed);
            items_before = items;
            if stop.stopped() {
                return Err(Error::Usage("stopped".into()));
            }
            crate::cancel::check()
        })?
        .expect("the sink never stops a file early");
    write_rejects(rejects, decoder.take_rejects())?;
    sink.finish_file()?;
    progress.compressed_bytes.fetch_add(facts.compressed_bytes, Ordering::Relaxed);
    progress.files_done.fetch_add(1, Ordering::Relaxed);
    Ok((facts, times))
}

/// Rejected lines go to `sink`; with none, the first is an error naming its
/// file, line and attribute path (nothing is dropped quietly).
fn write_rejects(sink: Option<&RejectSink>, rejects: Vec<Reject>) -> Result<()> {
    let Some(first) = rejects.first() else { return Ok(()) };
    let Some(sink) = sink else {
        return Err(Error::Decode { position: first.position.clone(), message: first.reason.clone() });
    };
    let mut w = sink.lock().unwrap();
    for r in rejects {
        let rec = serde_json::json!({
            "file": r.position.file,
            "line": r.position.line,
            "path": r.position.path,
            "reason": r.reason,
            "text": r.line,
        });
        writeln!(w, "{rec}").map_err(|e| Error::io("writing the rejects file", e))?;
    }
    Ok(())
}

/// How to infer a schema.
#[derive(Debug, Clone, Default)]
pub struct InferRun {
    pub options: InferOptions,
    /// Infer from the first N lines (items; manifest order) instead of all,
    /// the workers sharing them out.
    pub sample: Option<u64>,
    pub jobs: usize,
    pub envelope: Option<Envelope>,
}

/// An inferred schema and what inference could not read.
#[derive(Debug, Clone)]
pub struct Inferred {
    pub schema: Schema,
    /// Malformed lines (the first [`crate::decode::MALFORMED_KEPT`]), left out of the schema.
    pub malformed: Vec<crate::decode::Reject>,
    pub malformed_lines: u64,
    /// Values of attributes beyond the column cap (they go to the catch-all column).
    pub over_cap: u64,
}

/// Infer an export's schema: every item on all workers, or the first N items
/// (every worker reads from the start and infers its share of them).
/// Malformed lines are left out (decoding rejects them with their position).
pub fn infer_schema(
    export: &Export,
    rt: &tokio::runtime::Handle,
    run: &InferRun,
    progress: &Progress,
) -> Result<Schema> {
    infer_schema_report(export, rt, run, progress).map(|i| i.schema)
}

/// [`infer_schema`], with what could not be read. A missing data file is an
/// error. Malformed lines never shape the schema: what such a line showed
/// before its fault is counted on the first pass, so when there are any, the
/// lines read are inferred again without them (a second read, only then).
pub fn infer_schema_report(
    export: &Export,
    rt: &tokio::runtime::Handle,
    run: &InferRun,
    progress: &Progress,
) -> Result<Inferred> {
    require_files(export)?;
    let mut pass = infer_pass(export, rt, run, progress, &Default::default())?;
    if pass.malformed_lines > 0 && pass.malformed_at.len() as u64 == pass.malformed_lines {
        let skip = pass.malformed_at.iter().copied().collect();
        let again = infer_pass(export, rt, run, &Progress::default(), &skip)?;
        pass.stats = again.stats;
    }
    let mut schema = pass.stats.schema(&run.options);
    schema.table = Some(export.table_name().to_string());
    schema.changes = export.summary.export_type != crate::export::ExportType::FullExport;
    schema.inferred_from = Some(match run.sample {
        Some(n) => format!("sample:{n}"),
        None => "exact".into(),
    });
    pass.malformed.sort_by(|a, b| (&a.position.file, a.position.line).cmp(&(&b.position.file, b.position.line)));
    Ok(Inferred {
        schema,
        malformed: pass.malformed,
        malformed_lines: pass.malformed_lines,
        over_cap: pass.stats.over_cap,
    })
}

/// The inference statistics of every line of `export` that reads (malformed
/// lines are left out; decoding reports them): several exports' statistics
/// merge into the schema of all of them.
pub fn infer_table_stats(
    export: &Export,
    rt: &tokio::runtime::Handle,
    run: &InferRun,
    progress: &Progress,
) -> Result<TableStats> {
    require_files(export)?;
    Ok(infer_pass(export, rt, run, progress, &Default::default())?.stats)
}

/// Every data file the manifest lists is there.
fn require_files(export: &Export) -> Result<()> {
    match export.files.iter().find(|f| f.size.is_none()) {
        Some(f) => Err(Error::Verify(format!("{}: data file is missing", export.display(f)))),
        None => Ok(()),
    }
}

struct Pass {
    stats: TableStats,
    malformed: Vec<crate::decode::Reject>,
    malformed_lines: u64,
    malformed_at: Vec<(usize, u64)>,
}

fn infer_pass(
    export: &Export,
    rt: &tokio::runtime::Handle,
    run: &InferRun,
    progress: &Progress,
    skip: &std::collections::HashSet<(usize, u64)>,
) -> Result<Pass> {
    let lines =
        lines_of(export, &DecodeOptions { envelope: run.envelope.unwrap_or(Envelope::Item), ..Default::default() });
    let merged: Mutex<Pass> = Mutex::new(Pass {
        stats: TableStats::default(),
        malformed: Vec::new(),
        malformed_lines: 0,
        malformed_at: Vec::new(),
    });
    let jobs = run.jobs.max(1);
    // A sample is the first lines in manifest order: each worker reads from the
    // start and infers its share of them. The whole export: largest file first.
    let (order, queue) = match run.sample {
        Some(_) => ((0..export.files.len()).collect::<Vec<_>>(), Queue::EachWorker),
        None => (work_order(&export.files), Queue::Shared),
    };
    struct Worker {
        inf: Inferrer,
        buf: Vec<u8>,
    }
    pool::run(
        jobs,
        order.len(),
        queue,
        |w| {
            let mut inf =
                Inferrer::new(&run.options, lines.envelope).with_syntax(lines.syntax).with_record(lines.record);
            inf.skip = skip.clone();
            if let Some(n) = run.sample {
                let (w, jobs) = (w as u64, jobs as u64);
                inf.lines = Some(n * w / jobs..n * (w + 1) / jobs);
            }
            Ok(Worker { inf, buf: vec![0u8; CHUNK] })
        },
        |wk, slot, stop| {
            if wk.inf.done() {
                return Ok(false);
            }
            let (inf, buf) = (&mut wk.inf, &mut wk.buf);
            let i = order[slot];
            let file = &export.files[i];
            let name = export.display(file);
            inf.start_file(i, &name);
            let mut stream = DataStream::open(export, file, rt)?;
            let before = inf.stats.items;
            loop {
                let n = stream.next_chunk(buf)?;
                if n == 0 || inf.done() || stop.stopped() {
                    break;
                }
                inf.feed(&buf[..n])?;
                progress.uncompressed_bytes.fetch_add(n as u64, Ordering::Relaxed);
                crate::cancel::check()?;
            }
            inf.finish_file()?;
            progress.items.fetch_add(inf.stats.items - before, Ordering::Relaxed);
            progress.files_done.fetch_add(1, Ordering::Relaxed);
            Ok(true)
        },
        |_, mut wk| {
            let inf = &mut wk.inf;
            let mut m = merged.lock().unwrap();
            m.stats.merge(std::mem::take(&mut inf.stats));
            m.malformed_lines += inf.malformed_lines;
            m.malformed.append(&mut inf.malformed);
            m.malformed.truncate(crate::decode::MALFORMED_KEPT);
            m.malformed_at.append(&mut inf.malformed_at);
            Ok(())
        },
    )?;
    Ok(merged.into_inner().unwrap())
}

/// A sink that keeps every batch (for tests and small exports).
#[derive(Debug, Default)]
pub struct CollectSink(pub Vec<RecordBatch>);

impl BatchSink for CollectSink {
    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        self.0.push(batch);
        Ok(())
    }
}

/// Shared handle for counting from several places.
pub type SharedProgress = Arc<Progress>;
