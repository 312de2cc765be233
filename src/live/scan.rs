//! A Scan-based export of a live table: a parallel segmented Scan, held to a
//! read-capacity budget, checkpointed, staged as an export.
//!
//! Each segment writes its items as DynamoDB JSON lines into gzip data files
//! ("parts", ~32 MiB of text each) under `DEST/_dynolake/scan/AWSDynamoDB/<id>/data/`.
//! After each part, the segment's checkpoint (`checkpoints/segment-N.json`:
//! the parts so far, their MD5s and counts, and the `LastEvaluatedKey` at the
//! part's end) is written. Parts end only at page boundaries, so a checkpoint
//! is a clean cut: an interrupted scan resumes every segment at its last
//! checkpoint, rewrites the part it was in the middle of under the same name,
//! and ends with the files an uninterrupted scan would have written (the same
//! items in the same order; a live table may have changed in between, as it
//! may during any scan). When every segment is done, the manifests are
//! written, and the staging area *is* a DynamoDB export: the rest of the job
//! is `convert`'s, with its schema policy, writers, commit and checks.
//!
//! Why stage instead of decoding pages straight into the writers: the scan
//! can then be resumed without redoing the conversion's state, the exact
//! schema is known before anything is written, and the hot path stays the
//! one that is measured. The staged text costs disk (about a fifth of the
//! table's size, gzipped) and is removed after the commit.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, BillingMode, ReturnConsumedCapacity};
use base64::Engine;
use flate2::Compression;
use flate2::write::GzEncoder;
use md5::{Digest, Md5};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::capacity::Budget;
use super::{aws, json};
use crate::error::{Error, Result};
use crate::export::manifest::{DataFileEntry, ExportType, ManifestSummary};
use crate::export::{self, Export};
use crate::store::Location;

/// Where a scan stages its export, below the destination.
pub const STAGING: &str = "_dynolake/scan";

#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Parallel Scan segments (`TotalSegments`).
    pub segments: u32,
    /// Read capacity units per second for the whole scan; `None`: no limit.
    pub max_rcu: Option<f64>,
    /// Strongly consistent reads (twice the capacity).
    pub consistent: bool,
    /// Items per Scan page (`Limit`); `None`: sized from the budget, else DynamoDB's 1 MB pages.
    pub page_items: Option<i32>,
    /// Uncompressed bytes per staged data file.
    pub part_bytes: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions { segments: 4, max_rcu: None, consistent: false, page_items: None, part_bytes: 32 << 20 }
    }
}

/// Live counters for a progress bar.
#[derive(Debug, Default)]
pub struct ScanProgress {
    /// Items scanned, with those an interrupted run had checkpointed.
    pub items: AtomicU64,
    /// Items read from the table by this run.
    pub read_items: AtomicU64,
    pub pages: AtomicU64,
    /// Consumed read capacity, in thousandths of a unit.
    pub milli_units: AtomicU64,
    pub segments_done: AtomicUsize,
}

impl ScanProgress {
    pub fn units(&self) -> f64 {
        self.milli_units.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

/// What a scan did.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    pub table: String,
    pub table_arn: String,
    pub segments: u32,
    /// Items in the staged export.
    pub items: u64,
    /// Items read from the table by this run (fewer when it continued an interrupted one).
    pub items_read: u64,
    /// Scan requests made by this run.
    pub pages: u64,
    /// Read capacity units consumed by this run (not by the run it resumed).
    pub consumed_capacity: f64,
    pub max_rcu: Option<f64>,
    /// Segments that continued from an interrupted run's checkpoint.
    pub resumed_segments: usize,
    pub scan_seconds: f64,
}

/// What the scan needs to know of the table.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub name: String,
    pub arn: String,
    pub on_demand: bool,
    /// Provisioned read capacity units (provisioned mode).
    pub read_capacity: Option<i64>,
    /// An on-demand table's maximum read request units, when one is set.
    pub max_read_request_units: Option<i64>,
    pub item_count: Option<i64>,
    pub size_bytes: Option<i64>,
}

