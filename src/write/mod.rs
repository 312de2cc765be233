//! Writing datasets: Parquet, CSV or JSON Lines, partitioned or not, staged
//! and committed atomically (see [`commit`]).
//!
//! Each scan worker owns a [`DatasetSink`]: it splits batches by partition,
//! keeps up to `max_open_files` files open, rolls files at a row limit, and
//! keeps what it holds (row groups in progress, output buffers) under a
//! memory budget by flushing the biggest. Rows of partitions beyond the open
//! files are sorted on local disk and written after the scan, one partition at
//! a time ([`spill`]). Nothing is shared between workers while writing.

pub mod commit;
pub mod dictionary;
pub mod files;
pub mod lease;
pub mod partition;
pub mod sparse;
pub mod spill;
pub mod text;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::datatypes::SchemaRef;
use object_store::path::Path;

use crate::error::{Error, Result};
use crate::pipeline::BatchSink;
use crate::store::Location;
use commit::CommittedFile;
use files::{Format, FormatWriter, ParquetSettings};
use partition::PartitionSpec;
use spill::Spill;

/// How to write.
#[derive(Clone)]
pub struct WriteOptions {
    pub format: Format,
    pub partition_by: Vec<PartitionSpec>,
    pub parquet: ParquetSettings,
    /// Open files per worker; rows of further partitions are spilled (see [`spill`]).
    pub max_open_files: usize,
    /// Rows per file before starting another.
    pub max_rows_per_file: u64,
    /// Bytes a worker may hold (Parquet row groups in progress, output
    /// buffers, rows waiting to be spilled) before it flushes or spills.
    pub memory_budget: usize,
    /// Where spill files go.
    pub spill_dir: PathBuf,
}

/// A file being written by a worker, and the rows waiting for its next row group.
struct Open {
    writer: FormatWriter,
    rel: String,
    rows: u64,
    partition: Vec<Option<String>>,
    /// Rows not yet handed to the writer. Partitioned Parquet waits so that a
    /// writer encodes a whole row group at once: a row group in progress
    /// holds encoders and a zstd context per column (tens of MiB for a wide
    /// table, beyond what `ArrowWriter::memory_size` counts), and with
    /// waiting rows only one writer per worker holds them at a time.
    waiting: Vec<RecordBatch>,
    waiting_bytes: usize,
}

impl Open {
    /// Bytes held: rows waiting, the row group in progress, output buffers.
    fn held(&self) -> usize {
        self.waiting_bytes + self.writer.buffered()
    }

    /// Bytes [`flush`](Self::flush) frees.
    fn freeable(&self) -> usize {
        self.waiting_bytes + self.writer.flushable()
    }

    fn write_waiting(&mut self) -> Result<()> {
        for b in self.waiting.drain(..) {
            self.writer.write(&b)?;
        }
        self.waiting_bytes = 0;
        Ok(())
    }

    /// Write the waiting rows and the file's end.
    fn close(mut self, opts: &WriteOptions) -> Result<CommittedFile> {
        self.write_waiting()?;
        let bytes = self.writer.close()?;
        let partition = opts.partition_by.iter().map(|p| p.name.clone()).zip(self.partition).collect();
        Ok(CommittedFile { path: self.rel, rows: self.rows, bytes, partition })
    }

    /// Write the waiting rows and end the row group.
    fn flush(&mut self) -> Result<()> {
        self.write_waiting()?;
        self.writer.flush_buffer()
    }
}

/// One worker's output: files under `<dest>/_temporary/<run>/`.
pub struct DatasetSink {
    dest: Location,
    staging: Path,
    run_id: String,
    /// Names this sink's files (scan workers count from 0, merge threads after them).
    worker: usize,
    opts: Arc<WriteOptions>,
    /// Schema of the files (identity partition columns removed).
    file_schema: SchemaRef,
    keep: Vec<usize>,
    open: HashMap<String, Open>,
    /// Rows of partitions that found no open file; once a worker has
    /// spilled, partitions new to it are spilled too.
    spill: Option<Spill>,
    seq: usize,
    rt: tokio::runtime::Handle,
    pub written: Vec<CommittedFile>,
    /// Decodes only the partition columns of source lines, to take the lines
    /// of spilled partitions as text (see [`DatasetSink::route_lines`]).
    router: Option<crate::decode::ItemDecoder>,
}

