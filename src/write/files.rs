//! Output files: a local file or an S3 multipart upload behind one `Write`,
//! and the three formats on top of it.
//!
//! S3 uploads go part by part (5 MiB parts, the smallest S3 takes, a few in
//! flight), so memory does not grow with file size; an upload that is dropped
//! before `finish` is aborted, not left billing. What a file holds in memory
//! is reported ([`OutFile::buffered`]) and counts against the worker's budget.

use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::text::{csv_quote, write_cell, write_json};
use crate::error::{Error, Result};
use crate::store::Location;

/// An output file being written.
pub trait OutFile: Write + Send {
    /// Complete the file; returns its size in bytes.
    fn finish(self: Box<Self>) -> Result<u64>;
    /// Bytes written but held in memory (not yet on disk or uploaded).
    fn buffered(&self) -> usize;
}

/// Create `path` in `loc`'s store for writing.
pub fn create(loc: &Location, path: &Path, rt: &tokio::runtime::Handle) -> Result<Box<dyn OutFile>> {
    if let Some(p) = loc.local_path(path) {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        }
        let f = std::fs::File::create(&p).map_err(|e| Error::io(p.display().to_string(), e))?;
        return Ok(Box::new(LocalOut {
            w: BufWriter::with_capacity(LOCAL_BUFFER, f),
            bytes: 0,
            name: p.display().to_string(),
        }));
    }
    let upload = rt
        .block_on(loc.store.put_multipart(path))
        .map_err(|e| Error::store(format!("starting upload of {}", loc.display(path)), e))?;
    Ok(Box::new(S3Out {
        wm: Some(WriteMultipart::new_with_chunk_size(upload, S3_PART)),
        rt: rt.clone(),
        bytes: 0,
        name: loc.display(path),
    }))
}

/// Parquet writes a row group's pages in one go; this only batches syscalls.
const LOCAL_BUFFER: usize = 256 << 10;
/// S3's minimum part size: what an open upload holds before sending a part.
const S3_PART: usize = 5 << 20;

struct LocalOut {
    w: BufWriter<std::fs::File>,
    bytes: u64,
    name: String,
}

impl Write for LocalOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.w.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

impl OutFile for LocalOut {
    fn finish(mut self: Box<Self>) -> Result<u64> {
        self.w.flush().map_err(|e| Error::io(self.name.clone(), e))?;
        Ok(self.bytes)
    }
    fn buffered(&self) -> usize {
        self.w.buffer().len()
    }
}

struct S3Out {
    wm: Option<WriteMultipart>,
    rt: tokio::runtime::Handle,
    bytes: u64,
    name: String,
}

impl Write for S3Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let wm = self.wm.as_mut().ok_or_else(|| io::Error::other("upload already finished"))?;
        // A full part is sent by a task spawned on the runtime: writers run on
        // plain threads, so enter the runtime's context for the spawn.
        let _context = self.rt.enter();
        wm.write(buf);
        self.bytes += buf.len() as u64;
        self.rt.block_on(wm.wait_for_capacity(4)).map_err(io::Error::other)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl OutFile for S3Out {
    fn finish(mut self: Box<Self>) -> Result<u64> {
        let wm = self.wm.take().expect("finished once");
        self.rt.block_on(wm.finish()).map_err(|e| Error::store(format!("completing upload of {}", self.name), e))?;
        Ok(self.bytes)
    }
    fn buffered(&self) -> usize {
        (self.bytes % S3_PART as u64) as usize
    }
}

