//! Stage, then commit: readers never see a half-written dataset.
//!
//! A run writes its files under `DEST/_temporary/<run>/` (engines skip
//! `_`-prefixed paths). To commit, it first writes the full commit record there
//! (`_pending_commit.json`), then moves every file into place, writes
//! `DEST/_dynolake/commits/<run>.json` and `DEST/_SUCCESS`, removes what
//! `--mode overwrite` replaces, and deletes its staging folder. A rerun of the
//! same job (export, format, partitioning, mode) that finds a pending commit
//! left by a crash finishes it (roll forward); another job refuses to adopt it
//! and says how to recover (`dynolake recover`). Staging folders without a
//! pending commit are leftovers and are deleted. So a crash at any point
//! leaves the old dataset or the new one, and rerunning finishes the job.
//!
//! All of this runs under the destination's lease ([`super::lease`]): one
//! writer at a time. dynolake's readers read only the files that commit
//! records list, so files moved into place by an unfinished commit are never
//! read; other readers that list folders can see them (see the README).

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::partition::PartitionSpec;
use crate::error::{Error, Result};
use crate::store::Location;

pub const TEMPORARY: &str = "_temporary";
pub const PENDING: &str = "_pending_commit.json";
pub const COMMITS: &str = "_dynolake/commits";
pub const SUCCESS: &str = "_SUCCESS";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refuse a destination that already holds data.
    Error,
    /// Replace the dataset (old files are removed after the new commit).
    Overwrite,
    /// Add a new commit alongside the existing ones.
    Append,
}

/// One file of a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommittedFile {
    /// Relative to the dataset root.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    /// Partition column → value (`None`: the Hive default partition).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partition: BTreeMap<String, Option<String>>,
}

/// Where the data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub table: String,
    pub table_arn: String,
    pub export_id: String,
    pub export_arn: String,
    pub export_time: Option<String>,
    pub item_count: u64,
}

/// The commit record: everything a reader or a later run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitRecord {
    pub version: u32,
    pub run_id: String,
    pub committed_at: String,
    pub tool: String,
    pub mode: Mode,
    pub format: super::files::Format,
    pub compression: String,
    pub partition_by: Vec<PartitionSpec>,
    pub source: SourceInfo,
    /// The schema file (see `schemas/README.md`).
    pub schema: serde_json::Value,
    pub rows: u64,
    /// Rows per partition directory (`""` when unpartitioned).
    pub partitions: BTreeMap<String, u64>,
    pub files: Vec<CommittedFile>,
    pub rejected: u64,
    pub extra_values: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejects_file: Option<String>,
    /// Written by `dynolake merge`: which exports the dataset holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeState>,
}

/// What a merged dataset holds: its base full export, the incremental
/// exports applied onto it, and the time up to which it is current, so the
/// next run applies only what is new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeState {
    /// The key attributes (DynamoDB names).
    pub key: Vec<String>,
    pub base_export_arn: String,
    /// Incremental export ARNs, in the order applied.
    pub applied: Vec<String>,
    /// The dataset holds every change written before this time (ISO-8601 UTC):
    /// the base's export time, then the end of the last window applied.
    pub current_to: String,
}

use crate::cancel::crash_point;

fn join(base: &Path, rel: &str) -> Path {
    crate::store::join_rel(base, rel)
}

async fn put_json<T: Serialize>(loc: &Location, path: &Path, v: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(v).expect("serializable");
    bytes.push(b'\n');
    loc.store
        .put(path, PutPayload::from(bytes))
        .await
        .map_err(|e| Error::store(format!("writing {}", loc.display(path)), e))?;
    Ok(())
}

