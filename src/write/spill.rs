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
//! to a spill file: a *chunk* per partition, in partition order. After the
//! scan, [`write_partitions`] writes each spilled partition, from the runs of
//! every worker, into its own file(s).
//!
//! A chunk is one Arrow IPC record-batch message: its flatbuffer header as
//! is, then its body as one LZ4 block, at an offset the [`Spilled`] entry
//! keeps. Not an IPC file with per-buffer LZ4 frames: with hundreds of
//! partitions a chunk holds a few hundred rows, and a frame per buffer (three
//! a column) cost more in allocating, zeroing and framing than in
//! compressing: on a `day(…)` conversion LZ4 took ~11 % of the CPU that way,
//! ~6 % as one block per chunk, which also decompresses straight into the
//! buffer the batch then owns (and packs tighter: 435 against 540 MB of
//! spill at most on the 2M-item corpus). Each chunk carries a CRC-32 of its
//! stored bytes, checked before decoding: LZ4's decoder trusts its input.
//!
//! Spill files live in a temporary directory (under `--spill-dir`, else the
//! system's), removed when the last run referring to it is dropped, whether
//! the conversion commits or fails.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions};

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

/// One partition's rows in one run: where the chunk is in the run's file.
struct Chunk {
    run: Arc<Run>,
    offset: u64,
    /// The IPC message header's length (stored as is, first).
    header: usize,
    /// The body's length as an LZ4 block (stored after the header), and unpacked.
    packed: usize,
    body: usize,
    /// CRC-32 of the stored bytes: LZ4's decoder trusts its input, so a
    /// damaged file must be caught before it is decoded.
    crc: u32,
}

struct Run {
    path: PathBuf,
    schema: SchemaRef,
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

    /// Write the waiting rows as one run: a chunk per partition.
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
        let path = dir.path().join(format!("run-{:05}.chunks", self.runs));
        self.runs += 1;
        let name = path.display().to_string();
        let ipc = |e| Error::engine(format!("writing spill file {name}"), e);
        let io = |e| Error::io(name.clone(), e);
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&path).map_err(io)?);
        let run = Arc::new(Run { path: path.clone(), schema: self.schema.clone(), _dir: dir });
        let generator = IpcDataGenerator::default();
        let options = IpcWriteOptions::default();
        let mut dictionaries = DictionaryTracker::new(false);
        let mut context = IpcWriteContext::default();
        let mut packed = Vec::new();
        let mut offset = 0u64;
        let mut dirs: Vec<&String> = self.slices.keys().collect();
        dirs.sort();
        for d in dirs {
            // Each waiting batch holds a partition's rows together (the sink
            // sorted them): concatenating copies runs, not single rows.
            let parts: Vec<RecordBatch> =
                self.slices[d].iter().map(|&(b, offset, len)| self.pending[b].slice(offset, len)).collect();
            let batch = concat_batches(&self.schema, &parts).map_err(ipc)?;
            let (dicts, encoded) = generator.encode(&batch, &mut dictionaries, &options, &mut context).map_err(ipc)?;
            if !dicts.is_empty() {
                return Err(Error::Verify(format!("spill file {name}: dictionary columns cannot be spilled")));
            }
            packed.resize(lz4_flex::block::get_maximum_output_size(encoded.arrow_data.len()), 0);
            let n = lz4_flex::block::compress_into(&encoded.arrow_data, &mut packed)
                .map_err(|e| Error::Verify(format!("compressing spill file {name}: {e}")))?;
            w.write_all(&encoded.ipc_message).map_err(io)?;
            w.write_all(&packed[..n]).map_err(io)?;
            let mut crc = flate2::Crc::new();
            crc.update(&encoded.ipc_message);
            crc.update(&packed[..n]);
            let p = self.partitions.get_mut(d).expect("pushed before");
            p.chunks.push(Chunk {
                run: run.clone(),
                offset,
                header: encoded.ipc_message.len(),
                packed: n,
                body: encoded.arrow_data.len(),
                crc: crc.sum(),
            });
            offset += (encoded.ipc_message.len() + n) as u64;
        }
        w.flush().map_err(io)?;
        crate::cancel::crash_point("spill-run");
        self.pending.clear();
        self.slices.clear();
        self.pending_bytes = 0;
        Ok(())
    }

    /// Write what is waiting; the spilled partitions, for [`write_partitions`].
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
                sink.write_to(dir, &p.values, batch, p.rows)?;
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
/// conversion's hundreds of runs do not exhaust file handles), and the
/// buffer chunks are read into.
#[derive(Default)]
struct Readers {
    open: HashMap<PathBuf, File>,
    stored: Vec<u8>,
}