impl Drop for S3Out {
    fn drop(&mut self) {
        if let Some(wm) = self.wm.take() {
            // An upload dropped before `finish` (a failed or interrupted run)
            // is aborted, so S3 keeps no parts to bill for.
            let _context = self.rt.enter();
            let _ = self.rt.block_on(wm.abort());
        }
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Parquet,
    Csv,
    Jsonl,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

/// Parquet compression: `zstd` (level 1 by default), `zstd:N`, `snappy`, `gzip`, `lz4`, `none`.
pub fn parse_compression(s: &str) -> Result<PqCompression> {
    let (name, level) = s.split_once(':').map_or((s, None), |(a, b)| (a, Some(b)));
    let level_num = |d: i32| -> Result<i32> {
        level.map_or(Ok(d), |l| l.parse().map_err(|_| Error::Usage(format!("bad compression level in `{s}`"))))
    };
    Ok(match name.to_ascii_lowercase().as_str() {
        "zstd" => {
            PqCompression::ZSTD(ZstdLevel::try_new(level_num(1)?).map_err(|e| Error::Usage(format!("`{s}`: {e}")))?)
        }
        "snappy" => PqCompression::SNAPPY,
        "gzip" => PqCompression::GZIP(Default::default()),
        "lz4" => PqCompression::LZ4_RAW,
        "none" | "uncompressed" => PqCompression::UNCOMPRESSED,
        _ => {
            return Err(Error::Usage(format!(
                "unknown compression `{s}`; use zstd[:LEVEL], snappy, gzip, lz4 or none"
            )));
        }
    })
}

/// Parquet settings shared by every file of a run.
#[derive(Clone)]
pub struct ParquetSettings {
    pub compression: PqCompression,
    pub row_group_rows: usize,
    pub row_group_bytes: usize,
    pub metadata: Vec<KeyValue>,
}

/// One open output file in one format.
pub enum FormatWriter {
    Parquet(Box<ArrowWriter<Box<dyn OutFile>>>),
    Csv { out: Box<dyn OutFile>, schema: SchemaRef, line: Vec<u8>, cell: Vec<u8> },
    Jsonl { out: Box<dyn OutFile>, schema: SchemaRef, line: Vec<u8> },
}

impl FormatWriter {
    pub fn new(format: Format, out: Box<dyn OutFile>, schema: SchemaRef, pq: &ParquetSettings) -> Result<FormatWriter> {
        Ok(match format {
            Format::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(pq.compression)
                    .set_statistics_enabled(EnabledStatistics::Page)
                    // A column with more distinct values than fit 256 KiB (ids,
                    // timestamps, free text) gains little from a dictionary, and
                    // building one per row group costs more than it saves.
                    .set_dictionary_page_size_limit(256 << 10)
                    .set_max_row_group_row_count(Some(pq.row_group_rows))
                    .set_max_row_group_bytes(Some(pq.row_group_bytes))
                    .set_key_value_metadata(Some(pq.metadata.clone()))
                    .set_created_by(format!("dynolake {}", env!("CARGO_PKG_VERSION")))
                    .build();
                let w = ArrowWriter::try_new(out, schema, Some(props))
                    .map_err(|e| Error::engine("opening a Parquet file", e))?;
                FormatWriter::Parquet(Box::new(w))
            }
            Format::Csv => {
                let mut out = out;
                let header: Vec<u8> = {
                    let mut h = Vec::new();
                    for (i, f) in schema.fields().iter().enumerate() {
                        if i > 0 {
                            h.push(b',');
                        }
                        csv_quote(f.name().as_bytes(), &mut h);
                    }
                    h.extend_from_slice(b"\r\n");
                    h
                };
                out.write_all(&header).map_err(|e| Error::io("writing CSV", e))?;
                FormatWriter::Csv { out, schema, line: Vec::new(), cell: Vec::new() }
            }
            Format::Jsonl => FormatWriter::Jsonl { out, schema, line: Vec::new() },
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            FormatWriter::Parquet(w) => w.write(batch).map_err(|e| Error::engine("writing Parquet", e)),
            FormatWriter::Csv { out, schema, line, cell } => {
                for i in 0..batch.num_rows() {
                    line.clear();
                    for (j, (c, f)) in batch.columns().iter().zip(schema.fields()).enumerate() {
                        if j > 0 {
                            line.push(b',');
                        }
                        cell.clear();
                        write_cell(c.as_ref(), f, i, cell);
                        csv_quote(cell, line);
                    }
                    line.extend_from_slice(b"\r\n");
                    out.write_all(line).map_err(|e| Error::io("writing CSV", e))?;
                }
                Ok(())
            }
            FormatWriter::Jsonl { out, schema, line } => {
                for i in 0..batch.num_rows() {
                    line.clear();
                    line.push(b'{');
                    let mut first = true;
                    for (c, f) in batch.columns().iter().zip(schema.fields()) {
                        if c.is_null(i) {
                            continue;
                        }
                        if !first {
                            line.push(b',');
                        }
                        first = false;
                        let mut name = String::new();
                        crate::value::write_json_string(f.name(), &mut name);
                        line.extend_from_slice(name.as_bytes());
                        line.push(b':');
                        write_json(c.as_ref(), f, i, line);
                    }
                    line.extend_from_slice(b"}\n");
                    out.write_all(line).map_err(|e| Error::io("writing JSON Lines", e))?;
                }
                Ok(())
            }
        }
    }

    /// Bytes held in memory: Parquet's row group in progress and the output's buffer.
    pub fn buffered(&self) -> usize {
        match self {
            FormatWriter::Parquet(w) => w.memory_size() + w.inner().buffered(),
            FormatWriter::Csv { out, .. } | FormatWriter::Jsonl { out, .. } => out.buffered(),
        }
    }

    /// The part of [`buffered`](Self::buffered) that [`flush_buffer`](Self::flush_buffer) frees.
    pub fn flushable(&self) -> usize {
        match self {
            FormatWriter::Parquet(w) => w.memory_size(),
            _ => 0,
        }
    }

    /// Write out the row group in progress (to bound memory).
    pub fn flush_buffer(&mut self) -> Result<()> {
        match self {
            FormatWriter::Parquet(w) => w.flush().map_err(|e| Error::engine("writing Parquet", e)),
            _ => Ok(()),
        }
    }

    /// Close the file; returns its size.
    pub fn close(self) -> Result<u64> {
        match self {
            FormatWriter::Parquet(w) => {
                let out = w.into_inner().map_err(|e| Error::engine("closing a Parquet file", e))?;
                out.finish()
            }
            FormatWriter::Csv { out, .. } | FormatWriter::Jsonl { out, .. } => out.finish(),
        }
    }
}

/// Keeps the store alive alongside paths (used by the commit step).
pub type Store = Arc<dyn ObjectStore>;
