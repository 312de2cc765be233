//! Stage, then commit: readers never see a half-written dataset.
//!
//! A run writes its files under `DEST/_temporary/<run>/` (engines skip
//! `_`-prefixed paths). To commit, it first writes the full commit record there
//! (`_pending_commit.json`), then moves every file into place, writes
//! `DEST/_dynolake/commits/<run>.json` and `DEST/_SUCCESS`, removes what
//! `--mode overwrite` replaces, and deletes its staging folder. A run that
//! finds a pending commit left by a crash finishes it (roll forward); staging
//! folders without one are leftovers and are deleted. So a crash at any point
//! leaves the old dataset or the new one, and rerunning finishes the job.

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
}

/// A crash-injection point for tests (`DYNOLAKE_CRASH_AT=before-commit|mid-commit`).
fn crash_point(name: &str) {
    if std::env::var("DYNOLAKE_CRASH_AT").as_deref() == Ok(name) {
        eprintln!("dynolake: simulated crash at {name}");
        std::process::exit(101);
    }
}

fn join(base: &Path, rel: &str) -> Path {
    rel.split('/').filter(|p| !p.is_empty()).fold(base.clone(), |p, part| p.join(part))
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

/// What `prepare` found and did.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Interrupted runs whose commit this run finished.
    pub rolled_forward: Vec<CommitRecord>,
    /// Staging folders of interrupted runs that were deleted.
    pub cleaned: Vec<String>,
    pub existing: Vec<CommitRecord>,
}

/// Before writing: finish or clean up interrupted runs, then apply `mode`.
pub async fn prepare(dest: &Location, mode: Mode) -> Result<Prepared> {
    let mut prepared = Prepared::default();
    let tmp = join(&dest.prefix, TEMPORARY);
    let leftovers = list_all(dest, &tmp).await?;
    let mut runs: BTreeMap<String, Vec<Path>> = BTreeMap::new();
    for p in leftovers {
        let run = p.prefix_match(&tmp).and_then(|mut parts| parts.next()).map(|p| p.as_ref().to_string());
        if let Some(run) = run {
            runs.entry(run).or_default().push(p);
        }
    }
    for (run, paths) in runs {
        let pending = join(&tmp, &format!("{run}/{PENDING}"));
        if paths.contains(&pending) {
            let record: CommitRecord = get_json(dest, &pending).await?;
            finish_commit(dest, &record).await?;
            prepared.rolled_forward.push(record);
        } else {
            for p in paths {
                delete_quiet(dest, &p).await?;
            }
            prepared.cleaned.push(run);
        }
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
                    .is_some_and(|first| [TEMPORARY, "_rejects"].contains(&first.as_ref()))
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
        match dest.store.rename(&from, &to).await {
            Ok(()) => {}
            // Moved by an earlier, interrupted attempt.
            Err(object_store::Error::NotFound { .. }) if dest.store.head(&to).await.is_ok() => {}
            Err(e) => return Err(Error::store(format!("moving {} into place", dest.display(&from)), e)),
        }
    }
    let record_path = join(&dest.prefix, &format!("{COMMITS}/{}.json", record.run_id));
    put_json(dest, &record_path, record).await?;
    if record.mode == Mode::Overwrite {
        for old in read_commits(dest).await? {
            if old.run_id == record.run_id {
                continue;
            }
            for f in &old.files {
                delete_quiet(dest, &join(&dest.prefix, &f.path)).await?;
            }
            delete_quiet(dest, &join(&dest.prefix, &format!("{COMMITS}/{}.json", old.run_id))).await?;
        }
    }
    dest.store
        .put(&join(&dest.prefix, SUCCESS), PutPayload::from(format!("{}\n", record.run_id).into_bytes()))
        .await
        .map_err(|e| Error::store(format!("writing {}", dest.url), e))?;
    for p in list_all(dest, &staging).await? {
        delete_quiet(dest, &p).await?;
    }
    if let Some(local) = dest.local_path(&staging) {
        let _ = std::fs::remove_dir_all(local);
        if let Some(tmp) = dest.local_path(&join(&dest.prefix, TEMPORARY)) {
            let _ = std::fs::remove_dir(tmp);
        }
    }
    Ok(())
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
