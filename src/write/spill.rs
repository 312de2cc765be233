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
//! Once a worker spills, it spills source lines instead (see
//! [`Spill::push_lines`]): a partition's chunk of lines is the LZ4 blocks its
//! groups of lines were packed into as they came, a block per group (a
//! partition's lines in one batch of source lines; 64 KiB at most), which
//! the replay after the scan unpacks one at a time.
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
use crate::pipeline::{Replay, Replayed};

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
    /// Source lines waiting for the next run, by partition, already packed
    /// (see [`Spill::push_lines`]).
    lines: HashMap<String, PackedLines>,
    /// Where a group of lines is laid out, and packed, before it joins its partition's.
    scratch: Vec<u8>,
    packed: Vec<u8>,
    pending_bytes: usize,
    runs: usize,
    partitions: BTreeMap<String, Spilled>,
}

/// A partition's waiting source lines: LZ4 blocks, each `[u32 unpacked
/// length][u32 packed length][block]`, and their unpacked length in all.
#[derive(Default)]
struct PackedLines {
    blocks: Vec<u8>,
    unpacked: usize,
}

/// A partition's rows in spill files.
pub struct Spilled {
    pub values: Vec<Option<String>>,
    pub rows: u64,
    /// Of the rows, those spilled as source lines (decoded after the scan).
    pub lines: u64,
    chunks: Vec<Chunk>,
}

