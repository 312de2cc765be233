//! Finding exports and reading their manifests.
//!
//! Knows S3 keys and the export layout (see `shared/FORMAT.md`), nothing of
//! Arrow. A location may be an export folder (`…/AWSDynamoDB/<ExportId>/`),
//! its `manifest-summary.json`, an `AWSDynamoDB/` folder, or a prefix holding
//! `AWSDynamoDB/`. Only the manifest says which data files belong to an export:
//! incremental exports share `AWSDynamoDB/data/`, so folders are never listed
//! to find data.

pub mod manifest;

use std::collections::HashMap;

use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::Location;
pub use manifest::{DataFileEntry, ExportType, ManifestSummary, OutputFormat, OutputView};

/// An export found at a location, complete or not.
#[derive(Debug, Clone, Serialize)]
pub struct ExportInfo {
    pub id: String,
    /// Display form of the export folder.
    pub url: String,
    #[serde(skip)]
    pub dir: Path,
    /// `None` while the export is in progress (or failed): `_started` but no summary.
    pub summary: Option<ManifestSummary>,
}

impl ExportInfo {
    pub fn is_complete(&self) -> bool {
        self.summary.is_some()
    }
    /// The export's start time in epoch milliseconds, from its id.
    pub fn started_ms(&self) -> u64 {
        self.id.split('-').next().and_then(|t| t.parse().ok()).unwrap_or(0)
    }
}

/// A complete export with its data files resolved and its manifests checked.
#[derive(Debug, Clone)]
pub struct Export {
    pub id: String,
    pub location: Location,
    /// The export folder (`…/AWSDynamoDB/<id>`).
    pub dir: Path,
    pub summary: ManifestSummary,
    pub files: Vec<DataFile>,
    /// Problems found in the manifests themselves (checksums, totals, missing files).
    pub manifest_problems: Vec<String>,
}

/// One data file of an export.
#[derive(Debug, Clone)]
pub struct DataFile {
    pub entry: DataFileEntry,
    /// The object's path in the store.
    pub path: Path,
    /// Compressed size, when the object exists.
    pub size: Option<u64>,
}

impl Export {
    pub fn table_name(&self) -> &str {
        self.summary.table_name()
    }
    pub fn compressed_bytes(&self) -> u64 {
        self.files.iter().filter_map(|f| f.size).sum()
    }
    /// How to show a data file to a user.
    pub fn display(&self, file: &DataFile) -> String {
        self.location.display(&file.path)
    }
}

/// Whether a file name is one of a Streams-record folder's data files.
pub fn is_stream_records_file(name: &str) -> bool {
    let name = name.strip_suffix(".gz").unwrap_or(name);
    [".json", ".jsonl", ".ndjson"].iter().any(|e| name.ends_with(e))
}

