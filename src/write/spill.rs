//! Rows of partitions without an open file, sorted on local disk.
//!
//! A worker keeps at most `max_open_files` files open: an open Parquet writer
//! holds its row group in progress (encoders, uncompressed pages; several
//! hundred bytes a row for a wide table, plus a few MiB fixed), so hundreds of
//! them do not fit any sane memory budget, and closing one to open another
//! (least recently used) leaves a file per partition per batch when every
//! batch touches every partition, as a `day(…)` partitioning of an export in
//! key order does. Rows of any other partition wait here, in Arrow, compact;
//! when they outgrow their share of the budget they are written as one *run*
//! to a spill file: one Arrow IPC batch (LZ4) per partition, in partition
//! order. After the scan, [`merge`] writes each spilled partition, from the
//! runs of every worker, into its own file(s).
//!
//! Spill files live in a temporary directory (under `--spill-dir`, else the
//! system's), removed when the last run referring to it is dropped, whether
//! the conversion commits or fails.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::ipc::CompressionType;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::{FileWriter, IpcWriteOptions};

use super::DatasetSink;
use super::commit::CommittedFile;
use crate::error::{Error, Result};

/// Spill folders are `dynolake-spill-<pid>-<random>`: the pid tells a later
/// run whether the folder's owner is still alive.
pub const SPILL_PREFIX: &str = "dynolake-spill-";

/// Remove spill folders in `root` whose process is gone (killed runs leave
/// theirs behind: SIGKILL runs no cleanup). Folders of live processes, and
/// names that carry no pid, are left alone.
pub fn clean_stale(root: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else { return removed };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(SPILL_PREFIX)) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !super::lease::process_alive(pid) && std::fs::remove_dir_all(e.path()).is_ok() {
            removed.push(e.path());
        }
    }
    removed
}

/// One worker's spilled rows.
pub struct Spill {
    root: PathBuf,
    dir: Option<Arc<tempfile::TempDir>>,
    schema: SchemaRef,
    /// Batches waiting for the next run, and which rows of them belong where.
    pending: Vec<RecordBatch>,
    slices: HashMap<String, Vec<(usize, usize, usize)>>,
    pending_bytes: usize,
    runs: usize,
    partitions: BTreeMap<String, Spilled>,
}

/// A partition's rows in spill files.
pub struct Spilled {
    pub values: Vec<Option<String>>,
    pub rows: u64,
    chunks: Vec<Chunk>,
}

/// One partition's batch in one run.
struct Chunk {
    run: Arc<Run>,
    batch: usize,
}

struct Run {
    path: PathBuf,
    /// Keeps the directory until every run in it has been read.
    _dir: Arc<tempfile::TempDir>,
}

impl Spill {
    pub fn new(root: &Path, schema: SchemaRef) -> Spill {
        Spill {
            root: root.to_path_buf(),
            dir: None,
            schema,
            pending: Vec::new(),
            slices: HashMap::new(),
            pending_bytes: 0,
            runs: 0,
            partitions: BTreeMap::new(),
        }
    }

    /// Bytes of rows waiting in memory.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Rows of `batch`, grouped by partition: `groups` are (directory,
    /// values, offset, length) of consecutive rows.
    pub fn push(&mut self, batch: RecordBatch, groups: Vec<(String, Vec<Option<String>>, usize, usize)>) {
        let b = self.pending.len();
        self.pending_bytes += batch.get_array_memory_size();
        self.pending.push(batch);
        for (dir, values, offset, len) in groups {
            self.slices.entry(dir.clone()).or_default().push((b, offset, len));
            self.partitions.entry(dir).or_insert_with(|| Spilled { values, rows: 0, chunks: Vec::new() }).rows +=
                len as u64;
        }
    }