async fn get_json<T: for<'de> Deserialize<'de>>(loc: &Location, path: &Path) -> Result<T> {
    let r = loc.store.get(path).await.map_err(|e| Error::store(loc.display(path), e))?;
    let bytes = r.bytes().await.map_err(|e| Error::store(loc.display(path), e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Usage(format!("{}: not a commit record: {e}", loc.display(path))))
}

async fn list_all(loc: &Location, prefix: &Path) -> Result<Vec<Path>> {
    loc.store
        .list(Some(prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|e| Error::store(format!("listing {}", loc.display(prefix)), e))
}

/// The commit records of a dataset, oldest first.
pub async fn read_commits(dest: &Location) -> Result<Vec<CommitRecord>> {
    let mut paths = list_all(dest, &join(&dest.prefix, COMMITS)).await?;
    paths.sort();
    let mut out = Vec::new();
    for p in paths.iter().filter(|p| p.extension() == Some("json")) {
        out.push(get_json(dest, p).await?);
    }
    Ok(out)
}

/// What a run writes, as far as finishing another run's commit goes: a rerun
/// of the same conversion may finish an interrupted commit (roll forward);
/// any other job must not adopt it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobKey {
    pub export_id: String,
    pub format: super::files::Format,
    pub partition_by: Vec<PartitionSpec>,
    pub mode: Mode,
}

impl JobKey {
    pub fn of(record: &CommitRecord) -> JobKey {
        JobKey {
            export_id: record.source.export_id.clone(),
            format: record.format,
            partition_by: record.partition_by.clone(),
            mode: record.mode,
        }
    }

    /// For messages: `export X as parquet, partitioned by status, mode error`.
    pub fn describe(&self) -> String {
        let parts: Vec<&str> = self.partition_by.iter().map(|p| p.name.as_str()).collect();
        let by =
            if parts.is_empty() { "unpartitioned".to_string() } else { format!("partitioned by {}", parts.join(", ")) };
        let mode = match self.mode {
            Mode::Error => "error",
            Mode::Overwrite => "overwrite",
            Mode::Append => "append",
        };
        format!("export {} as {}, {by}, --mode {mode}", self.export_id, self.format.extension())
    }
}

/// The commits that make up the dataset now: the last `--mode overwrite`
/// commit (or the first commit) and every commit after it. Older records are
/// those an overwrite replaced and had not finished removing when it was
/// interrupted; their files are no longer part of the dataset.
pub fn live(commits: &[CommitRecord]) -> &[CommitRecord] {
    let start = commits.iter().rposition(|c| c.mode == Mode::Overwrite).unwrap_or(0);
    &commits[start..]
}

/// What `prepare` found and did.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Interrupted runs whose commit this run finished.
    pub rolled_forward: Vec<CommitRecord>,
    /// Staging folders of interrupted runs that were deleted.
    pub cleaned: Vec<String>,
    pub existing: Vec<CommitRecord>,
}

/// The interrupted commits under a destination's staging area (their
/// `_pending_commit.json`), and the run ids of staging folders without one.
pub async fn interrupted(dest: &Location) -> Result<(Vec<CommitRecord>, Vec<(String, Vec<Path>)>)> {
    let tmp = join(&dest.prefix, TEMPORARY);
    let leftovers = list_all(dest, &tmp).await?;
    let mut runs: BTreeMap<String, Vec<Path>> = BTreeMap::new();
    for p in leftovers {
        let run = p.prefix_match(&tmp).and_then(|mut parts| parts.next()).map(|p| p.as_ref().to_string());
        if let Some(run) = run {
            runs.entry(run).or_default().push(p);
        }
    }
    let mut pending = Vec::new();
    let mut stale = Vec::new();
    for (run, paths) in runs {
        let marker = join(&tmp, &format!("{run}/{PENDING}"));
        if paths.contains(&marker) {
            pending.push(get_json(dest, &marker).await?);
        } else {
            stale.push((run, paths));
        }
    }
    Ok((pending, stale))
}

/// Before writing (holding the destination's lease): finish the interrupted
/// commit of the same job, refuse another job's, delete staging leftovers,
/// then apply `mode`. `job: None` finishes any interrupted commit (`recover`).
pub async fn prepare(dest: &Location, mode: Mode, job: Option<&JobKey>) -> Result<Prepared> {
    let mut prepared = Prepared::default();
    let (pending, stale) = interrupted(dest).await?;
    for record in pending {
        let theirs = JobKey::of(&record);
        if job.is_some_and(|j| *j != theirs) {
            return Err(Error::Conflict(format!(
                "{} holds the interrupted commit of run {} ({}), which this run will not adopt. \
                 Rerun that conversion to finish it, or run `dynolake recover {}` to finish it \
                 (`--discard` to remove it instead)",
                dest.url,
                record.run_id,
                theirs.describe(),
                dest.url
            )));
        }
        finish_commit(dest, &record).await?;
        prepared.rolled_forward.push(record);
    }
    for (run, paths) in stale {
        for p in paths {
            delete_quiet(dest, &p).await?;
        }
        remove_local_dirs(dest, &join(&dest.prefix, &format!("{TEMPORARY}/{run}")));
        prepared.cleaned.push(run);
    }
    prepared.existing = read_commits(dest).await?;
    if mode == Mode::Error {
        if let Some(last) = prepared.existing.last() {
            if prepared.rolled_forward.is_empty() {
                return Err(Error::Usage(format!(
                    "{} already holds a dataset (committed by run {}); use --mode overwrite or --mode append",
                    dest.url, last.run_id
                )));
            }
        } else {
            let other: Vec<Path> = list_all(dest, &dest.prefix).await?;
            let ours = |p: &Path| {
                p.prefix_match(&dest.prefix)
                    .and_then(|mut parts| parts.next())
                    .is_some_and(|first| [TEMPORARY, "_rejects", "_dynolake"].contains(&first.as_ref()))
            };
            if let Some(p) = other.iter().find(|p| !ours(p)) {
                return Err(Error::Usage(format!(
                    "{} is not empty ({} is there) and holds no dynolake dataset; pick an empty destination",
                    dest.url,
                    dest.display(p)
                )));
            }
        }
    }
    Ok(prepared)
}

