//! A DataFusion table over a raw export: the data files are decoded on the fly.
//!
//! Files are spread over the scan's partitions (one per core by default) and
//! decoded on blocking threads. Only the projected attributes are decoded
//! (the rest of each line is skipped); a `LIMIT` stops reading early. Every
//! file read to its end is checked against the manifest (MD5, line count), so
//! a corrupted file is an error, never a wrong answer.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};

use crate::decode::{DecodeOptions, ItemDecoder};
use crate::export::Export;
use crate::read::CHUNK;
use crate::schema::Schema;

/// A raw export as a table.
#[derive(Debug)]
pub struct ExportTable {
    export: Arc<Export>,
    schema: Arc<Schema>,
    arrow: SchemaRef,
    partitions: usize,
    max_line_bytes: usize,
    gathered: Option<Arc<Gathered>>,
    provisional: Option<Arc<Provisional>>,
    progress: Option<Arc<crate::pipeline::Progress>>,
}

/// A table decoded with a provisional schema (its first items'): what the
/// scans since the last [`Provisional::reset`] saw, to tell whether a query's
/// result is the one the exact schema gives. It is when every scan read its
/// files to the end and no value of a column it decoded failed to fit its
/// type: the exact type of such a column is then the provisional one (the
/// exact type is the narrowest holding every value).
#[derive(Debug, Default)]
pub struct Provisional {
    overflowed: std::sync::atomic::AtomicU64,
    partial: std::sync::atomic::AtomicBool,
    /// The attributes whose values did not fit, for messages.
    attributes: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Provisional {
    pub fn reset(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.overflowed.store(0, Relaxed);
        self.partial.store(false, Relaxed);
        self.attributes.lock().unwrap().clear();
    }

    /// `Ok` when the scans' result is exact; else why not.
    pub fn verdict(&self) -> std::result::Result<(), String> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.overflowed.load(Relaxed) > 0 {
            let names: Vec<String> = self.attributes.lock().unwrap().iter().cloned().collect();
            return Err(format!("values of {} did not fit the first items' schema", names.join(", ")));
        }
        if self.partial.load(Relaxed) {
            return Err(
                "the query read only part of the export, so the first items' schema could not be checked".into()
            );
        }
        Ok(())
    }

    fn record(&self, stats: &crate::decode::DecodeStats, partial: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        if partial {
            self.partial.store(true, Relaxed);
        }
        if stats.extra_values > 0 {
            self.overflowed.fetch_add(stats.extra_values, Relaxed);
            self.attributes.lock().unwrap().extend(stats.extra_by_attribute.keys().cloned());
        }
    }
}

/// What scans of every column gathered (see [`ExportTable::gathering`]):
/// the inference statistics of the items decoded and what did not fit.
#[derive(Debug, Default)]
pub struct Gathered(pub std::sync::Mutex<GatheredParts>);

#[derive(Debug, Default)]
pub struct GatheredParts {
    pub stats: crate::schema::infer::TableStats,
    pub decode: crate::decode::DecodeStats,
    /// Data files read to their end (the statistics are whole when this is the export's count).
    pub files: usize,
}

impl ExportTable {
    pub fn new(export: Export, schema: Schema, partitions: usize) -> ExportTable {
        let arrow = schema.arrow_schema();
        ExportTable {
            export: Arc::new(export),
            schema: Arc::new(schema),
            arrow,
            partitions: partitions.max(1),
            max_line_bytes: crate::schema::infer::DEFAULT_MAX_LINE_BYTES,
            gathered: None,
            provisional: None,
            progress: None,
        }
    }

    /// Scans count the items they decode and the bytes they read into `p` (progress bars).
    pub fn counting(mut self, p: Arc<crate::pipeline::Progress>) -> ExportTable {
        self.progress = Some(p);
        self
    }

    /// The schema is provisional: scans report to `p` what did not fit.
    pub fn provisional(mut self, p: Arc<Provisional>) -> ExportTable {
        self.provisional = Some(p);
        self
    }

    /// Scans that decode every column also gather the inference statistics
    /// of what they read into `into` (what `convert` checks its schema with).
    pub fn gathering(mut self, into: Arc<Gathered>) -> ExportTable {
        self.gathered = Some(into);
        self
    }

    /// Refuse lines longer than this (default 16 MiB).
    pub fn with_max_line_bytes(mut self, n: usize) -> ExportTable {
        self.max_line_bytes = n;
        self
    }
}

#[async_trait]
impl TableProvider for ExportTable {
    fn schema(&self) -> SchemaRef {
        self.arrow.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let projection: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..self.arrow.fields().len()).collect());
        let out_schema = Arc::new(self.arrow.project(&projection)?);
        let n = self.partitions.min(self.export.files.len()).max(1);
        let props = PlanProperties::new(
            EquivalenceProperties::new(out_schema.clone()),
            Partitioning::UnknownPartitioning(n),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Arc::new(ExportExec {
            export: self.export.clone(),
            schema: self.schema.clone(),
            projection,
            out_schema,
            limit,
            partitions: n,
            max_line_bytes: self.max_line_bytes,
            props: Arc::new(props),
            gathered: self.gathered.clone(),
            provisional: self.provisional.clone(),
            progress: self.progress.clone(),
        }))
    }
}