pub async fn describe(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<TableInfo> {
    let out =
        client.describe_table().table_name(table).send().await.map_err(|e| aws(format!("DescribeTable {table}"), e))?;
    let t = out.table().ok_or_else(|| Error::NotFound(format!("DescribeTable {table} returned no table")))?;
    let on_demand = t.billing_mode_summary().and_then(|b| b.billing_mode()) == Some(&BillingMode::PayPerRequest);
    Ok(TableInfo {
        name: t.table_name().unwrap_or(table).to_string(),
        arn: t.table_arn().unwrap_or(table).to_string(),
        on_demand,
        read_capacity: t.provisioned_throughput().and_then(|p| p.read_capacity_units()).filter(|r| *r > 0),
        max_read_request_units: t.on_demand_throughput().and_then(|o| o.max_read_request_units()).filter(|r| *r > 0),
        item_count: t.item_count(),
        size_bytes: t.table_size_bytes(),
    })
}

/// The budget in units per second: `--max-rcu`, or `--max-read-percent` of
/// the table's provisioned read capacity (or of an on-demand table's maximum
/// read request units, when it has one).
pub fn budget(t: &TableInfo, max_rcu: Option<f64>, max_percent: Option<f64>) -> Result<Option<f64>> {
    let from_percent = match max_percent {
        None => None,
        Some(p) if !(p > 0.0 && p <= 100.0) => {
            return Err(Error::Usage(format!("--max-read-percent {p}: give a percentage above 0, at most 100")));
        }
        Some(p) => {
            let base = if t.on_demand { t.max_read_request_units } else { t.read_capacity };
            let base = base.ok_or_else(|| {
                Error::Usage(format!(
                    "--max-read-percent: {} is on-demand without a maximum read throughput, so it has no read \
                     capacity to take a percentage of; give --max-rcu instead",
                    t.name
                ))
            })?;
            Some(base as f64 * p / 100.0)
        }
    };
    match (max_rcu, from_percent) {
        (Some(r), _) if r <= 0.0 => Err(Error::Usage(format!("--max-rcu {r}: give a positive number"))),
        (Some(r), Some(p)) => Ok(Some(r.min(p))),
        (r, p) => Ok(r.or(p)),
    }
}

/// The scan's own record, at `STAGING/scan.json`: which table, which export
/// id and how many segments, so a resumed run continues the same scan.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ScanRecord {
    table_arn: String,
    export_id: String,
    segments: u32,
    consistent: bool,
    started_at: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    segment: u32,
    parts: Vec<DataFileEntry>,
    /// The `LastEvaluatedKey` at the end of the last part, as DynamoDB JSON.
    last_key: Option<serde_json::Value>,
    done: bool,
    items: u64,
}

struct Ctx {
    client: aws_sdk_dynamodb::Client,
    table: TableInfo,
    staging: Location,
    record: ScanRecord,
    opts: ScanOptions,
    budget: Option<Budget>,
    progress: Arc<ScanProgress>,
}

