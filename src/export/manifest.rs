//! The two manifests of an export, as typed values.
//!
//! `manifest-summary.json` is one JSON object; `manifest-files.json` is JSON
//! Lines, one object per data file. Both manifest versions (full exports,
//! "2020-06-30", and incremental exports, "2023-08-01") parse into the same
//! types; fields only one of them has are `Option`s. Unknown fields are ignored.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExportType {
    /// Real full exports leave `exportType` out; absent means full.
    #[default]
    FullExport,
    IncrementalExport,
    /// Not AWS's: a folder of DynamoDB Streams records (JSON Lines, as a
    /// Lambda receives them) read like an export (see [`super::open_stream_records`]).
    StreamRecords,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutputFormat {
    DynamodbJson,
    Ion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutputView {
    NewAndOldImages,
    NewImage,
}

/// `manifest-summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestSummary {
    pub version: String,
    pub export_arn: String,
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub end_time: Option<String>,
    #[serde(default)]
    pub table_arn: String,
    #[serde(default)]
    pub table_id: Option<String>,
    /// Full exports: the point in time the export reflects.
    #[serde(default)]
    pub export_time: Option<String>,
    /// Incremental exports: the window `[from, to)`.
    #[serde(default)]
    pub export_from_time: Option<String>,
    #[serde(default)]
    pub export_to_time: Option<String>,
    #[serde(default)]
    pub s3_bucket: Option<String>,
    #[serde(default)]
    pub s3_prefix: Option<String>,
    #[serde(default)]
    pub s3_sse_algorithm: Option<String>,
    #[serde(default)]
    pub s3_sse_kms_key_id: Option<String>,
    pub manifest_files_s3_key: String,
    #[serde(default)]
    pub billed_size_bytes: Option<u64>,
    pub item_count: u64,
    pub output_format: OutputFormat,
    #[serde(default)]
    pub export_type: ExportType,
    #[serde(default)]
    pub output_view: Option<OutputView>,
}

impl ManifestSummary {
    /// A summary dynolake makes for data it found or wrote itself (a scan's
    /// staged export, a folder of Streams records): what is not known is absent.
    pub fn made_here(version: &str, export_arn: String, table_arn: String, export_type: ExportType) -> Self {
        ManifestSummary {
            version: version.into(),
            export_arn,
            start_time: None,
            end_time: None,
            table_arn,
            table_id: None,
            export_time: None,
            export_from_time: None,
            export_to_time: None,
            s3_bucket: None,
            s3_prefix: None,
            s3_sse_algorithm: None,
            s3_sse_kms_key_id: None,
            manifest_files_s3_key: String::new(),
            billed_size_bytes: None,
            item_count: 0,
            output_format: OutputFormat::DynamodbJson,
            export_type,
            output_view: None,
        }
    }

    pub fn parse(file: &str, bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::manifest(file, format!("not a valid export summary: {e}")))
    }

    /// The table name, from the table ARN (`arn:aws:dynamodb:…:table/Orders` → `Orders`).
    pub fn table_name(&self) -> &str {
        table_name_from_arn(&self.table_arn)
    }

    /// The export id, from the export ARN (`…/export/01768385930622-efd1a093`).
    pub fn export_id(&self) -> &str {
        self.export_arn.rsplit('/').next().unwrap_or(&self.export_arn)
    }
}

pub fn table_name_from_arn(arn: &str) -> &str {
    match arn.split_once(":table/") {
        Some((_, rest)) => rest.split('/').next().unwrap_or(rest),
        None => arn,
    }
}

/// One line of `manifest-files.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataFileEntry {
    pub item_count: u64,
    /// base64(MD5(compressed object bytes)).
    pub md5_checksum: String,
    #[serde(default)]
    pub etag: Option<String>,
    /// Relative to the bucket, prefix included.
    pub data_file_s3_key: String,
}