/// The physical scan of an [`ExportTable`].
#[derive(Debug)]
pub struct ExportExec {
    export: Arc<Export>,
    schema: Arc<Schema>,
    projection: Vec<usize>,
    out_schema: SchemaRef,
    limit: Option<usize>,
    partitions: usize,
    max_line_bytes: usize,
    props: Arc<PlanProperties>,
    gathered: Option<Arc<Gathered>>,
    provisional: Option<Arc<Provisional>>,
    progress: Option<Arc<crate::pipeline::Progress>>,
}

impl DisplayAs for ExportExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let cols: Vec<&str> = self.out_schema.fields().iter().map(|f| f.name().as_str()).collect();
        write!(
            f,
            "DynamoDBExportExec: export={}, files={}, projection=[{}]",
            self.export.id,
            self.export.files.len(),
            cols.join(", ")
        )?;
        if let Some(l) = self.limit {
            write!(f, ", limit={l}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for ExportExec {
    fn name(&self) -> &str {
        "DynamoDBExportExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, partition: usize, _ctx: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let export = self.export.clone();
        let schema = self.schema.clone();
        let projection = self.projection.clone();
        let limit = self.limit;
        let step = self.partitions;
        let max_line_bytes = self.max_line_bytes;
        let every_column = projection.len() == self.schema.arrow_schema().fields().len()
            && projection.iter().enumerate().all(|(i, &p)| i == p);
        let gathered = self.gathered.clone().filter(|_| every_column && limit.is_none());
        let provisional = self.provisional.clone();
        let progress = self.progress.clone();
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let batch_size = limit.map_or(8192, |l| l.clamp(1, 8192));
            let infer = crate::schema::infer::InferOptions { max_line_bytes, ..Default::default() };
            let collect_stats = gathered.is_some();
            let projection = (!collect_stats).then_some(projection);
            let opts = DecodeOptions { projection, batch_size, infer, collect_stats, ..Default::default() };
            let opts = crate::pipeline::lines_of(&export, &opts);
            let mut decoder = ItemDecoder::new(&schema, opts);
            let mut buf = vec![0u8; CHUNK];
            let mut rows = 0usize;
            let mut files = 0usize;
            let mut times = crate::pipeline::StageTimes::default();
            let send = |r: DfResult<arrow::array::RecordBatch>| tx.blocking_send(r).is_ok();
            for index in (0..export.files.len()).skip(partition).step_by(step) {
                let r = (|| -> crate::Result<bool> {
                    let done = crate::pipeline::decode_file(
                        &export,
                        index,
                        &rt,
                        &mut decoder,
                        &mut buf,
                        true,
                        &mut times,
                        |b| {
                            rows += b.num_rows();
                            if let Some(p) = &progress {
                                p.items.fetch_add(b.num_rows() as u64, std::sync::atomic::Ordering::Relaxed);
                            }
                            Ok(send(Ok(b)) && limit.is_none_or(|l| rows < l))
                        },
                        |n, _| {
                            if let Some(p) = &progress {
                                p.uncompressed_bytes.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                            }
                            Ok(())
                        },
                    )?;
                    if done.is_none() {
                        return Ok(false);
                    }
                    if let Some(r) = decoder.take_rejects().into_iter().next() {
                        return Err(crate::Error::Decode { position: r.position, message: r.reason });
                    }
                    Ok(limit.is_none_or(|l| rows < l))
                })();
                match r {
                    Ok(true) => files += 1,
                    Ok(false) => {
                        if let Some(p) = &provisional {
                            p.record(decoder.stats(), true);
                        }
                        return;
                    }
                    Err(e) => {
                        send(Err(DataFusionError::External(Box::new(e))));
                        return;
                    }
                }
            }
            if let Some(p) = &provisional {
                p.record(decoder.stats(), false);
            }
            // Before the stream ends (`tx` drops after this), so a reader that saw the end sees these.
            if let Some(g) = &gathered
                && let Some(t) = decoder.take_table_stats()
            {
                let mut g = g.0.lock().unwrap();
                g.stats.merge(t);
                g.decode.merge(decoder.stats());
                g.files += files;
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.out_schema.clone(), stream)))
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }

    /// Row counts from the manifest (before a `LIMIT`), so the planner can
    /// tell a big table from a small one (which side of a join to build).
    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<datafusion::common::Statistics>],
        args: &datafusion::physical_plan::statistics::StatisticsArgs,
    ) -> DfResult<Arc<datafusion::common::Statistics>> {
        use datafusion::common::stats::Precision;
        let files = &self.export.files;
        let rows: u64 = match args.partition() {
            None => files.iter().map(|f| f.entry.item_count).sum(),
            Some(p) => files.iter().skip(p).step_by(self.partitions).map(|f| f.entry.item_count).sum(),
        };
        let rows = match self.limit {
            // Streams records have no manifest to count them.
            _ if self.export.summary.export_type == crate::export::ExportType::StreamRecords => Precision::Absent,
            Some(l) => Precision::Inexact((rows as usize).min(l)),
            None => Precision::Exact(rows as usize),
        };
        Ok(Arc::new(datafusion::common::Statistics::new_unknown(&self.out_schema).with_num_rows(rows)))
    }
}
