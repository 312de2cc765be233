//! A merge whose base is a full export, without a join engine.
//!
//! The changes are small next to the base (a day's writes against a table),
//! and through DataFusion the steps around them cost a third more CPU than
//! `convert` of the base alone: a `GROUP BY` and a window to rank them, a
//! hash join to pick the winning rows, another to leave the changed keys out
//! of the base, a copy of every row the joins let through. Here:
//!
//! 1. [`hold_changes`]: the changes are decoded once, by `convert`'s
//!    pipeline, and held in memory while [`Latest`] ranks them in a hash map:
//!    each changed key's latest change, by the order of [`super::ORDER`].
//!    The same decode gathers their exact inference statistics (the schema
//!    came from their first items, as the base's does), so no pass infers them.
//! 2. [`Latest::write_winners`]: the rows that are their key's latest change,
//!    unless it removed the key, go to the writers.
//!
//!    Changes too big for memory (`--changes-memory`) take two scans instead, as
//!    queries: [`Latest::collect`] ranks them from their narrow columns (key,
//!    write time, sequence, export), then [`Latest::winners`] filters their
//!    full scan.
//! 3. [`write_unchanged`]: the base goes through `convert`'s own pipeline
//!    (read → decode → write, a data file per worker at a time); its decoders
//!    leave out the rows of every key a change touched as they finish
//!    decoding them ([`crate::decode::keys`]), so those rows are never copied.
//!
//! Memory grows with the number of changed keys (the map), never with the
//! base, as it did with the joins' build sides.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use rustc_hash::FxHashMap;

use crate::decode::DecodeOptions;
use crate::decode::keys::{SkipKeys, can_be_key, key_of};
use crate::error::{Error, Result};
use crate::export::Export;
use crate::pipeline::{BatchSink, PipelineOptions, PipelineReport, Progress, decode_export};
use crate::pool::{self, Queue};
use crate::schema::infer::{InferOptions, TableStats};
use crate::schema::{CHANGE_COLUMNS, Schema};
use crate::write::DatasetSink;

/// Where a change stands among its key's: [`super::ORDER`], as a value whose
/// maximum is the latest change. `None` sorts first, so nulls lose (`NULLS
/// LAST` in a descending order); sequence numbers are digits, so the longer
/// is the larger and equal lengths compare as text.
type Rank = (Option<i64>, Option<usize>, Option<String>, i64);

/// Each row's key bytes and rank (`None`: the row ranks nowhere; see [`rank_rows`]).
type Ranked = (Vec<Vec<u8>>, Vec<Option<Rank>>);

struct Winner {
    rank: Rank,
    /// A row of this rank was kept (two changes of one key can tie; one row is kept).
    taken: AtomicBool,
}

/// Each changed key's latest change, by the key's bytes (see [`crate::decode::keys`]).
pub(super) struct Latest {
    /// The key columns' indices in the result's batches (the base's, and the first columns of the changes' scan).
    columns: Vec<usize>,
    types: Vec<DataType>,
    winners: FxHashMap<Box<[u8]>, Winner>,
}

/// The changes' rows with the columns of `select`, then `extra`, as one query over `unions`.
fn over_changes(select: &str, extra: &str, unions: &[String]) -> String {
    format!("SELECT {select}, {extra} FROM ({}) AS changes", unions.join(" UNION ALL "))
}

/// What ranks a change; the winners' scan has these after the result's columns, then `_op`.
const RANKED_BY: &str = "_write_time, _sequence, _export";

impl Latest {
    /// Rank the changes of `unions` (see `register_changes`) by their key
    /// columns `key_cols` of the result's schema `arrow`.
    pub(super) fn collect(
        ctx: &datafusion::prelude::SessionContext,
        rt: &tokio::runtime::Runtime,
        unions: &[String],
        arrow: &SchemaRef,
        key_cols: &[String],
    ) -> Result<Latest> {
        let mut latest = Latest::new(arrow, key_cols)?;
        let columns = std::mem::replace(&mut latest.columns, (0..key_cols.len()).collect());
        // The narrow scan has the key columns first.
        if !key_cols.is_empty() {
            let keys: Vec<String> = key_cols.iter().map(|c| super::q(c)).collect();
            let sql = over_changes(&keys.join(", "), RANKED_BY, unions);
            let batches = rt
                .block_on(async { ctx.sql(&sql).await?.collect().await })
                .map_err(|e| Error::engine("ranking the changes", e))?;
            for b in &batches {
                let (keys, ranks) = latest.ranked(b, key_cols.len())?;
                latest.rank(&keys, &ranks);
            }
        }
        latest.columns = columns;
        Ok(latest)
    }