impl DatasetSink {
    pub fn new(
        dest: &Location,
        run_id: &str,
        worker: usize,
        batch_schema: SchemaRef,
        opts: Arc<WriteOptions>,
        rt: tokio::runtime::Handle,
    ) -> Result<DatasetSink> {
        let drop_cols: Vec<&str> = opts
            .partition_by
            .iter()
            .filter(|p| p.transform == partition::Transform::Identity)
            .map(|p| p.source_column.as_str())
            .collect();
        let keep: Vec<usize> = (0..batch_schema.fields().len())
            .filter(|&i| !drop_cols.contains(&batch_schema.field(i).name().as_str()))
            .collect();
        let file_schema = Arc::new(batch_schema.project(&keep).map_err(|e| Error::engine("projecting", e))?);
        let staging = [commit::TEMPORARY, run_id].iter().fold(dest.prefix.clone(), |p, s| p.join(*s));
        Ok(DatasetSink {
            dest: dest.clone(),
            staging,
            run_id: run_id.to_string(),
            worker,
            opts,
            file_schema,
            keep,
            open: HashMap::new(),
            spill: None,
            seq: 0,
            rt,
            written: Vec::new(),
            router: None,
        })
    }

    /// Once this sink spills, take the source lines of partitions without an
    /// open file as they are, before they are decoded, and spill them as
    /// text; they are decoded once, after the scan, straight into their
    /// partition's file (a [`crate::pipeline::Replay`] in
    /// [`spill::write_partitions`]). Spilling rows instead costs a sort by
    /// partition, slicing, concatenating and an Arrow IPC round trip on disk,
    /// which was a third of a `day(…)` conversion's CPU. `router` decodes the
    /// partition columns only (a projected decoder, not strict), to find each
    /// line's partition; a line it cannot read is left to the scan's decoder,
    /// which reports it as it would any other.
    pub fn route_lines(mut self, router: crate::decode::ItemDecoder) -> DatasetSink {
        self.router = Some(router);
        self
    }

    /// Whether rows of partition `dir` go to a file now (opening one if
    /// there is room) rather than to the spill.
    /// `sample`: rows like the partition's; `expected`: how many rows the
    /// file will hold, if known (both shape its encodings: [`FormatWriter::new`]).
    fn has_file(
        &mut self,
        dir: &str,
        values: &[Option<String>],
        sample: &RecordBatch,
        expected: Option<u64>,
    ) -> Result<bool> {
        if self.open.contains_key(dir) {
            return Ok(true);
        }
        if self.spill.is_some() || self.open.len() >= self.opts.max_open_files {
            return Ok(false);
        }
        self.seq += 1;
        let name = format!("part-{}-{:02}-{:05}.{}", self.run_id, self.worker, self.seq, self.opts.format.extension());
        let rel = if dir.is_empty() { name } else { format!("{dir}/{name}") };
        let path = crate::store::join_rel(&self.staging, &rel);
        let out = files::create(&self.dest, &path, &self.rt)?;
        let writer = {
            let rows = expected.unwrap_or(u64::MAX).min(self.opts.max_rows_per_file);
            let rows = usize::try_from(rows).unwrap_or(usize::MAX);
            FormatWriter::new(self.opts.format, out, self.file_schema.clone(), &self.opts.parquet, sample, rows)?
        };
        let open = Open { writer, rel, rows: 0, partition: values.to_vec(), waiting: Vec::new(), waiting_bytes: 0 };
        self.open.insert(dir.to_string(), open);
        Ok(true)
    }

    /// Write rows (in the file schema) of partition `dir`, opening a file if
    /// none is open and rolling it at the row limit. For the merge of spilled
    /// partitions, which has one partition open at a time, knows its rows
    /// (`expected`), and never spills.
    pub(crate) fn write_to(
        &mut self,
        dir: &str,
        values: &[Option<String>],
        batch: RecordBatch,
        expected: u64,
    ) -> Result<()> {
        if !self.has_file(dir, values, &batch, Some(expected))? {
            return Err(Error::io(
                "writing a partition",
                std::io::Error::other(format!("no file could be opened for `{dir}`")),
            ));
        }
        self.write_open(dir, batch, false)?;
        self.bound_memory()
    }

    /// Hand rows to the open file of `dir`, or keep them `waiting` for its
    /// next row group (they must then be compact: not a slice of a larger batch).
    fn write_open(&mut self, dir: &str, batch: RecordBatch, waiting: bool) -> Result<()> {
        let open = self.open.get_mut(dir).expect("opened before");
        open.rows += batch.num_rows() as u64;
        if waiting {
            open.waiting_bytes += batch.get_array_memory_size();
            open.waiting.push(batch);
        } else {
            open.writer.write(&batch)?;
        }
        if open.rows >= self.opts.max_rows_per_file {
            self.close(dir)?;
        }
        Ok(())
    }

