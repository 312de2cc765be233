//! Bytes of a data file → gunzip → chunks of whole lines, with the checks a
//! manifest allows made while streaming (MD5 of the compressed bytes, line count).
//!
//! Knows bytes, not types. Reading is blocking on purpose: decoding is CPU
//! work done on plain threads, and a local file is read directly. An S3 object
//! is streamed by a Tokio task into a small bounded channel, so memory stays
//! at a few chunks per open file whatever the file's size.

pub mod gunzip;
pub mod verify;

use std::io::{self, Read};

use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};
use object_store::ObjectStoreExt;

use self::gunzip::Gunzip;
use crate::error::{Error, Result};
use crate::export::{DataFile, Export};

/// Size of the buffers handed to decoders.
pub const CHUNK: usize = 256 * 1024;

/// Opens the compressed bytes of a data file for reading.
pub fn open_compressed(export: &Export, file: &DataFile, rt: &tokio::runtime::Handle) -> Result<Box<dyn Read + Send>> {
    let name = export.display(file);
    if let Some(p) = export.location.local_path(&file.path) {
        let f = std::fs::File::open(&p).map_err(|e| Error::io(name, e))?;
        return Ok(Box::new(f));
    }
    // The download task must never block a runtime thread: a blocking send
    // into a full channel would park the runtime's workers while the readers
    // of those channels wait on other S3 requests (uploads) that need them.
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    let store = export.location.store.clone();
    let path = file.path.clone();
    rt.spawn(async move {
        let result = match store.get(&path).await {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(io::Error::other(format!("{e}")))).await;
                return;
            }
        };
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let msg = chunk.map_err(|e| io::Error::other(format!("{e}")));
            let failed = msg.is_err();
            // A receiver that went away stops the download.
            if tx.send(msg).await.is_err() || failed {
                return;
            }
        }
    });
    Ok(Box::new(ChannelReader { rx, current: Bytes::new() }))
}

struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            // Readers are plain threads, never runtime tasks.
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Hashes and counts the compressed bytes as they pass.
pub struct Hashing<R> {
    inner: R,
    md5: Md5,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.md5.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// What reading a whole data file found out.
#[derive(Debug, Clone, Default)]
pub struct FileFacts {
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    pub lines: u64,
    pub md5_base64: String,
}

type Raw = io::BufReader<Hashing<Box<dyn Read + Send>>>;

/// The bytes of a data file: gzip (every export), or as stored (Streams records).
enum Source {
    /// Gzip, not started yet (the decoder reads the header when it starts).
    Lazy(Raw),
    /// Boxed: the decoder's state is large, and a file is read in big chunks.
    Gzip(Box<Gunzip<Raw>>),
    Plain(Raw),
    Taken,
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Source::Lazy(_) = self {
            let Source::Lazy(raw) = std::mem::replace(self, Source::Taken) else { unreachable!() };
            *self = Source::Gzip(Box::new(Gunzip::new(raw)));
        }
        match self {
            Source::Gzip(g) => g.read(buf),
            Source::Plain(r) => r.read(buf),
            Source::Lazy(_) | Source::Taken => unreachable!("started above"),
        }
    }
}

/// A data file opened for streaming: `next_chunk` yields decompressed bytes.
/// Every gzip member is read (AWS may write several).
pub struct DataStream {
    gz: Source,
    name: String,
    uncompressed: u64,
    newlines: u64,
    last_byte: Option<u8>,
}

impl DataStream {
    pub fn open(export: &Export, file: &DataFile, rt: &tokio::runtime::Handle) -> Result<DataStream> {
        let raw = open_compressed(export, file, rt)?;
        let mut s = Self::from_reader(raw, export.display(file));
        // Streams records may be stored plain; export data files are always gzip.
        // (Decided before any byte is read: a gzip decoder reads the header as it starts.)
        if export.summary.export_type == crate::export::ExportType::StreamRecords
            && !file.path.as_ref().ends_with(".gz")
        {
            let Source::Lazy(raw) = std::mem::replace(&mut s.gz, Source::Taken) else {
                unreachable!("nothing was read yet")
            };
            s.gz = Source::Plain(raw);
        }
        Ok(s)
    }

    pub fn from_reader(raw: Box<dyn Read + Send>, name: String) -> DataStream {
        let hashing = Hashing { inner: raw, md5: Md5::new(), bytes: 0 };
        DataStream {
            gz: Source::Lazy(io::BufReader::with_capacity(CHUNK, hashing)),
            name,
            uncompressed: 0,
            newlines: 0,
            last_byte: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Fill `buf` with the next decompressed bytes; 0 at the end.
    pub fn next_chunk(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut filled = 0;
        // Fill most of the buffer so decoders see big chunks.
        while filled < buf.len() / 2 {
            let n = self
                .gz
                .read(&mut buf[filled..])
                .map_err(|e| Error::Verify(format!("{}: cannot decompress: {e}", self.name)))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled > 0 {
            self.newlines += memchr::memchr_iter(b'\n', &buf[..filled]).count() as u64;
            self.last_byte = Some(buf[filled - 1]);
            self.uncompressed += filled as u64;
        }
        Ok(filled)
    }

    /// Call after `next_chunk` returned 0: drains any trailing compressed bytes
    /// into the hash and reports what was read.
    pub fn finish(self) -> Result<FileFacts> {
        let mut reader = match self.gz {
            Source::Gzip(gz) => gz.into_inner(),
            Source::Plain(r) | Source::Lazy(r) => r,
            Source::Taken => unreachable!("never left taken"),
        };
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).map_err(|e| Error::Verify(format!("{}: read failed: {e}", self.name)))?;
        let hashing = reader.into_inner();
        let lines = self.newlines + u64::from(self.last_byte.is_some_and(|b| b != b'\n'));
        Ok(FileFacts {
            compressed_bytes: hashing.bytes,
            uncompressed_bytes: self.uncompressed,
            lines,
            md5_base64: base64::engine::general_purpose::STANDARD.encode(hashing.md5.finalize()),
        })
    }
}

/// Compare what was read with what the manifest promises.
pub fn check_facts(export: &Export, file: &DataFile, facts: &FileFacts) -> Vec<String> {
    let name = export.display(file);
    let mut problems = Vec::new();
    let manifest = export.summary.export_type != crate::export::ExportType::StreamRecords;
    if manifest && facts.md5_base64 != file.entry.md5_checksum {
        problems.push(format!(
            "{name}: MD5 mismatch: manifest says {}, the file has {}",
            file.entry.md5_checksum, facts.md5_base64
        ));
    }
    if manifest && facts.lines != file.entry.item_count {
        problems.push(format!(
            "{name}: item count mismatch: manifest says {}, the file has {} lines",
            file.entry.item_count, facts.lines
        ));
    }
    if let Some(size) = file.size
        && size != facts.compressed_bytes
    {
        problems
            .push(format!("{name}: size changed while reading: {size} bytes listed, {} read", facts.compressed_bytes));
    }
    problems
}