    /// No changes yet, for keys `key_cols` of the result's schema `arrow`.
    fn new(arrow: &SchemaRef, key_cols: &[String]) -> Result<Latest> {
        let columns = key_cols.iter().map(|c| arrow.index_of(c)).collect::<std::result::Result<Vec<_>, _>>();
        let columns = columns.map_err(|e| Error::engine("ranking the changes", e))?;
        let types: Vec<DataType> = columns.iter().map(|&i| arrow.field(i).data_type().clone()).collect();
        if let Some((c, t)) = key_cols.iter().zip(&types).find(|(_, t)| !can_be_key(t)) {
            return Err(Error::Usage(format!(
                "key column `{c}` has type {t}: a key attribute is a string, a number or binary (check --key and the schema)"
            )));
        }
        Ok(Latest { columns, types, winners: Default::default() })
    }

    /// Take the ranked rows in: each key keeps its highest rank.
    fn rank(&mut self, keys: &[Vec<u8>], ranks: &[Option<Rank>]) {
        for (key, rank) in keys.iter().zip(ranks) {
            let Some(rank) = rank else { continue };
            match self.winners.get_mut(key.as_slice()) {
                Some(w) if w.rank >= *rank => {}
                Some(w) => w.rank = rank.clone(),
                None => {
                    self.winners.insert(key.as_slice().into(), Winner { rank: rank.clone(), taken: false.into() });
                }
            }
        }
    }

    /// Rank the changes `held` (see [`hold_changes`]); `from[i]`: the time
    /// before which export `i`'s rows are left out (Streams records the state
    /// already holds). Each batch's keys and ranks are read on `jobs` threads
    /// and kept in `held` for [`Latest::write_winners`]; the map takes them
    /// in batch order on this one.
    pub(super) fn of_held(
        held: &mut Held,
        arrow: &SchemaRef,
        key_cols: &[String],
        from: &[Option<i64>],
        jobs: usize,
    ) -> Result<Latest> {
        let mut latest = Latest::new(arrow, key_cols)?;
        let (this, batches) = (&latest, &held.batches);
        let parts = pool::run(
            jobs,
            batches.len(),
            Queue::Shared,
            |_| Ok(Vec::new()),
            |got: &mut Vec<(usize, Ranked)>, n, _| {
                let (i, b) = &batches[n];
                got.push((n, this.held_ranks(*i, b, from)?));
                Ok(true)
            },
            |_, got| Ok(got),
        )?;
        let mut ranked: Vec<(usize, Ranked)> = parts.into_iter().flatten().collect();
        ranked.sort_unstable_by_key(|(n, _)| *n);
        held.ranked = ranked.into_iter().map(|(_, r)| r).collect();
        for (keys, ranks) in &held.ranked {
            latest.rank(keys, ranks);
        }
        Ok(latest)
    }

    /// The keys and ranks of a held batch of export `i`.
    fn held_ranks(&self, i: usize, b: &RecordBatch, from: &[Option<i64>]) -> Result<Ranked> {
        let meta = CHANGE_COLUMNS.len();
        let keys = self.cast_keys(b, meta)?;
        let export = vec![i as i64; b.num_rows()];
        rank_rows(&keys, b.column(1), b.column(2), &Int64Array::from(export), from[i])
    }

    /// Write the held changes that are their key's latest and did not remove it
    /// into `sinks` (a worker each), as rows of the result's `schema`, with
    /// the keys and ranks [`Latest::of_held`] read.
    pub(super) fn write_winners(&self, held: Held, schema: &SchemaRef, sinks: &mut [DatasetSink]) -> Result<()> {
        assert_eq!(held.ranked.len(), held.batches.len(), "of_held ranks every held batch");
        let meta = CHANGE_COLUMNS.len();
        let columns: Vec<usize> = (meta..meta + schema.fields().len()).collect();
        let jobs = sinks.len();
        let waiting: Mutex<Vec<Option<&mut DatasetSink>>> = Mutex::new(sinks.iter_mut().map(Some).collect());
        let (batches, ranked) = (&held.batches, &held.ranked);
        pool::run(
            jobs,
            batches.len(),
            Queue::Shared,
            |w| Ok(waiting.lock().unwrap()[w].take().expect("one sink per worker")),
            |sink, n, _| {
                let ((_, b), (keys, ranks)) = (&batches[n], &ranked[n]);
                let keep = self.keep(keys, ranks, b.column(0))?;
                let rows = b.project(&columns).map_err(|e| Error::engine("picking the latest changes", e))?;
                let rows = arrow::compute::filter_record_batch(&rows, &keep)
                    .map_err(|e| Error::engine("picking the latest changes", e))?;
                if rows.num_rows() > 0 {
                    sink.write(super::conform(&rows, schema)?)?;
                }
                Ok(true)
            },
            |_, _| Ok(()),
        )?;
        Ok(())
    }