/// One partition's rows in one run: where the chunk is in the run's file.
struct Chunk {
    run: Arc<Run>,
    offset: u64,
    /// What the chunk holds: rows (an IPC message) or source lines.
    lines: bool,
    /// The IPC message header's length (stored as is, first; 0 for lines).
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
            lines: HashMap::new(),
            scratch: Vec::new(),
            packed: Vec::new(),
            pending_bytes: 0,
            runs: 0,
            partitions: BTreeMap::new(),
        }
    }

    /// Lines are packed in blocks of about this many bytes at most (a
    /// partition's lines in a batch of source lines are usually fewer: one
    /// block), so that the buffers they are packed from stay small.
    const BLOCK: usize = 64 << 10;

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
            self.partitions
                .entry(dir)
                .or_insert_with(|| Spilled { values, rows: 0, lines: 0, chunks: Vec::new() })
                .rows += len as u64;
        }
    }

    /// Source lines of partition `dir`, from data file `file`: (line number,
    /// text). Laid out as records of the file (u32), the line number (u64)
    /// and the length (u32), little-endian, then the text, and packed as LZ4
    /// blocks of 64 KiB at most (`PackedLines`).
    ///
    /// Packing here, while the lines are in cache, and keeping the packed
    /// blocks costs less than copying the lines into their partition's
    /// buffer and packing that when the run is written (hundreds of growing
    /// buffers, filled a few lines at a time): on a `day(…)` conversion of
    /// the 2M-item corpus the same to 5 % less time and 20–30 MiB less peak
    /// memory, for ~19 % more spill on disk (a group of lines is a small
    /// LZ4 block, ~15 KB there; 570 against 478 MB at most). Priming each
    /// block with a dictionary of lines seen earlier won back the disk
    /// (8 KiB: 503 MB; 16 KiB: 485 MB) and cost what the change saved.
    pub fn push_lines<'a>(
        &mut self,
        dir: String,
        values: Vec<Option<String>>,
        file: usize,
        lines: impl Iterator<Item = (u64, &'a [u8])>,
    ) -> Result<()> {
        let packed = self.lines.entry(dir.clone()).or_default();
        let before = packed.blocks.capacity();
        self.scratch.clear();
        let mut n = 0;
        for (number, text) in lines {
            let raw = &mut self.scratch;
            raw.extend_from_slice(&(file as u32).to_le_bytes());
            raw.extend_from_slice(&number.to_le_bytes());
            raw.extend_from_slice(&(text.len() as u32).to_le_bytes());
            raw.extend_from_slice(text);
            n += 1;
            if raw.len() >= Self::BLOCK {
                pack(raw, &mut self.packed, packed)?;
            }
        }
        if !self.scratch.is_empty() {
            pack(&mut self.scratch, &mut self.packed, packed)?;
        }
        // Capacity, not length: hundreds of growing buffers hold up to twice their bytes.
        self.pending_bytes += packed.blocks.capacity() - before;
        let p = self.partitions.entry(dir).or_insert_with(|| Spilled { values, rows: 0, lines: 0, chunks: Vec::new() });
        p.rows += n;
        p.lines += n;
        Ok(())
    }

    /// Write the waiting rows as one run: a chunk per partition (and one
    /// more for its source lines, if any).
    pub fn write_run(&mut self) -> Result<()> {
        if self.pending.is_empty() && self.lines.is_empty() {
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
            let need = lz4_flex::block::get_maximum_output_size(encoded.arrow_data.len());
            if packed.len() < need {
                packed.resize(need, 0); // grown only: resizing down and up again would zero it each time
            }
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
                lines: false,
                header: encoded.ipc_message.len(),
                packed: n,
                body: encoded.arrow_data.len(),
                crc: crc.sum(),
            });
            offset += (encoded.ipc_message.len() + n) as u64;
        }
        let mut dirs: Vec<&String> = self.lines.keys().collect();
        dirs.sort();
        for d in dirs {
            let packed = &self.lines[d];
            w.write_all(&packed.blocks).map_err(io)?;
            let crc = {
                let mut crc = flate2::Crc::new();
                crc.update(&packed.blocks);
                crc.sum()
            };
            let (n, body) = (packed.blocks.len(), packed.unpacked);
            let p = self.partitions.get_mut(d).expect("pushed before");
            p.chunks.push(Chunk { run: run.clone(), offset, lines: true, header: 0, packed: n, body, crc });
            offset += n as u64;
        }
        w.flush().map_err(io)?;
        crate::cancel::crash_point("spill-run");
        self.pending.clear();
        self.slices.clear();
        self.lines.clear();
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
/// Spilled source lines are decoded by a [`Replay`] from `replay` (a scan
/// whose sinks took lines must give one). `written(rows)` is called as rows
/// are written (progress). Returns the files, and what decoding the lines found.
pub fn write_partitions<'a>(
    spilled: Vec<BTreeMap<String, Spilled>>,
    jobs: usize,
    make_sink: impl Fn(usize) -> Result<DatasetSink> + Sync,
    replay: Option<&(dyn Fn() -> Replay<'a> + Sync)>,
    written: impl Fn(u64) + Sync,
) -> Result<(Vec<CommittedFile>, Replayed)> {
    let mut all: BTreeMap<String, Spilled> = BTreeMap::new();
    for worker in spilled {
        for (dir, s) in worker {
            match all.get_mut(&dir) {
                Some(p) => {
                    p.rows += s.rows;
                    p.lines += s.lines;
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
        return Ok((Vec::new(), Replayed::default()));
    }
    let per_worker = crate::pool::run(
        jobs,
        work.len(),
        crate::pool::Queue::Shared,
        |t| Ok((make_sink(t)?, Readers::default(), replay.map(|r| r()))),
        |(sink, readers, replay), i, _| {
            let (dir, p) = &work[i];
            for c in &p.chunks {
                crate::cancel::check()?;
                if !c.lines {
                    let batch = readers.read(c)?;
                    let rows = batch.num_rows() as u64;
                    sink.write_to(dir, &p.values, batch, p.rows)?;
                    written(rows);
                    continue;
                }
                let replay = replay.as_mut().ok_or_else(|| {
                    Error::Verify(format!(
                        "spill file {}: source lines, and nothing to decode them",
                        c.run.path.display()
                    ))
                })?;
                let mut write = |b: Option<RecordBatch>| -> Result<()> {
                    if let Some(b) = b {
                        let rows = b.num_rows() as u64;
                        sink.write_rows_to(dir, &p.values, b, p.rows)?;
                        written(rows);
                    }
                    Ok(())
                };
                let mut blocks = readers.lines(c)?;
                let mut full = Vec::new();
                while let Some(mut rest) = blocks.next().map_err(|e| spoilt(c, e))? {
                    // A block's lines decoded under one clock reading; full
                    // batches written after it (encoding is not decoding).
                    replay.timed(|replay| {
                        while !rest.is_empty() {
                            let (file, number, line, after) =
                                next_line(rest).ok_or_else(|| spoilt(c, "a line record is cut short"))?;
                            rest = after;
                            full.extend(replay.line(file, number, line)?);
                        }
                        Ok(())
                    })?;
                    for b in full.drain(..) {
                        write(Some(b))?;
                    }
                }
                write(replay.timed(Replay::flush)?)?;
            }
            sink.close(dir)?;
            crate::cancel::crash_point("merge-partition");
            Ok(true)
        },
        |_, (mut sink, _, replay)| Ok((std::mem::take(&mut sink.written), replay.map(Replay::finish))),
    )?;
    let mut files = Vec::new();
    let mut replayed = Replayed::default();
    for (f, r) in per_worker {
        files.extend(f);
        if let Some(r) = r {
            replayed.add(r);
        }
    }
    Ok((files, replayed))
}

/// The first line record of `rest` (see [`Spill::push_lines`]): its file,
/// line number and text, and what follows it.
fn next_line(rest: &[u8]) -> Option<(usize, u64, &[u8], &[u8])> {
    let file = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let number = u64::from_le_bytes(rest.get(4..12)?.try_into().ok()?);
    let len = u32::from_le_bytes(rest.get(12..16)?.try_into().ok()?) as usize;
    let text = rest.get(16..16 + len)?;
    Some((file, number, text, &rest[16 + len..]))
}

/// Pack the lines laid out in `raw` as one more LZ4 block of `to`, and empty `raw`.
fn pack(raw: &mut Vec<u8>, scratch: &mut Vec<u8>, to: &mut PackedLines) -> Result<()> {
    let need = lz4_flex::block::get_maximum_output_size(raw.len());
    if scratch.len() < need {
        scratch.resize(need, 0); // grown only: resizing down and up again would zero it each time
    }
    let size = lz4_flex::block::compress_into(raw, scratch)
        .map_err(|e| Error::Verify(format!("packing spilled lines: {e}")))?;
    to.blocks.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    to.blocks.extend_from_slice(&(size as u32).to_le_bytes());
    to.blocks.extend_from_slice(&scratch[..size]);
    to.unpacked += raw.len();
    raw.clear();
    Ok(())
}

/// The LZ4 blocks of a chunk of source lines (see [`PackedLines`]), unpacked
/// one at a time: a partition's lines are decoded after the scan a block
/// (~64 KiB at most) at a time, not a chunk (up to a worker's memory budget).
struct Blocks<'a> {
    stored: &'a [u8],
    out: &'a mut Vec<u8>,
    /// Bytes unpacked so far, and at most.
    unpacked: usize,
    size: usize,
}

impl<'a> Blocks<'a> {
    fn new(stored: &'a [u8], out: &'a mut Vec<u8>, size: usize) -> Self {
        Blocks { stored, out, unpacked: 0, size }
    }

    /// The next block's lines (whole records), or `None` after the last,
    /// which must have unpacked to the chunk's size.
    fn next(&mut self) -> std::result::Result<Option<&[u8]>, String> {
        let stored = self.stored;
        if stored.is_empty() {
            return match self.unpacked == self.size {
                true => Ok(None),
                false => Err(format!("a chunk of {} bytes unpacked to {}", self.size, self.unpacked)),
            };
        }
        let field =
            |i: usize| stored.get(i..i + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize);
        let (Some(raw), Some(packed)) = (field(0), field(4)) else {
            return Err("a block of source lines is cut short".into());
        };
        let block = stored.get(8..8 + packed).ok_or("a block of source lines is cut short")?;
        if self.unpacked + raw > self.size {
            return Err("the blocks unpack to more than the chunk holds".into());
        }
        if self.out.len() < raw {
            self.out.resize(raw, 0);
        }
        let n = lz4_flex::block::decompress_into(block, &mut self.out[..raw]).map_err(|e| e.to_string())?;
        if n != raw {
            return Err(format!("a block of {raw} bytes unpacked to {n}"));
        }
        self.unpacked += raw;
        self.stored = &stored[8 + packed..];
        Ok(Some(&self.out[..raw]))
    }
}

/// Open spill files of one merge thread (a bounded number, so a long
/// conversion's hundreds of runs do not exhaust file handles), and the
/// buffer chunks are read into.
#[derive(Default)]
struct Readers {
    open: HashMap<PathBuf, File>,
    stored: Vec<u8>,
    /// A block of source lines, unpacked.
    block: Vec<u8>,
}

/// A spill file's chunk is not what was written.
fn spoilt(c: &Chunk, what: impl std::fmt::Display) -> Error {
    Error::Verify(format!("spill file {} at byte {}: {what}", c.run.path.display(), c.offset))
}

impl Readers {
    const MAX_OPEN: usize = 32;

    /// Read a chunk's stored bytes into `self.stored` and check its checksum.
    fn fetch(&mut self, c: &Chunk) -> Result<()> {
        let name = c.run.path.display().to_string();
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
            return Err(spoilt(c, "the chunk's checksum does not match: the file was damaged after it was written"));
        }
        Ok(())
    }

    /// A chunk of source lines, its checksum checked, to be unpacked a block at a time.
    fn lines(&mut self, c: &Chunk) -> Result<Blocks<'_>> {
        self.fetch(c)?;
        Ok(Blocks::new(&self.stored, &mut self.block, c.body))
    }

    /// A chunk of rows' body, its checksum checked and unpacked; its IPC
    /// header is left at the start of `self.stored`.
    fn unpack(&mut self, c: &Chunk) -> Result<Vec<u8>> {
        self.fetch(c)?;
        let body = lz4_flex::block::decompress(&self.stored[c.header..], c.body).map_err(|e| spoilt(c, e))?;
        if body.len() != c.body {
            return Err(spoilt(c, format!("a chunk of {} bytes unpacked to {}", c.body, body.len())));
        }
        Ok(body)
    }

    fn read(&mut self, c: &Chunk) -> Result<RecordBatch> {
        let body = self.unpack(c)?;
        let name = c.run.path.display().to_string();
        let bad = |what: String| Error::Verify(format!("spill file {name} at byte {}: {what}", c.offset));
        let message = arrow::ipc::root_as_message(&self.stored[..c.header]).map_err(|e| bad(e.to_string()))?;
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

    /// Source lines come back exactly, byte for byte with their file and line
    /// numbers, from runs that also hold rows, in the order they were pushed;
    /// a damaged line chunk is an error naming its file.
    #[test]
    fn source_lines_come_back_exactly_and_damage_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let b = batch(10, 1);
        let mut spill = Spill::new(dir.path(), b.schema());
        let text = |i: u64| format!("{{\"Item\":{{\"n\":{{\"N\":\"{i}\"}}}}}} é \\\"{}", "x".repeat((i % 37) as usize));
        let mut want: BTreeMap<String, Vec<(usize, u64, String)>> = BTreeMap::new();
        for run in 0..3u64 {
            spill.push(b.clone(), vec![("p=rows".into(), vec![Some("rows".into())], 0, 10)]);
            for p in 0..4u64 {
                let dir = format!("p={p}");
                // Partition 3's lines are long: its groups outgrow a block.
                let long = if p == 3 { 100 } else { 1 };
                let lines: Vec<(u64, String)> =
                    (0..50).map(|i| (run * 1000 + p * 100 + i + 1, text(i + p).repeat(long))).collect();
                let file = (run + p) as usize;
                want.entry(dir.clone()).or_default().extend(lines.iter().map(|(n, t)| (file, *n, t.clone())));
                // In two groups: a chunk holds a block per group pushed.
                for half in lines.chunks(30) {
                    let half = half.iter().map(|(n, t)| (*n, t.as_bytes()));
                    spill.push_lines(dir.clone(), vec![Some(p.to_string())], file, half).unwrap();
                }
            }
            spill.write_run().unwrap();
        }
        let spilled = spill.finish().unwrap();
        assert_eq!(spilled["p=rows"].lines, 0);
        let mut readers = Readers::default();
        for (d, w) in &want {
            let s = &spilled[d];
            assert_eq!((s.rows, s.lines), (150, 150));
            assert_eq!(s.chunks.len(), 3, "a chunk per run");
            let mut got = Vec::new();
            for c in &s.chunks {
                let mut blocks = readers.lines(c).unwrap();
                while let Some(mut rest) = blocks.next().unwrap() {
                    while !rest.is_empty() {
                        let (file, number, line, after) = next_line(rest).expect("whole records");
                        got.push((file, number, String::from_utf8(line.to_vec()).unwrap()));
                        rest = after;
                    }
                }
            }
            assert_eq!(&got, w, "partition {d}");
        }
        let c = &spilled["p=2"].chunks[1];
        let mut bytes = std::fs::read(&c.run.path).unwrap();
        bytes[c.offset as usize + c.packed / 2] ^= 0x21;
        std::fs::write(&c.run.path, bytes).unwrap();
        let err = Readers::default().lines(c).err().expect("a damaged chunk").to_string();
        assert!(err.contains(&c.run.path.display().to_string()) && err.contains("checksum"), "{err}");
        assert!(next_line(&[1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, b'x']).is_none(), "a record cut short");
        let blocks = |c: &Chunk| {
            let stored = &std::fs::read(&c.run.path).unwrap()[c.offset as usize..][..c.packed];
            let mut at = 0;
            std::iter::from_fn(|| {
                let packed = u32::from_le_bytes(stored.get(at + 4..at + 8)?.try_into().unwrap()) as usize;
                at += 8 + packed;
                Some(())
            })
            .count()
        };
        assert_eq!(blocks(&spilled["p=1"].chunks[0]), 2, "a block per group pushed");
        assert!(blocks(&spilled["p=3"].chunks[0]) > 2, "long groups are packed in several blocks");
        // Blocks cut short, or unpacking to more than the chunk says, are refused.
        let c = &spilled["p=1"].chunks[0];
        let stored = &std::fs::read(&c.run.path).unwrap()[c.offset as usize..][..c.packed];
        let unpack = |stored: &[u8], size: usize| {
            let mut out = Vec::new();
            let mut blocks = Blocks::new(stored, &mut out, size);
            let mut n = 0;
            while let Some(b) = blocks.next()? {
                n += b.len();
            }
            Ok::<usize, String>(n)
        };
        assert_eq!(unpack(stored, c.body), Ok(c.body));
        assert!(unpack(&stored[..stored.len() - 3], c.body).unwrap_err().contains("cut short"));
        assert!(unpack(stored, c.body - 1).unwrap_err().contains("more than the chunk holds"));
        assert!(unpack(stored, c.body + 1).unwrap_err().contains("unpacked to"), "less than the chunk holds");
    }
}