impl Readers {
    const MAX_OPEN: usize = 32;

    fn read(&mut self, c: &Chunk) -> Result<RecordBatch> {
        let name = c.run.path.display().to_string();
        let bad = |what: String| Error::Verify(format!("spill file {name} at byte {}: {what}", c.offset));
        if !self.open.contains_key(&c.run.path) {
            if self.open.len() >= Self::MAX_OPEN {
                self.open.clear();
            }
            let f = File::open(&c.run.path).map_err(|e| Error::io(name.clone(), e))?;
            self.open.insert(c.run.path.clone(), f);
        }
        let f = self.open.get_mut(&c.run.path).expect("opened above");
        self.stored.resize(c.header + c.packed, 0);
        f.seek(SeekFrom::Start(c.offset))
            .and_then(|_| f.read_exact(&mut self.stored))
            .map_err(|e| Error::io(name.clone(), e))?;
        let mut crc = flate2::Crc::new();
        crc.update(&self.stored);
        if crc.sum() != c.crc {
            return Err(bad("the chunk's checksum does not match: the file was damaged after it was written".into()));
        }
        let (header, packed) = self.stored.split_at(c.header);
        let body = lz4_flex::block::decompress(packed, c.body).map_err(|e| bad(e.to_string()))?;
        if body.len() != c.body {
            return Err(bad(format!("a chunk of {} bytes unpacked to {}", c.body, body.len())));
        }
        let message = arrow::ipc::root_as_message(header).map_err(|e| bad(e.to_string()))?;
        let batch = message.header_as_record_batch().ok_or_else(|| bad("not a record batch".into()))?;
        arrow::ipc::reader::read_record_batch(
            &Buffer::from(body),
            batch,
            c.run.schema.clone(),
            &HashMap::new(),
            None,
            &message.version(),
        )
        .map_err(|e| bad(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        ArrayRef, BinaryArray, BooleanArray, Decimal128Array, Int64Array, ListBuilder, StringArray, StringBuilder,
        StructArray, UInt32Array,
    };
    use arrow::datatypes::{DataType, Field, Schema};

    /// A batch of every shape the decoder makes: text and bytes with nulls,
    /// exact decimals, lists, structs.
    fn batch(n: usize, seed: usize) -> RecordBatch {
        let text: StringArray = (0..n).map(|i| (i % 7 != 3).then(|| format!("s{}-{}", seed, i * 31))).collect();
        let bytes: BinaryArray = BinaryArray::from_iter((0..n).map(|i| (i % 5 != 0).then(|| vec![i as u8; i % 9])));
        let num = Decimal128Array::from(
            (0..n).map(|i| (i % 4 != 1).then_some(i as i128 * 1_000_003 - 7)).collect::<Vec<_>>(),
        )
        .with_precision_and_scale(38, 3)
        .unwrap();
        let mut list = ListBuilder::new(StringBuilder::new());
        for i in 0..n {
            if i % 6 == 2 {
                list.append_null();
            } else {
                for j in 0..i % 4 {
                    list.values().append_value(format!("e{j}"));
                }
                list.append(true);
            }
        }
        let flag: BooleanArray = (0..n).map(|i| (i % 3 != 0).then_some(i % 2 == 0)).collect();
        let count: Int64Array = (0..n).map(|i| Some(i as i64 - 5)).collect();
        let inner = StructArray::from(vec![
            (Arc::new(Field::new("flag", DataType::Boolean, true)), Arc::new(flag) as ArrayRef),
            (Arc::new(Field::new("count", DataType::Int64, true)), Arc::new(count) as ArrayRef),
        ]);
        let cols: Vec<ArrayRef> =
            vec![Arc::new(text), Arc::new(bytes), Arc::new(num), Arc::new(list.finish()), Arc::new(inner)];
        let fields: Vec<Field> =
            cols.iter().enumerate().map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true)).collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    }

