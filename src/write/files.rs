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
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};
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
        upload: Some(upload),
        parts: tokio::task::JoinSet::new(),
        part: Vec::new(),
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

/// A multipart upload fed part by part. Parts go up on runtime tasks, at most
/// [`PARTS_IN_FLIGHT`] at a time (each holds its bytes until sent). Every way
/// out that does not complete the upload aborts it: a failed part, a failed
/// completion, or the writer dropped (a failed or interrupted run), so S3
/// keeps no parts to bill for. (`object_store::WriteMultipart::finish` does
/// not abort when a part failed, hence this.)
struct S3Out {
    upload: Option<Box<dyn MultipartUpload>>,
    parts: tokio::task::JoinSet<object_store::Result<()>>,
    /// The part being filled.
    part: Vec<u8>,
    rt: tokio::runtime::Handle,
    bytes: u64,
    name: String,
}

const PARTS_IN_FLIGHT: usize = 4;

impl S3Out {
    fn send_part(&mut self) -> io::Result<()> {
        let upload = self.upload.as_mut().ok_or_else(|| io::Error::other("upload already finished"))?;
        let data = PutPayload::from(std::mem::replace(&mut self.part, Vec::with_capacity(S3_PART)));
        let sending = upload.put_part(data);
        // Writers run on plain threads: spawning needs the runtime's context.
        let _context = self.rt.enter();
        self.parts.spawn(sending);
        self.wait_for(PARTS_IN_FLIGHT)
    }

    /// Wait until at most `n` parts are in flight; the first failure is returned.
    fn wait_for(&mut self, n: usize) -> io::Result<()> {
        while self.parts.len() > n {
            match self.rt.block_on(self.parts.join_next()) {
                Some(Ok(Ok(()))) | None => {}
                Some(Ok(Err(e))) => return Err(io::Error::other(e)),
                Some(Err(e)) => return Err(io::Error::other(e)),
            }
        }
        Ok(())
    }

    fn abort(&mut self) {
        if let Some(mut upload) = self.upload.take() {
            let _context = self.rt.enter();
            self.parts.abort_all();
            let _ = self.rt.block_on(upload.abort());
        }
    }
}

impl Write for S3Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            let n = rest.len().min(S3_PART - self.part.len());
            self.part.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.part.len() == S3_PART {
                self.send_part()?;
            }
        }
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl OutFile for S3Out {
    fn finish(mut self: Box<Self>) -> Result<u64> {
        let sent = match self.part.is_empty() && self.bytes > 0 {
            true => self.wait_for(0),
            false => self.send_part().and_then(|()| self.wait_for(0)),
        };
        if let Err(e) = sent {
            self.abort();
            return Err(Error::io(format!("uploading {}", self.name), e));
        }
        let mut upload = self.upload.take().expect("finished once");
        match self.rt.block_on(upload.complete()) {
            Ok(_) => Ok(self.bytes),
            Err(e) => {
                let _ = self.rt.block_on(upload.abort());
                Err(Error::store(format!("completing upload of {}", self.name), e))
            }
        }
    }
    fn buffered(&self) -> usize {
        // The part being filled and the parts in flight.
        self.part.len() + self.parts.len() * S3_PART
    }
}

impl Drop for S3Out {
    fn drop(&mut self) {
        self.abort();
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Parquet,
    Csv,
    Jsonl,
    /// A Delta Lake table (Parquet files and a transaction log; `merge` only).
    Delta,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet | Format::Delta => "parquet",
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
    /// Which columns are written without a dictionary (decided once per run).
    pub dictionary: super::dictionary::DictionaryPlan,
}

/// One open output file in one format.
pub enum FormatWriter {
    Parquet(Box<ArrowWriter<Box<dyn OutFile>>>),
    Csv { out: Box<dyn OutFile>, schema: SchemaRef, line: Vec<u8>, cell: Vec<u8> },
    Jsonl { out: Box<dyn OutFile>, schema: SchemaRef, line: Vec<u8> },
}

impl FormatWriter {
    /// Which columns get a dictionary depends on the rows the file is
    /// expected to hold (`rows`; its row groups hold at most the row-group
    /// limit of them), and on the run's model of its columns, made from
    /// `sample` (rows like the file's first) if the run has none yet; see
    /// [`super::dictionary`]. Columns nearly empty in that model and in
    /// `sample` are written uncompressed ([`super::sparse`]).
    pub fn new(
        format: Format,
        out: Box<dyn OutFile>,
        schema: SchemaRef,
        pq: &ParquetSettings,
        sample: &RecordBatch,
        rows: usize,
    ) -> Result<FormatWriter> {
        Ok(match format {
            Format::Parquet | Format::Delta => {
                let mut props = WriterProperties::builder();
                for column in pq.dictionary.plain_columns(sample, rows.min(pq.row_group_rows)) {
                    props = props.set_column_dictionary_enabled(column.clone(), false);
                }
                for column in pq.dictionary.uncompressed_columns(sample) {
                    props = props.set_column_compression(column, PqCompression::UNCOMPRESSED);
                }
                let props = props
                    .set_compression(pq.compression)
                    .set_statistics_enabled(EnabledStatistics::Page)
                    // A column with more distinct values than fit 256 KiB (ids,
                    // timestamps, free text) gains little from a dictionary, and
                    // building one per row group costs more than it saves.
                    .set_dictionary_page_size_limit(super::dictionary::DICTIONARY_PAGE_LIMIT)
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
                        crate::ddb::value::write_json_string(f.name(), &mut name);
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