/// Parse `manifest-files.json` (JSON Lines; blank lines tolerated).
pub fn parse_files_manifest(file: &str, bytes: &[u8]) -> Result<Vec<DataFileEntry>> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::manifest(file, format!("not UTF-8: {e}")))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let entry: DataFileEntry = serde_json::from_str(line)
            .map_err(|e| Error::manifest(format!("{file}:{}", i + 1), format!("not a data-file entry: {e}")))?;
        out.push(entry);
    }
    Ok(out)
}

/// Checks a `dataFileS3Key` and returns the part after `AWSDynamoDB/`.
///
/// A key must stay inside the export's own bucket location: no `..`, no
/// absolute path, no empty segment, and it must start with
/// `<s3Prefix>/AWSDynamoDB/` followed by the export's own folder (full
/// exports) or the shared `data/` folder (incremental exports).
pub fn data_key_suffix<'a>(key: &'a str, s3_prefix: Option<&str>, export_id: &str) -> Result<&'a str, String> {
    if key.starts_with('/') || key.contains('\\') {
        return Err(format!("data file key `{key}` is absolute"));
    }
    if key.split('/').any(|seg| seg.is_empty() || seg == ".." || seg == ".") {
        return Err(format!("data file key `{key}` has an empty, `.` or `..` segment"));
    }
    let prefix = match s3_prefix.map(|p| p.trim_matches('/')).filter(|p| !p.is_empty()) {
        Some(p) => format!("{p}/AWSDynamoDB/"),
        None => "AWSDynamoDB/".to_string(),
    };
    let Some(rest) = key.strip_prefix(prefix.as_str()) else {
        return Err(format!("data file key `{key}` lies outside the export's folder `{prefix}`"));
    };
    let own = rest.strip_prefix(export_id).and_then(|r| r.strip_prefix("/data/"));
    let shared = rest.strip_prefix("data/");
    match own.or(shared) {
        Some(name) if !name.is_empty() && !name.contains('/') => Ok(rest),
        _ => Err(format!("data file key `{key}` is not in `{prefix}{export_id}/data/` or `{prefix}data/`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_stay_inside_the_export() {
        let id = "01768385930622-efd1a093";
        assert_eq!(
            data_key_suffix("AWSDynamoDB/01768385930622-efd1a093/data/abc.json.gz", None, id).unwrap(),
            "01768385930622-efd1a093/data/abc.json.gz"
        );
        assert_eq!(data_key_suffix("p/q/AWSDynamoDB/data/abc.json.gz", Some("p/q"), id).unwrap(), "data/abc.json.gz");
        for bad in [
            "/AWSDynamoDB/data/a.json.gz",
            "AWSDynamoDB/../secret/a.json.gz",
            "AWSDynamoDB/data/../../x",
            "other/AWSDynamoDB/data/a.json.gz",
            "AWSDynamoDB/01768385930622-efd1a093/a.json.gz",
            "AWSDynamoDB/09999999999999-00000000/data/a.json.gz",
            "AWSDynamoDB//data/a.json.gz",
        ] {
            assert!(data_key_suffix(bad, None, id).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn summary_tolerates_unknown_fields_and_null_prefix() {
        let s = r#"{"version":"2020-06-30","exportArn":"arn:aws:dynamodb:us-east-1:1:table/Orders/export/01-ab","startTime":"2026-01-14T10:18:50.622Z","endTime":"x","tableArn":"arn:aws:dynamodb:us-east-1:1:table/Orders","tableId":"t","exportTime":"x","s3Bucket":"b","s3Prefix":null,"s3SseAlgorithm":"AES256","s3SseKmsKeyId":null,"manifestFilesS3Key":"AWSDynamoDB/01-ab/manifest-files.json","billedSizeBytes":1,"itemCount":3,"outputFormat":"DYNAMODB_JSON","somethingNew":{"a":1}}"#;
        let m = ManifestSummary::parse("s", s.as_bytes()).unwrap();
        assert_eq!(m.export_type, ExportType::FullExport);
        assert_eq!(m.table_name(), "Orders");
        assert_eq!(m.export_id(), "01-ab");
        assert!(m.s3_prefix.is_none());
    }
}