    /// Rows of two runs, pushed as the sink pushes them (a partition's rows
    /// scattered over each batch), come back per partition exactly, in order.
    #[test]
    fn partitions_come_back_exactly_from_every_run() {
        let dir = tempfile::tempdir().unwrap();
        let batches = [batch(1000, 1), batch(700, 2), batch(1300, 3)];
        let mut spill = Spill::new(dir.path(), batches[0].schema());
        let part = |row: usize| format!("p={}", row % 3);
        let mut want: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
        for (i, b) in batches.iter().enumerate() {
            // As the sink does: the batch sorted by partition, a slice each.
            let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for r in 0..b.num_rows() {
                groups.entry(part(r + i)).or_default().push(r as u32);
            }
            let order: Vec<u32> = groups.values().flatten().copied().collect();
            let sorted = arrow::compute::take_record_batch(b, &UInt32Array::from(order)).unwrap();
            let mut slices = Vec::new();
            let mut offset = 0;
            for (d, rows) in groups {
                want.entry(d.clone()).or_default().push(sorted.slice(offset, rows.len()));
                slices.push((d.clone(), vec![Some(d)], offset, rows.len()));
                offset += rows.len();
            }
            spill.push(sorted, slices);
            if i == 1 {
                spill.write_run().unwrap(); // the first run: two batches; the second: one
            }
        }
        let spilled = spill.finish().unwrap();
        assert_eq!(spilled.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
        let mut readers = Readers::default();
        for (d, s) in &spilled {
            let got: Vec<RecordBatch> = s.chunks.iter().map(|c| readers.read(c).unwrap()).collect();
            assert_eq!(got.len(), 2, "a chunk per run");
            let schema = batches[0].schema();
            let got = arrow::compute::concat_batches(&schema, &got).unwrap();
            let want = arrow::compute::concat_batches(&schema, &want[d]).unwrap();
            assert_eq!(s.rows, want.num_rows() as u64);
            assert_eq!(got, want, "partition {d}");
        }
    }

    /// One chunk of 500 rows spilled, read back once whole; then `damage`
    /// is done to its file, and reading it again must fail naming the file.
    fn damaged_chunk_error(damage: impl FnOnce(&Path, &Chunk)) -> String {
        let dir = tempfile::tempdir().unwrap();
        let b = batch(500, 8);
        let mut spill = Spill::new(dir.path(), b.schema());
        spill.push(b.clone(), vec![("p=1".into(), vec![Some("1".into())], 0, 500)]);
        let spilled = spill.finish().unwrap();
        let chunk = &spilled["p=1"].chunks[0];
        assert_eq!(Readers::default().read(chunk).unwrap(), b);
        damage(&chunk.run.path, chunk);
        let err = Readers::default().read(chunk).unwrap_err().to_string();
        assert!(err.contains(&chunk.run.path.display().to_string()), "{err}");
        err
    }

    /// A damaged spill file is an error naming it, never decoded.
    #[test]
    fn a_damaged_spill_file_is_an_error_naming_it() {
        let err = damaged_chunk_error(|path, chunk| {
            let mut bytes = std::fs::read(path).unwrap();
            bytes[chunk.header + chunk.packed / 2] ^= 0x5a;
            std::fs::write(path, bytes).unwrap();
        });
        assert!(err.contains("checksum"), "{err}");
    }

    /// A spill file cut short is an error naming it, not a panic or short data.
    #[test]
    fn a_truncated_spill_file_is_an_error_naming_it() {
        damaged_chunk_error(|path, chunk| {
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            f.set_len((chunk.header + chunk.packed / 2) as u64).unwrap();
        });
    }
}