    /// Free the biggest holding (a file's waiting rows with its row group in
    /// progress, or the rows waiting to be spilled) until the worker is under
    /// its budget. Output buffers count but cannot be freed early.
    fn bound_memory(&mut self) -> Result<()> {
        loop {
            let spilled = self.spill.as_ref().map_or(0, Spill::pending_bytes);
            let total: usize = self.open.values().map(Open::held).sum::<usize>() + spilled;
            if total <= self.opts.memory_budget {
                return Ok(());
            }
            let big = self.open.values_mut().max_by_key(|o| o.freeable());
            let freeable = big.as_ref().map_or(0, |o| o.freeable());
            if spilled > 0 && spilled >= freeable {
                self.spill.as_mut().expect("spilling").write_run()?;
            } else if let Some(big) = big.filter(|_| freeable > 0) {
                big.flush()?;
            } else {
                return Ok(());
            }
        }
    }

    pub(crate) fn close(&mut self, dir: &str) -> Result<()> {
        let Some(o) = self.open.remove(dir) else { return Ok(()) };
        let file = o.close(&self.opts)?;
        self.written.push(file);
        Ok(())
    }

    /// Close every open file of `sinks` on up to `jobs` threads, then end
    /// their spills; each sink's spilled partitions, if any, for
    /// [`spill::write_partitions`]. A file's waiting rows are encoded as it
    /// closes (a partitioned run ends with a row group's worth per open
    /// file), so this is encoding work, spread like the scan's: one file at a
    /// time per thread, which keeps the memory to the scan's.
    pub fn finish_all(sinks: &mut [DatasetSink], jobs: usize) -> Result<Vec<Option<BTreeMap<String, spill::Spilled>>>> {
        // Each file once, as (its sink, the file), in each sink's directory order.
        let mut tasks: Vec<std::sync::Mutex<Option<(usize, Open)>>> = Vec::new();
        for (i, s) in sinks.iter_mut().enumerate() {
            let mut files: Vec<(String, Open)> = s.open.drain().collect();
            files.sort_by(|a, b| a.0.cmp(&b.0));
            tasks.extend(files.into_iter().map(|(_, o)| std::sync::Mutex::new(Some((i, o)))));
        }
        let opts: Vec<Arc<WriteOptions>> = sinks.iter().map(|s| s.opts.clone()).collect();
        let closed = crate::pool::run(
            jobs,
            tasks.len(),
            crate::pool::Queue::Shared,
            |_| Ok(Vec::new()),
            |done: &mut Vec<(usize, usize, CommittedFile)>, n, _| {
                let (i, o) = tasks[n].lock().unwrap().take().expect("each file is closed once");
                done.push((n, i, o.close(&opts[i])?));
                Ok(true)
            },
            |_, done| Ok(done),
        )?;
        let mut closed: Vec<(usize, usize, CommittedFile)> = closed.into_iter().flatten().collect();
        closed.sort_unstable_by_key(|(n, _, _)| *n);
        for (_, i, file) in closed {
            sinks[i].written.push(file);
        }
        sinks.iter_mut().map(|s| s.spill.take().map(Spill::finish).transpose()).collect()
    }
}

impl BatchSink for DatasetSink {
    fn start_file(&mut self, index: usize, name: &str) -> Result<()> {
        if let Some(r) = &mut self.router {
            r.start_file(index, name);
        }
        Ok(())
    }

    fn takes_lines(&self) -> bool {
        self.router.is_some() && self.spill.is_some()
    }