/// What a reader of `dest` should be told: a commit under way (the lease
/// is held) or interrupted (a pending commit). Readers still read only what
/// commit records list.
pub async fn unfinished(dest: &Location) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let (pending, _) = interrupted(dest).await?;
    let holder = super::lease::holder(dest).await?;
    for p in &pending {
        let state = match &holder {
            Some(h) if h.run_id != p.run_id => "under way or interrupted",
            _ => "unfinished",
        };
        out.push(format!(
            "{}: the commit of run {} is {state}; only committed data is read (`dynolake recover {}` finishes an interrupted one)",
            dest.url, p.run_id, dest.url
        ));
    }
    if let (Some(h), true) = (&holder, pending.is_empty()) {
        out.push(format!(
            "{}: run {} ({}) is writing; its data is not read until it commits",
            dest.url, h.run_id, h.job
        ));
    }
    Ok(out)
}

/// Remove an interrupted commit instead of finishing it: the files it moved
/// into place and its staging folder. A commit whose record was already
/// written is complete and is finished instead (returns false).
pub async fn discard(dest: &Location, record: &CommitRecord) -> Result<bool> {
    let record_path = join(&dest.prefix, &format!("{COMMITS}/{}.json", record.run_id));
    if dest.store.head(&record_path).await.is_ok() {
        finish_commit(dest, record).await?;
        return Ok(false);
    }
    for f in &record.files {
        delete_quiet(dest, &join(&dest.prefix, &f.path)).await?;
    }
    let staging = join(&dest.prefix, &format!("{TEMPORARY}/{}", record.run_id));
    for p in list_all(dest, &staging).await? {
        delete_quiet(dest, &p).await?;
    }
    remove_local_dirs(dest, &staging);
    Ok(true)
}

/// Commit a finished run: see the module docs for the order of steps.
pub async fn commit(dest: &Location, record: &CommitRecord) -> Result<()> {
    crash_point("before-commit");
    let pending = join(&dest.prefix, &format!("{TEMPORARY}/{}/{PENDING}", record.run_id));
    put_json(dest, &pending, record).await?;
    finish_commit(dest, record).await
}

async fn finish_commit(dest: &Location, record: &CommitRecord) -> Result<()> {
    let staging = join(&dest.prefix, &format!("{TEMPORARY}/{}", record.run_id));
    for (i, f) in record.files.iter().enumerate() {
        if i == record.files.len() / 2 {
            crash_point("mid-commit");
        }
        let from = join(&staging, &f.path);
        let to = join(&dest.prefix, &f.path);
        let moved = dest.store.rename(&from, &to).await;
        crash_point("commit-move");
        match moved {
            Ok(()) => {}
            // Moved by an earlier, interrupted attempt.
            Err(object_store::Error::NotFound { .. }) if dest.store.head(&to).await.is_ok() => {}
            Err(e) => return Err(Error::store(format!("moving {} into place", dest.display(&from)), e)),
        }
    }
    let record_path = join(&dest.prefix, &format!("{COMMITS}/{}.json", record.run_id));
    put_json(dest, &record_path, record).await?;
    crash_point("commit-record");
    if record.mode == Mode::Overwrite {
        for old in read_commits(dest).await? {
            if old.run_id == record.run_id {
                continue;
            }
            for f in &old.files {
                delete_quiet(dest, &join(&dest.prefix, &f.path)).await?;
                crash_point("overwrite-delete");
            }
            delete_quiet(dest, &join(&dest.prefix, &format!("{COMMITS}/{}.json", old.run_id))).await?;
        }
    }
    dest.store
        .put(&join(&dest.prefix, SUCCESS), PutPayload::from(format!("{}\n", record.run_id).into_bytes()))
        .await
        .map_err(|e| Error::store(format!("writing {}", dest.url), e))?;
    crash_point("commit-success");
    for p in list_all(dest, &staging).await? {
        delete_quiet(dest, &p).await?;
    }
    remove_local_dirs(dest, &staging);
    Ok(())
}

/// On local disk, object deletes leave empty folders: remove a run's staging
/// folder and `_temporary/` when it is empty.
pub fn remove_local_dirs(dest: &Location, staging: &Path) {
    if let Some(local) = dest.local_path(staging) {
        let _ = std::fs::remove_dir_all(local);
        if let Some(tmp) = dest.local_path(&join(&dest.prefix, TEMPORARY)) {
            let _ = std::fs::remove_dir(tmp);
        }
    }
}

async fn delete_quiet(dest: &Location, p: &Path) -> Result<()> {
    match dest.store.delete(p).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::store(format!("deleting {}", dest.display(p)), e)),
    }
}

/// A new run id: sortable by time, unique enough for concurrent runs.
pub fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let nanos = now.timestamp_subsec_nanos();
    let salt = (std::process::id() as u64).wrapping_mul(0x9e37_79b9) ^ u64::from(nanos);
    format!("{}-{:08x}", now.format("%Y%m%dT%H%M%S%3fZ"), salt as u32)
}