/// Scan `table` into an export staged at `dest/_dynolake/scan/`, resuming an
/// interrupted scan of the same table there; return it, opened.
pub async fn scan_to_export(
    client: aws_sdk_dynamodb::Client,
    table: TableInfo,
    dest: &Location,
    opts: ScanOptions,
    progress: Arc<ScanProgress>,
) -> Result<(Export, ScanReport)> {
    let started = Instant::now();
    let staging = dest.child(STAGING);
    let record_path = staging.prefix.clone().join("scan.json");
    let record = match read_json::<ScanRecord>(&staging, &record_path).await? {
        Some(r) if r.table_arn == table.arn => r,
        Some(r) => {
            return Err(Error::Conflict(format!(
                "{} holds an interrupted scan of {}, not of {}: finish it, or remove {}",
                dest.url, r.table_arn, table.arn, staging.url
            )));
        }
        None => {
            let now = chrono::Utc::now();
            let r = ScanRecord {
                table_arn: table.arn.clone(),
                export_id: format!("{:014}-{:08x}", now.timestamp_millis(), rand_u32()),
                segments: opts.segments.max(1),
                consistent: opts.consistent,
                started_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            };
            put_json(&staging, &record_path, &r).await?;
            r
        }
    };
    let export_dir = staging.prefix.clone().join("AWSDynamoDB").join(record.export_id.as_str());
    let ctx = Arc::new(Ctx {
        client,
        budget: opts.max_rcu.map(Budget::new),
        table,
        staging: staging.clone(),
        record: record.clone(),
        opts,
        progress: progress.clone(),
    });
    let summary_path = export_dir.clone().join("manifest-summary.json");
    let already_done = staging.get_if_exists(&summary_path).await?.is_some();
    let mut resumed = 0;
    let mut checkpoints = Vec::new();
    if !already_done {
        let tasks: Vec<_> = (0..record.segments)
            .map(|s| {
                let ctx = ctx.clone();
                tokio::spawn(async move { segment(&ctx, s).await })
            })
            .collect();
        let mut first_err = None;
        for t in tasks {
            match t.await.map_err(|e| Error::Usage(format!("a scan segment panicked: {e}")))? {
                Ok((cp, was_resumed)) => {
                    resumed += usize::from(was_resumed);
                    checkpoints.push(cp);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        write_manifests(&ctx, &export_dir, &checkpoints).await?;
    }
    let export = export::open_at(&staging, Some(&record.export_id)).await?;
    let report = ScanReport {
        table: ctx.table.name.clone(),
        table_arn: ctx.table.arn.clone(),
        segments: record.segments,
        items: export.summary.item_count,
        items_read: progress.read_items.load(Ordering::Relaxed),
        pages: progress.pages.load(Ordering::Relaxed),
        consumed_capacity: progress.units(),
        max_rcu: ctx.opts.max_rcu,
        resumed_segments: if already_done { record.segments as usize } else { resumed },
        scan_seconds: started.elapsed().as_secs_f64(),
    };
    Ok((export, report))
}

/// Remove the staging area (after the conversion committed).
pub async fn remove_staging(dest: &Location) -> Result<()> {
    use futures::TryStreamExt;
    let staging = dest.child(STAGING);
    let paths: Vec<Path> = staging
        .store
        .list(Some(&staging.prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|e| Error::store(format!("list {}", staging.url), e))?;
    for p in paths {
        staging.store.delete(&p).await.map_err(|e| Error::store(format!("delete {}", staging.display(&p)), e))?;
    }
    // A local store leaves the emptied folders behind.
    if let Some(dir) = staging.local_path(&staging.prefix) {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}

/// One segment, from its checkpoint to its end. Returns its last checkpoint
/// and whether it continued an earlier run's.
async fn segment(ctx: &Ctx, seg: u32) -> Result<(Checkpoint, bool)> {
    let path = ctx.staging.prefix.clone().join("checkpoints").join(format!("segment-{seg:05}.json"));
    let mut cp = read_json::<Checkpoint>(&ctx.staging, &path)
        .await?
        .unwrap_or(Checkpoint { segment: seg, ..Default::default() });
    let resumed = cp.done || !cp.parts.is_empty() || cp.last_key.is_some();
    let p = &ctx.progress;
    p.items.fetch_add(cp.items, Ordering::Relaxed);
    let table = &ctx.table.name;
    let mut part = Part::new();
    let mut units_per_item = 0.5; // an item under 4 KB, eventually consistent: refined after each page
    let mut line = Vec::with_capacity(4096);
    while !cp.done {
        crate::cancel::check()?;
        if let Some(b) = &ctx.budget {
            b.acquire().await;
        }
        let mut req = ctx
            .client
            .scan()
            .table_name(&ctx.table.arn)
            .segment(seg as i32)
            .total_segments(ctx.record.segments as i32)
            .consistent_read(ctx.record.consistent)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let limit = ctx
            .opts
            .page_items
            .or_else(|| ctx.budget.as_ref().map(|b| b.page_items(units_per_item, ctx.record.segments)));
        if let Some(l) = limit {
            req = req.limit(l.max(1));
        }
        let start_key = part.last_key.as_ref().or(cp.last_key.as_ref());
        if let Some(k) = start_key {
            req = req.set_exclusive_start_key(Some(key_from_json(k)?));
        }
        let out = req.send().await.map_err(|e| aws(format!("Scan of {table}, segment {seg}"), e))?;
        let units = out.consumed_capacity().and_then(|c| c.capacity_units()).unwrap_or(0.0);
        if let Some(b) = &ctx.budget {
            b.spend(units);
        }
        let items = out.items();
        if !items.is_empty() && units > 0.0 {
            units_per_item = units / items.len() as f64;
        }
        for item in items {
            line.clear();
            line.extend_from_slice(b"{\"Item\":");
            json::write_item(&mut line, item)?;
            line.extend_from_slice(b"}\n");
            part.write(&line)?;
        }
        p.items.fetch_add(items.len() as u64, Ordering::Relaxed);
        p.read_items.fetch_add(items.len() as u64, Ordering::Relaxed);
        p.pages.fetch_add(1, Ordering::Relaxed);
        p.milli_units.fetch_add((units * 1000.0).round() as u64, Ordering::Relaxed);
        part.last_key = match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => Some(key_to_json(k)?),
            _ => None,
        };
        let end = part.last_key.is_none();
        if end || part.raw >= ctx.opts.part_bytes {
            let finished = std::mem::replace(&mut part, Part::new());
            let last_key = finished.last_key.clone();
            if finished.items > 0 {
                let name = format!("{seg:05}-{:05}.json.gz", cp.parts.len());
                let key = format!("AWSDynamoDB/{}/data/{name}", ctx.record.export_id);
                let entry = finished.upload(&ctx.staging, &key).await?;
                cp.items += entry.item_count;
                cp.parts.push(entry);
            }
            cp.last_key = last_key;
            cp.done = end;
            put_json(&ctx.staging, &path, &cp).await?;
            crate::cancel::crash_point("scan-checkpoint");
        }
    }
    p.segments_done.fetch_add(1, Ordering::Relaxed);
    Ok((cp, resumed))
}

/// A staged data file being written: gzip in memory, then one put.
struct Part {
    enc: GzEncoder<Vec<u8>>,
    raw: usize,
    items: u64,
    last_key: Option<serde_json::Value>,
}

impl Part {
    fn new() -> Part {
        Part { enc: GzEncoder::new(Vec::new(), Compression::fast()), raw: 0, items: 0, last_key: None }
    }

    fn write(&mut self, line: &[u8]) -> Result<()> {
        self.raw += line.len();
        self.items += 1;
        self.enc.write_all(line).map_err(|e| Error::io("gzip a scanned page", e))
    }

    async fn upload(self, staging: &Location, key: &str) -> Result<DataFileEntry> {
        let bytes = self.enc.finish().map_err(|e| Error::io("gzip a scanned page", e))?;
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&bytes));
        staging.put_bytes(&crate::store::join_rel(&staging.prefix, key), bytes).await?;
        Ok(DataFileEntry { item_count: self.items, md5_checksum: md5, etag: None, data_file_s3_key: key.to_string() })
    }
}

async fn write_manifests(ctx: &Ctx, dir: &Path, checkpoints: &[Checkpoint]) -> Result<()> {
    let mut files = String::new();
    let mut items = 0;
    let mut cps: Vec<&Checkpoint> = checkpoints.iter().collect();
    cps.sort_by_key(|c| c.segment);
    for e in cps.iter().flat_map(|c| c.parts.iter()) {
        files.push_str(&serde_json::to_string(e).expect("serializable"));
        files.push('\n');
        items += e.item_count;
    }
    let id = &ctx.record.export_id;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let summary = ManifestSummary {
        start_time: Some(ctx.record.started_at.clone()),
        end_time: Some(now),
        export_time: Some(ctx.record.started_at.clone()),
        manifest_files_s3_key: format!("AWSDynamoDB/{id}/manifest-files.json"),
        item_count: items,
        ..ManifestSummary::made_here(
            "2020-06-30",
            format!("{}/scan/{id}", ctx.table.arn),
            ctx.table.arn.clone(),
            ExportType::FullExport,
        )
    };
    let summary = serde_json::to_vec(&summary).expect("serializable");
    let st = &ctx.staging;
    st.put_bytes(&dir.clone().join("manifest-files.json"), files.as_bytes().to_vec()).await?;
    st.put_bytes(&dir.clone().join("manifest-files.md5"), b64md5(files.as_bytes())).await?;
    st.put_bytes(&dir.clone().join("manifest-summary.md5"), b64md5(&summary)).await?;
    // The summary last: its presence says the export is complete.
    st.put_bytes(&dir.clone().join("manifest-summary.json"), summary).await
}

fn b64md5(b: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(b)).into_bytes()
}

/// A key (`LastEvaluatedKey`) as DynamoDB JSON, for a checkpoint.
fn key_to_json(key: &HashMap<String, AttributeValue>) -> Result<serde_json::Value> {
    let mut out = Vec::new();
    json::write_item(&mut out, key)?;
    Ok(serde_json::from_slice(&out).expect("DynamoDB JSON is JSON"))
}

/// A checkpoint's key back as SDK values. Key attributes are S, N or B.
fn key_from_json(v: &serde_json::Value) -> Result<HashMap<String, AttributeValue>> {
    let bad = || Error::Usage(format!("a scan checkpoint holds a key dynolake cannot read: {v}"));
    let obj = v.as_object().ok_or_else(bad)?;
    let mut key = HashMap::new();
    for (name, typed) in obj {
        let (t, x) = typed.as_object().and_then(|o| o.iter().next()).ok_or_else(bad)?;
        let s = x.as_str().ok_or_else(bad)?;
        let value = match t.as_str() {
            "S" => AttributeValue::S(s.to_string()),
            "N" => AttributeValue::N(s.to_string()),
            "B" => {
                AttributeValue::B(Blob::new(base64::engine::general_purpose::STANDARD.decode(s).map_err(|_| bad())?))
            }
            _ => return Err(bad()),
        };
        key.insert(name.clone(), value);
    }
    Ok(key)
}

async fn read_json<T: serde::de::DeserializeOwned>(loc: &Location, path: &Path) -> Result<Option<T>> {
    match loc.get_if_exists(path).await? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Usage(format!("{} is not a dynolake scan record: {e}", loc.display(path)))),
    }
}

async fn put_json<T: Serialize>(loc: &Location, path: &Path, v: &T) -> Result<()> {
    loc.put_bytes(path, serde_json::to_vec_pretty(v).expect("serializable")).await
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish() as u32
}
