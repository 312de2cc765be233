//! Writing datasets: Parquet, CSV or JSON Lines, partitioned or not, staged
//! and committed atomically (see [`commit`]).
//!
//! Each scan worker owns a [`DatasetSink`]: it splits batches by partition,
//! keeps a bounded number of files open (least recently used is closed and
//! a new file started when the partition comes back), rolls files at a row
//! limit, and flushes Parquet row groups when its buffers pass a memory
//! budget. Nothing is shared between workers while writing.

pub mod commit;
pub mod files;
pub mod partition;
pub mod text;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::datatypes::SchemaRef;
use object_store::path::Path;

use crate::error::{Error, Result};
use crate::scan::BatchSink;
use crate::store::Location;
use commit::CommittedFile;
use files::{Format, FormatWriter, ParquetSettings};
use partition::PartitionSpec;

/// How to write.
#[derive(Clone)]
pub struct WriteOptions {
    pub format: Format,
    pub partition_by: Vec<PartitionSpec>,
    pub parquet: ParquetSettings,
    /// Open files per worker; more partitions than this roll files.
    pub max_open_files: usize,
    /// Rows per file before starting another.
    pub max_rows_per_file: u64,
    /// Bytes of Parquet buffers per worker before row groups are flushed early.
    pub memory_budget: usize,
}

/// A file being written by a worker.
struct Open {
    writer: FormatWriter,
    rel: String,
    rows: u64,
    last_used: u64,
    partition: Vec<Option<String>>,
}

/// One worker's output: files under `<dest>/_temporary/<run>/`.
pub struct DatasetSink {
    dest: Location,
    staging: Path,
    run_id: String,
    worker: usize,
    opts: Arc<WriteOptions>,
    /// Schema of the files (identity partition columns removed).
    file_schema: SchemaRef,
    keep: Vec<usize>,
    open: HashMap<String, Open>,
    clock: u64,
    seq: usize,
    rt: tokio::runtime::Handle,
    pub written: Vec<CommittedFile>,
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
            clock: 0,
            seq: 0,
            rt,
            written: Vec::new(),
        })
    }

    fn write_part(&mut self, dir: &str, values: Vec<Option<String>>, batch: RecordBatch) -> Result<()> {
        self.clock += 1;
        if !self.open.contains_key(dir) {
            if self.open.len() >= self.opts.max_open_files {
                let lru = self.open.iter().min_by_key(|(_, o)| o.last_used).map(|(k, _)| k.clone());
                if let Some(k) = lru {
                    self.close(&k)?;
                }
            }
            self.seq += 1;
            let name =
                format!("part-{}-{:02}-{:05}.{}", self.run_id, self.worker, self.seq, self.opts.format.extension());
            let rel = if dir.is_empty() { name } else { format!("{dir}/{name}") };
            let path = rel.split('/').fold(self.staging.clone(), |p, s| p.join(s));
            let out = files::create(&self.dest, &path, &self.rt)?;
            let writer = FormatWriter::new(self.opts.format, out, self.file_schema.clone(), &self.opts.parquet)?;
            self.open.insert(dir.to_string(), Open { writer, rel, rows: 0, last_used: 0, partition: values });
        }
        let projected = batch.project(&self.keep).map_err(|e| Error::engine("projecting", e))?;
        let open = self.open.get_mut(dir).expect("opened above");
        open.writer.write(&projected)?;
        open.rows += projected.num_rows() as u64;
        open.last_used = self.clock;
        if open.rows >= self.opts.max_rows_per_file {
            self.close(dir)?;
        }
        self.bound_memory()
    }

    /// Flush the biggest row groups until the worker is under its budget.
    fn bound_memory(&mut self) -> Result<()> {
        loop {
            let total: usize = self.open.values().map(|o| o.writer.buffered()).sum();
            if total <= self.opts.memory_budget {
                return Ok(());
            }
            let Some(big) = self.open.values_mut().max_by_key(|o| o.writer.buffered()) else { return Ok(()) };
            if big.writer.buffered() == 0 {
                return Ok(());
            }
            big.writer.flush_buffer()?;
        }
    }

    fn close(&mut self, dir: &str) -> Result<()> {
        let Some(o) = self.open.remove(dir) else { return Ok(()) };
        let bytes = o.writer.close()?;
        let partition = self.opts.partition_by.iter().map(|p| p.name.clone()).zip(o.partition).collect();
        self.written.push(CommittedFile { path: o.rel, rows: o.rows, bytes, partition });
        Ok(())
    }

    /// Close every open file.
    pub fn finish(&mut self) -> Result<()> {
        let mut dirs: Vec<String> = self.open.keys().cloned().collect();
        dirs.sort();
        for d in dirs {
            self.close(&d)?;
        }
        Ok(())
    }
}

impl BatchSink for DatasetSink {
    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if self.opts.partition_by.is_empty() {
            return self.write_part("", Vec::new(), batch);
        }
        let values: Vec<Vec<Option<String>>> =
            self.opts.partition_by.iter().map(|p| p.values(&batch)).collect::<Result<_>>()?;
        // Group rows by partition directory, keeping first-seen order.
        let mut groups: Vec<(String, Vec<Option<String>>, Vec<u32>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for row in 0..batch.num_rows() {
            let vals: Vec<Option<&str>> = values.iter().map(|v| v[row].as_deref()).collect();
            let dir = partition::dir_of(&self.opts.partition_by, &vals);
            match index.get(&dir) {
                Some(&g) => groups[g].2.push(row as u32),
                None => {
                    index.insert(dir.clone(), groups.len());
                    groups.push((dir, vals.iter().map(|v| v.map(str::to_string)).collect(), vec![row as u32]));
                }
            }
        }
        for (dir, vals, rows) in groups {
            let sub = if rows.len() == batch.num_rows() {
                batch.clone()
            } else {
                arrow::compute::take_record_batch(&batch, &UInt32Array::from(rows))
                    .map_err(|e| Error::engine("splitting partitions", e))?
            };
            self.write_part(&dir, vals, sub)?;
        }
        Ok(())
    }
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