    /// Which rows to keep: their key's latest change (the first such row, if
    /// two tie), unless its `op` removed the key.
    fn keep(&self, keys: &[Vec<u8>], ranks: &[Option<Rank>], op: &ArrayRef) -> Result<BooleanArray> {
        let op =
            arrow::compute::cast(op, &DataType::Utf8).map_err(|e| Error::engine("picking the latest changes", e))?;
        let op = op.as_string::<i32>();
        Ok(ranks
            .iter()
            .enumerate()
            .map(|(r, rank)| {
                let w = rank.as_ref().and_then(|rank| self.winners.get(keys[r].as_slice()).filter(|w| &w.rank == rank));
                let won = w.is_some_and(|w| !w.taken.swap(true, Ordering::Relaxed));
                Some(won && !(op.is_valid(r) && op.value(r) == "remove"))
            })
            .collect())
    }

    /// The key columns of `b`, found `offset` columns after the result's, in the result's types.
    fn cast_keys(&self, b: &RecordBatch, offset: usize) -> Result<Vec<ArrayRef>> {
        self.columns
            .iter()
            .zip(&self.types)
            .map(|(&i, t)| arrow::compute::cast(b.column(i + offset), t))
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()
            .map_err(|e| Error::engine("reading the changed keys", e))
    }

    /// The SQL of the changes' full scan that [`Latest::winners`] reads: the
    /// result's columns `cols`, then what ranks them, then `_op`.
    pub(super) fn scan_sql(cols: &str, unions: &[String]) -> String {
        over_changes(cols, &format!("{RANKED_BY}, _op"), unions)
    }

    /// The keys of `b` (its key columns at `self.columns`) and each row's
    /// rank, read from the [`RANKED_BY`] columns starting at `at`; `None` for
    /// a row whose key has a null (it equals no key).
    fn ranked(&self, b: &RecordBatch, at: usize) -> Result<Ranked> {
        let keys = self.cast_keys(b, 0)?;
        rank_rows(&keys, b.column(at), b.column(at + 1), b.column(at + 2), None)
    }

    /// The rows of a batch of the changes' scan (see [`Latest::scan_sql`])
    /// that are their key's latest change and did not remove it, with the
    /// result's `width` columns.
    pub(super) fn winners(&self, b: &RecordBatch, width: usize) -> Result<RecordBatch> {
        let engine = |e| Error::engine("picking the latest changes", e);
        let (keys, ranks) = self.ranked(b, width)?;
        let keep = self.keep(&keys, &ranks, b.column(width + 3))?;
        let projected = b.project(&(0..width).collect::<Vec<_>>()).map_err(engine)?;
        arrow::compute::filter_record_batch(&projected, &keep).map_err(engine)
    }

    /// The changed keys, for the base's decoders to leave out.
    pub(super) fn into_skip(self) -> SkipKeys {
        SkipKeys::new(self.columns, self.winners.into_keys())
    }
}

/// The key bytes and rank of each row, from its `keys` columns (the result's
/// types), `_write_time`, `_sequence` and export; `None` for a key with a
/// null (it equals no key) and for a row written before `from`.
fn rank_rows(
    keys: &[ArrayRef],
    time: &ArrayRef,
    seq: &ArrayRef,
    export: &dyn Array,
    from: Option<i64>,
) -> Result<Ranked> {
    let engine = |e| Error::engine("ranking the changes", e);
    let (time, seq) = (
        arrow::compute::cast(time, &DataType::Int64).map_err(engine)?,
        arrow::compute::cast(seq, &DataType::Utf8).map_err(engine)?,
    );
    let export = arrow::compute::cast(export, &DataType::Int64).map_err(engine)?;
    let (time, seq, export) =
        (time.as_primitive::<Int64Type>(), seq.as_string::<i32>(), export.as_primitive::<Int64Type>());
    let rows = time.len();
    let mut out = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    for r in 0..rows {
        let mut key = Vec::new();
        let whole = keys.iter().all(|c| key_of(c, r, &mut key));
        let t = time.is_valid(r).then(|| time.value(r));
        let written = from.is_none_or(|f| t.is_some_and(|t| t >= f));
        out.0.push(key);
        out.1.push((whole && written).then(|| {
            let s = seq.is_valid(r).then(|| seq.value(r));
            (t, s.map(str::len), s.map(String::from), export.value(r))
        }));
    }
    Ok(out)
}