/// A folder (or prefix) of DynamoDB Streams records — JSON Lines, one record
/// per line as a Lambda receives it, gzipped (`.gz`) or not — read as an
/// export without a manifest: every `*.json[l]`/`*.ndjson` file below it, in
/// key order. There is no checksum or count to verify them against.
pub async fn open_stream_records(loc: &Location) -> Result<Export> {
    let listed: Vec<object_store::ObjectMeta> = loc
        .store
        .list(Some(&loc.prefix))
        .try_collect()
        .await
        .map_err(|e| Error::store(format!("listing {}", loc.url), e))?;
    let mut files: Vec<DataFile> = listed
        .into_iter()
        .filter(|m| m.location.filename().is_some_and(is_stream_records_file))
        .filter(|m| !m.location.parts().any(|p| p.as_ref().starts_with('_')))
        .map(|m| DataFile {
            entry: DataFileEntry {
                item_count: 0,
                md5_checksum: String::new(),
                etag: None,
                data_file_s3_key: m.location.to_string(),
            },
            path: m.location,
            size: Some(m.size),
        })
        .collect();
    if files.is_empty() {
        return Err(Error::NotFound(format!(
            "no DynamoDB export and no Streams records (*.json, *.jsonl, *.ndjson, gzipped or not) at {}",
            loc.url
        )));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let name = loc.file_name().unwrap_or("streams").to_string();
    let summary = ManifestSummary::made_here(
        "dynolake-stream-records",
        loc.url.clone(),
        String::new(),
        ExportType::StreamRecords,
    );
    Ok(Export {
        id: name,
        location: loc.clone(),
        dir: loc.prefix.clone(),
        summary,
        files,
        manifest_problems: Vec::new(),
    })
}

const SUMMARY: &str = "manifest-summary.json";
const AWS_DIR: &str = "AWSDynamoDB";

/// Every export at a location, oldest first.
pub async fn discover(loc: &Location) -> Result<Vec<ExportInfo>> {
    let store = &loc.store;
    // A path to the summary itself.
    if loc.prefix.filename() == Some(SUMMARY) {
        let dir: Path = loc.prefix.parts().take(loc.prefix.parts().count() - 1).collect();
        return Ok(vec![export_info(loc, dir, false).await?]);
    }
    // An export folder.
    let listing = list_dir(loc, &loc.prefix).await?;
    if listing.files.iter().any(|f| f == SUMMARY || f == "_started") {
        return Ok(vec![export_info(loc, loc.prefix.clone(), false).await?]);
    }
    // An AWSDynamoDB folder, or a prefix holding one.
    let aws_dir = if loc.prefix.filename() == Some(AWS_DIR) {
        loc.prefix.clone()
    } else if listing.dirs.iter().any(|d| d == AWS_DIR) {
        loc.prefix.clone().join(AWS_DIR)
    } else {
        let mut seen: Vec<String> = listing.dirs.iter().map(|d| format!("{d}/")).chain(listing.files).collect();
        seen.truncate(10);
        return Err(Error::NotFound(format!(
            "no DynamoDB export at {}: expected AWSDynamoDB/<ExportId>/manifest-summary.json below it; found {}",
            loc.url,
            if seen.is_empty() { "nothing".to_string() } else { seen.join(", ") }
        )));
    };
    let sub = list_dir(loc, &aws_dir).await?;
    let ids: Vec<String> = sub.dirs.into_iter().filter(|d| d != "data").collect();
    let mut out: Vec<ExportInfo> =
        futures::stream::iter(ids.into_iter().map(|id| export_info(loc, aws_dir.clone().join(id), true)))
            .buffer_unordered(16)
            .try_collect()
            .await?;
    let _ = store;
    out.sort_by(|a, b| a.id.cmp(&b.id));
    if out.is_empty() {
        return Err(Error::NotFound(format!("no DynamoDB export in {}", loc.display(&aws_dir))));
    }
    Ok(out)
}

/// Pick the export to read: `export_id` when given, else the newest complete
/// full export. An export in progress is never read as complete.
pub fn choose(exports: &[ExportInfo], export_id: Option<&str>) -> Result<ExportInfo> {
    let pick = match export_id {
        Some(id) => exports.iter().find(|e| e.id == id).ok_or_else(|| {
            let ids: Vec<&str> = exports.iter().map(|e| e.id.as_str()).collect();
            Error::NotFound(format!("no export `{id}` here; there are: {}", ids.join(", ")))
        })?,
        None if exports.len() == 1 => &exports[0],
        None => exports
            .iter()
            .rev()
            .find(|e| e.summary.as_ref().is_some_and(|s| s.export_type == ExportType::FullExport))
            .ok_or_else(|| Error::NotFound("no complete full export here; pick one with --export-id".into()))?,
    };
    if !pick.is_complete() {
        return Err(Error::NotFound(format!(
            "export {} is in progress or failed: it has `_started` but no manifest-summary.json",
            pick.url
        )));
    }
    Ok(pick.clone())
}

/// Find, choose and open an export in one go.
pub async fn open_at(loc: &Location, export_id: Option<&str>) -> Result<Export> {
    let exports = match discover(loc).await {
        Err(Error::NotFound(m)) if export_id.is_none() => {
            return open_stream_records(loc).await.map_err(|e| match e {
                Error::NotFound(_) => Error::NotFound(m),
                e => e,
            });
        }
        r => r?,
    };
    let info = choose(&exports, export_id)?;
    open(loc, &info).await
}

/// Read the manifests of a complete export and resolve its data files.
pub async fn open(loc: &Location, info: &ExportInfo) -> Result<Export> {
    let summary = info.summary.clone().ok_or_else(|| Error::NotFound(format!("export {} is incomplete", info.url)))?;
    let mut problems = Vec::new();
    let dir = info.dir.clone();
    let files_path = dir.clone().join("manifest-files.json");
    let files_url = loc.display(&files_path);
    let bytes = get_bytes(loc, &files_path).await?;
    check_checksum_file(loc, &dir, "manifest-files", &bytes, &mut problems).await?;
    let entries = manifest::parse_files_manifest(&files_url, &bytes)?;

    // Resolve keys against the folder where the export actually sits, which
    // may be a local copy without the original bucket prefix.
    let aws_dir: Path = dir.parts().take(dir.parts().count() - 1).collect();
    let mut files = Vec::with_capacity(entries.len());
    for entry in entries {
        let suffix = manifest::data_key_suffix(&entry.data_file_s3_key, summary.s3_prefix.as_deref(), &info.id)
            .map_err(|m| Error::manifest(&files_url, m))?;
        let mut path = aws_dir.clone();
        for part in suffix.split('/') {
            path = path.clone().join(part);
        }
        files.push(DataFile { entry, path, size: None });
    }

    let total: u64 = files.iter().map(|f| f.entry.item_count).sum();
    if total != summary.item_count {
        problems.push(format!(
            "{files_url}: data files hold {total} items in all, the summary says {}",
            summary.item_count
        ));
    }
    resolve_sizes(loc, &dir, &summary, &mut files).await?;
    for f in &files {
        if f.size.is_none() {
            problems.push(format!("{}: data file is missing", loc.display(&f.path)));
        }
    }
    Ok(Export { id: info.id.clone(), location: loc.clone(), dir, summary, files, manifest_problems: problems })
}

/// The export in `dir`. `listed`: the folder was found by listing
/// `AWSDynamoDB/`, where a folder with neither summary nor `_started` (an
/// export just begun, or something else's) is listed as incomplete rather
/// than failing the whole listing.
async fn export_info(loc: &Location, dir: Path, listed: bool) -> Result<ExportInfo> {
    let id = dir.filename().unwrap_or_default().to_string();
    let url = loc.display(&dir);
    let summary_path = dir.clone().join(SUMMARY);
    let summary = match loc.store.get(&summary_path).await {
        Ok(r) => {
            let bytes = r.bytes().await.map_err(|e| Error::store(loc.display(&summary_path), e))?;
            Some(ManifestSummary::parse(&loc.display(&summary_path), &bytes)?)
        }
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => return Err(Error::store(loc.display(&summary_path), e)),
    };
    if summary.is_none() {
        let started = loc.store.head(&dir.clone().join("_started")).await.is_ok();
        if !started && !listed {
            return Err(Error::NotFound(format!("{url} is not a DynamoDB export folder (no manifest-summary.json)")));
        }
    }
    Ok(ExportInfo { id, url, dir, summary })
}

/// Sizes of the data files: one listing for a full export's own data folder,
/// HEAD requests for incremental exports (their folder is shared).
async fn resolve_sizes(loc: &Location, dir: &Path, summary: &ManifestSummary, files: &mut [DataFile]) -> Result<()> {
    if summary.export_type == ExportType::FullExport {
        let data_dir = dir.clone().join("data");
        let sizes: HashMap<Path, u64> = loc
            .store
            .list(Some(&data_dir))
            .map_ok(|m| (m.location, m.size))
            .try_collect()
            .await
            .map_err(|e| Error::store(format!("listing {}", loc.display(&data_dir)), e))?;
        for f in files.iter_mut() {
            f.size = sizes.get(&f.path).copied();
        }
        return Ok(());
    }
    let store = loc.store.clone();
    let heads: Vec<Option<u64>> = futures::stream::iter(files.iter().map(|f| {
        let store = store.clone();
        let path = f.path.clone();
        async move {
            match store.head(&path).await {
                Ok(m) => Ok(Some(m.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(Error::store(path.to_string(), e)),
            }
        }
    }))
    .buffered(32)
    .try_collect()
    .await?;
    for (f, s) in files.iter_mut().zip(heads) {
        f.size = s;
    }
    Ok(())
}

/// Compare a manifest's bytes with its `.md5` (or `.checksum`) file.
async fn check_checksum_file(
    loc: &Location,
    dir: &Path,
    stem: &str,
    bytes: &[u8],
    problems: &mut Vec<String>,
) -> Result<()> {
    let actual = base64::engine::general_purpose::STANDARD.encode(Md5::digest(bytes));
    for ext in ["md5", "checksum"] {
        let path = dir.clone().join(format!("{stem}.{ext}"));
        match loc.store.get(&path).await {
            Ok(r) => {
                let expected = r.bytes().await.map_err(|e| Error::store(loc.display(&path), e))?;
                let expected = String::from_utf8_lossy(&expected).trim().to_string();
                if expected != actual {
                    problems.push(format!(
                        "{}: checksum mismatch: the file says {expected}, {stem}.json has {actual}",
                        loc.display(&path)
                    ));
                }
                return Ok(());
            }
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(Error::store(loc.display(&path), e)),
        }
    }
    problems.push(format!("{}: no {stem}.md5 or {stem}.checksum to check it against", loc.display(dir)));
    Ok(())
}

/// Also verify the summary against its checksum file (used by `--verify`).
pub async fn check_summary_checksum(export: &Export) -> Result<Vec<String>> {
    let path = export.dir.clone().join(SUMMARY);
    let bytes = get_bytes(&export.location, &path).await?;
    let mut problems = Vec::new();
    check_checksum_file(&export.location, &export.dir, "manifest-summary", &bytes, &mut problems).await?;
    Ok(problems)
}

async fn get_bytes(loc: &Location, path: &Path) -> Result<bytes::Bytes> {
    let r = loc.store.get(path).await.map_err(|e| Error::store(loc.display(path), e))?;
    r.bytes().await.map_err(|e| Error::store(loc.display(path), e))
}

struct Listing {
    dirs: Vec<String>,
    files: Vec<String>,
}

async fn list_dir(loc: &Location, prefix: &Path) -> Result<Listing> {
    let res = loc
        .store
        .list_with_delimiter(Some(prefix))
        .await
        .map_err(|e| Error::store(format!("listing {}", loc.display(prefix)), e))?;
    let name = |p: &Path| p.filename().unwrap_or_default().to_string();
    Ok(Listing {
        dirs: res.common_prefixes.iter().map(name).collect(),
        files: res.objects.iter().map(|m| name(&m.location)).collect(),
    })
}