    /// Write the waiting rows as one run: a batch per partition.
    pub fn write_run(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => {
                let context = || format!("creating a spill folder in {} (--spill-dir)", self.root.display());
                std::fs::create_dir_all(&self.root).map_err(|e| Error::io(context(), e))?;
                let d = tempfile::Builder::new()
                    .prefix(&format!("{SPILL_PREFIX}{}-", std::process::id()))
                    .tempdir_in(&self.root)
                    .map_err(|e| Error::io(context(), e))?;
                self.dir.insert(Arc::new(d)).clone()
            }
        };
        let path = dir.path().join(format!("run-{:05}.arrow", self.runs));
        self.runs += 1;
        let name = path.display().to_string();
        let ipc = |e| Error::engine(format!("writing spill file {name}"), e);
        let file = File::create(&path).map_err(|e| Error::io(name.clone(), e))?;
        let options = IpcWriteOptions::default().try_with_compression(Some(CompressionType::LZ4_FRAME)).map_err(ipc)?;
        let mut w = FileWriter::try_new_with_options(BufWriter::with_capacity(1 << 20, file), &self.schema, options)
            .map_err(ipc)?;
        let run = Arc::new(Run { path: path.clone(), _dir: dir });
        let mut dirs: Vec<String> = self.slices.keys().cloned().collect();
        dirs.sort();
        for (i, d) in dirs.iter().enumerate() {
            let parts: Vec<RecordBatch> =
                self.slices[d].iter().map(|&(b, offset, len)| self.pending[b].slice(offset, len)).collect();
            let batch = concat_batches(&self.schema, &parts).map_err(ipc)?;
            w.write(&batch).map_err(ipc)?;
            let p = self.partitions.get_mut(d).expect("pushed before");
            p.chunks.push(Chunk { run: run.clone(), batch: i });
        }
        w.finish().map_err(ipc)?;
        crate::cancel::crash_point("spill-run");
        self.pending.clear();
        self.slices.clear();
        self.pending_bytes = 0;
        Ok(())
    }

    /// Write what is waiting; the spilled partitions, for [`merge`].
    pub fn finish(mut self) -> Result<BTreeMap<String, Spilled>> {
        self.write_run()?;
        Ok(self.partitions)
    }
}

/// Write every spilled partition of every worker into its own file(s), on
/// `jobs` threads, largest partition first. `make_sink(t)` gives thread `t`
/// its sink (files are named after it); each sink has one file open at a time.
/// `written(rows)` is called as rows are written (progress).
pub fn write_partitions(
    spilled: Vec<BTreeMap<String, Spilled>>,
    jobs: usize,
    make_sink: impl Fn(usize) -> Result<DatasetSink> + Sync,
    written: impl Fn(u64) + Sync,
) -> Result<Vec<CommittedFile>> {
    let mut all: BTreeMap<String, Spilled> = BTreeMap::new();
    for worker in spilled {
        for (dir, s) in worker {
            match all.get_mut(&dir) {
                Some(p) => {
                    p.rows += s.rows;
                    p.chunks.extend(s.chunks);
                }
                None => {
                    all.insert(dir, s);
                }
            }
        }
    }
    let mut work: Vec<(String, Spilled)> = all.into_iter().collect();
    work.sort_by_key(|(_, s)| std::cmp::Reverse(s.rows));
    if work.is_empty() {
        return Ok(Vec::new());
    }
    let per_worker = crate::pool::run(
        jobs,
        work.len(),
        crate::pool::Queue::Shared,
        |t| Ok((make_sink(t)?, Readers::default())),
        |(sink, readers), i, _| {
            let (dir, p) = &work[i];
            for c in &p.chunks {
                crate::cancel::check()?;
                let batch = readers.read(c)?;
                let rows = batch.num_rows() as u64;
                sink.write_to(dir, &p.values, batch)?;
                written(rows);
            }
            sink.close(dir)?;
            crate::cancel::crash_point("merge-partition");
            Ok(true)
        },
        |_, (mut sink, _)| Ok(std::mem::take(&mut sink.written)),
    )?;
    Ok(per_worker.into_iter().flatten().collect())
}

/// Open spill files of one merge thread (a bounded number, so a long
/// conversion's hundreds of runs do not exhaust file handles).
#[derive(Default)]
struct Readers {
    open: HashMap<PathBuf, FileReader<BufReader<File>>>,
}

impl Readers {
    const MAX_OPEN: usize = 32;

    fn read(&mut self, c: &Chunk) -> Result<RecordBatch> {
        let name = c.run.path.display().to_string();
        let ipc = |e| Error::engine(format!("reading spill file {name}"), e);
        if !self.open.contains_key(&c.run.path) {
            if self.open.len() >= Self::MAX_OPEN {
                self.open.clear();
            }
            let f = File::open(&c.run.path).map_err(|e| Error::io(name.clone(), e))?;
            self.open.insert(c.run.path.clone(), FileReader::try_new_buffered(f, None).map_err(ipc)?);
        }
        let r = self.open.get_mut(&c.run.path).expect("opened above");
        r.set_index(c.batch).map_err(ipc)?;
        r.next().ok_or_else(|| Error::Verify(format!("spill file {name} ended early")))?.map_err(ipc)
    }
}
