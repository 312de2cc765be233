//! Exact schemas of exports, cached on local disk: exports never change, so
//! the whole read that exact inference costs is paid once per export, not
//! once per `dynolake sql`.
//!
//! The key is an MD5 over what identifies the export's content (its ARN and
//! every data file's MD5 and item count from the manifest), the inference
//! options, and dynolake's version: a changed file, option or inference rule
//! is another key. Streams-record folders (no manifest) are not cached.
//! The folder is `$DYNOLAKE_CACHE_DIR`, else `$XDG_CACHE_HOME/dynolake/schemas`,
//! else `~/.cache/dynolake/schemas`; a cache that cannot be read or written is
//! skipped silently (it only saves time).

use std::path::PathBuf;

use md5::{Digest, Md5};

use crate::export::{Export, ExportType};
use crate::schema::Schema;
use crate::schema::infer::InferOptions;

fn dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DYNOLAKE_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("dynolake").join("schemas"))
}

/// The cache file for `export`'s exact schema under `infer`, if it can be cached.
pub fn path(export: &Export, infer: &InferOptions) -> Option<PathBuf> {
    if export.summary.export_type == ExportType::StreamRecords || export.files.is_empty() {
        return None;
    }
    let mut h = Md5::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update([0]);
    h.update(export.summary.export_arn.as_bytes());
    for f in &export.files {
        h.update([0]);
        h.update(f.entry.md5_checksum.as_bytes());
        h.update(f.entry.item_count.to_le_bytes());
    }
    h.update(format!("|{}|{}|{}", infer.map_threshold, infer.max_columns, infer.max_line_bytes).as_bytes());
    let key: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Some(dir()?.join(format!("{}-{key}.json", crate::schema::names::safe_name(export.table_name()))))
}

pub fn load(export: &Export, infer: &InferOptions) -> Option<Schema> {
    let p = path(export, infer)?;
    if !p.exists() {
        return None;
    }
    Schema::load(&p).ok()
}

pub fn store(export: &Export, infer: &InferOptions, schema: &Schema) {
    let Some(p) = path(export, infer) else { return };
    let Some(parent) = p.parent() else { return };
    if std::fs::create_dir_all(parent).is_err() {
        return;
    }
    // Written aside and renamed: a reader never sees half a file.
    let tmp = p.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, schema.to_file_string()).is_ok() && std::fs::rename(&tmp, &p).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}