    /// Lines of partitions without an open file go to the spill as text.
    /// Lines the router cannot read, and lines whose partition directory
    /// could not be made, are left to the decoder (whose rows report them).
    fn take_lines(&mut self, lines: &crate::pipeline::LineBatch, taken: &mut [bool]) -> Result<u64> {
        let Some(router) = self.router.as_mut() else { return Ok(0) };
        for i in 0..lines.len() {
            let (number, text) = lines.line(i);
            // An error here is the decoder's to report, when it reads the line.
            let _ = router.decode_line(number, text);
        }
        router.take_rejects();
        let Some(batch) = router.flush()? else { return Ok(0) };
        // The line each row came from, as an index into `lines` (both ascend).
        let mut at = 0;
        let index: Vec<usize> = router
            .flushed_lines()
            .iter()
            .map(|&n| {
                while lines.line(at).0 != n {
                    at += 1;
                }
                at
            })
            .collect();
        let mut took = 0;
        for (dir, values, rows) in self.groups(&batch)? {
            if self.open.contains_key(&dir) || long_segment(&dir).is_some() {
                continue;
            }
            for &r in &rows {
                taken[index[r as usize]] = true;
            }
            took += rows.len() as u64;
            let rows = rows.iter().map(|&r| lines.line(index[r as usize]));
            self.spill_mut().push_lines(dir, values, lines.file, rows)?;
        }
        self.bound_memory()?;
        Ok(took)
    }

    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        crate::cancel::crash_point("scan-batch");
        let projected = batch.project(&self.keep).map_err(|e| Error::engine("projecting", e))?;
        if self.opts.partition_by.is_empty() {
            self.has_file("", &[], &projected, None)?;
            self.write_open("", projected, false)?;
            return self.bound_memory();
        }
        let wait = matches!(self.opts.format, Format::Parquet | Format::Delta);
        let mut groups = self.groups(&batch)?;
        for (dir, vals, rows) in &groups {
            if let Some(i) = long_segment(dir) {
                let value = vals[i].as_deref().unwrap_or_default();
                return Err(Error::Row {
                    row: rows[0] as usize,
                    path: self.opts.partition_by[i].source_column.clone(),
                    message: format!(
                        "the partition value ({} bytes, `{}…`) makes a directory name longer than {} bytes, \
                         which file systems and S3 tools refuse; partition by another column or a transform of it",
                        value.len(),
                        value.chars().take(40).collect::<String>(),
                        partition::MAX_SEGMENT
                    ),
                });
            }
        }
        if groups.len() == 1 {
            let (dir, vals, _) = groups.pop().expect("one group");
            match self.has_file(&dir, &vals, &projected, None)? {
                true => self.write_open(&dir, projected, wait)?,
                false => {
                    let n = projected.num_rows();
                    self.spill_mut().push(projected, vec![(dir, vals, 0, n)]);
                }
            }
            return self.bound_memory();
        }
        let take = |rows: Vec<u32>| {
            arrow::compute::take_record_batch(&projected, &UInt32Array::from(rows))
                .map_err(|e| Error::engine("splitting partitions", e))
        };
        // Partitions with a file get their rows now; the others' rows go to
        // the spill as one batch sorted by partition.
        let mut spill_rows: Vec<u32> = Vec::new();
        let mut spilled = Vec::new();
        for (dir, vals, rows) in groups {
            if self.has_file(&dir, &vals, &projected, None)? {
                self.write_open(&dir, take(rows)?, wait)?;
            } else {
                spilled.push((dir, vals, spill_rows.len(), rows.len()));
                spill_rows.extend_from_slice(&rows);
            }
        }
        if !spill_rows.is_empty() {
            let sorted = take(spill_rows)?;
            self.spill_mut().push(sorted, spilled);
        }
        self.bound_memory()
    }
}

impl DatasetSink {
    /// The rows of `batch` grouped by partition: (directory, values, rows).
    /// Each level's values are interned per batch, and a group is a distinct
    /// combination of them.
    #[allow(clippy::type_complexity)]
    fn groups(&self, batch: &RecordBatch) -> Result<Vec<(String, Vec<Option<String>>, Vec<u32>)>> {
        let mut of_row: Vec<u32> = vec![0; batch.num_rows()];
        let mut values: Vec<Vec<Option<String>>> = vec![Vec::new()];
        for spec in &self.opts.partition_by {
            let (codes, distinct) = spec.codes(batch)?;
            let mut combined: rustc_hash::FxHashMap<(u32, u32), u32> = Default::default();
            let mut next: Vec<Vec<Option<String>>> = Vec::new();
            for (g, c) in of_row.iter_mut().zip(codes) {
                *g = *combined.entry((*g, c)).or_insert_with(|| {
                    let mut v = values[*g as usize].clone();
                    v.push(distinct[c as usize].clone());
                    next.push(v);
                    next.len() as u32 - 1
                });
            }
            values = next;
        }
        let mut groups: Vec<(String, Vec<Option<String>>, Vec<u32>)> = values
            .into_iter()
            .map(|v| {
                let refs: Vec<Option<&str>> = v.iter().map(Option::as_deref).collect();
                (partition::dir_of(&self.opts.partition_by, &refs), v, Vec::new())
            })
            .collect();
        for (row, g) in of_row.iter().enumerate() {
            groups[*g as usize].2.push(row as u32);
        }
        Ok(groups)
    }

    /// Write rows in the scan's schema (a [`crate::pipeline::Replay`]'s) of
    /// partition `dir`: [`write_to`](Self::write_to) after dropping the
    /// identity partition columns.
    pub(crate) fn write_rows_to(
        &mut self,
        dir: &str,
        values: &[Option<String>],
        batch: RecordBatch,
        expected: u64,
    ) -> Result<()> {
        let projected = batch.project(&self.keep).map_err(|e| Error::engine("projecting", e))?;
        self.write_to(dir, values, projected, expected)
    }

    fn spill_mut(&mut self) -> &mut Spill {
        let (root, schema) = (&self.opts.spill_dir, &self.file_schema);
        self.spill.get_or_insert_with(|| Spill::new(root, schema.clone()))
    }
}

/// The level of a partition directory whose name is too long to create.
fn long_segment(dir: &str) -> Option<usize> {
    dir.split('/').position(|seg| seg.len() > partition::MAX_SEGMENT)
}

/// Rows per partition directory, from the files written.
pub fn partition_counts(files: &[CommittedFile]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for f in files {
        let dir = f.path.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
        *out.entry(dir).or_default() += f.rows;
    }
    out
}