/// The changes, decoded (each batch with its export's index).
pub(super) struct Held {
    batches: Vec<(usize, RecordBatch)>,
    /// Each batch's keys and ranks, once [`Latest::of_held`] has read them.
    ranked: Vec<Ranked>,
    /// The inference statistics of what was decoded, when gathered.
    pub stats: Option<TableStats>,
    /// Values that went to the catch-all column, by attribute.
    pub extra: BTreeMap<String, u64>,
}

/// Decode every export of `changes` with `schema` (a change table's, see
/// [`Schema::changes`]) and hold the rows; `None` once they outgrow `budget`
/// bytes. With `gather`, also the inference statistics of what they hold.
pub(super) fn hold_changes(
    changes: &[Export],
    schema: &Schema,
    jobs: usize,
    rt: &tokio::runtime::Handle,
    budget: usize,
    gather: bool,
) -> Result<Option<Held>> {
    struct Holding<'a> {
        batches: Vec<RecordBatch>,
        used: &'a AtomicUsize,
        over: &'a AtomicBool,
        budget: usize,
    }
    impl BatchSink for Holding<'_> {
        fn write(&mut self, b: RecordBatch) -> Result<()> {
            let n = b.get_array_memory_size();
            if self.used.fetch_add(n, Ordering::Relaxed) + n > self.budget {
                self.over.store(true, Ordering::Relaxed);
                return Err(Error::Usage("the changes outgrew the memory held for them".into()));
            }
            self.batches.push(b);
            Ok(())
        }
    }
    let (used, over) = (AtomicUsize::new(0), AtomicBool::new(false));
    let opts =
        PipelineOptions { jobs, decode: DecodeOptions { collect_stats: gather, ..Default::default() }, verify: true };
    let mut held = Held {
        batches: Vec::new(),
        ranked: Vec::new(),
        stats: gather.then(TableStats::default),
        extra: BTreeMap::new(),
    };
    for (i, e) in changes.iter().enumerate() {
        let holding = |_| Ok(Holding { batches: Vec::new(), used: &used, over: &over, budget });
        match decode_export(e, rt, schema, &opts, None, &Progress::default(), holding) {
            Ok((report, sinks)) => {
                held.batches.extend(sinks.into_iter().flat_map(|s| s.batches).map(|b| (i, b)));
                if let (Some(all), Some(these)) = (held.stats.as_mut(), report.table_stats) {
                    all.merge(these);
                }
                for (attr, n) in report.decode.extra_by_attribute {
                    *held.extra.entry(attr).or_default() += n;
                }
            }
            Err(_) if over.load(Ordering::Relaxed) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(held))
}

/// Stream the base's rows whose key did not change (is not in `skip`) into
/// `sinks` (one worker each), decoding with `schema`; with `gather`, the scan
/// also gathers the inference statistics the schema is checked with. Returns
/// the scan's report and every sink, used or not.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_unchanged(
    base: &Export,
    rt: &tokio::runtime::Handle,
    schema: &Schema,
    sinks: Vec<DatasetSink>,
    skip: Option<SkipKeys>,
    gather: bool,
    infer: InferOptions,
    progress: &Progress,
    write: &crate::write::WriteOptions,
) -> Result<(PipelineReport, Vec<DatasetSink>, DecodeOptions)> {
    let jobs = sinks.len();
    let skip = skip.filter(|s| !s.is_empty()).map(Arc::new);
    let opts = PipelineOptions {
        jobs,
        decode: DecodeOptions { collect_stats: gather, infer, skip, ..Default::default() },
        verify: true,
    };
    // Partitions without an open file get the base's source lines, decoded
    // after the scan with these same options (the key filter included).
    let sinks: Vec<DatasetSink> = match crate::convert::router_options(base, schema, &opts.decode, write) {
        Some(o) => {
            sinks.into_iter().map(|s| s.route_lines(crate::decode::ItemDecoder::new(schema, o.clone()))).collect()
        }
        None => sinks,
    };
    let waiting: Mutex<Vec<Option<DatasetSink>>> = Mutex::new(sinks.into_iter().map(Some).collect());
    // No rejects sink: a base line that cannot be decoded is an error naming it, as it was through SQL.
    let (report, mut sinks) = decode_export(base, rt, schema, &opts, None, progress, |w| {
        Ok(waiting.lock().unwrap()[w].take().expect("one sink per worker"))
    })?;
    sinks.extend(waiting.into_inner().unwrap().into_iter().flatten());
    Ok((report, sinks, opts.decode))
}
