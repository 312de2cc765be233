//! A deterministic, seeded generator of DynamoDB exports that look exactly
//! like AWS's: manifests, checksums, etags, gzip data files, and the quirks in
//! `shared/FORMAT.md` (empty 20-byte data files, `s3Prefix: null`, incremental
//! data in the shared `AWSDynamoDB/data/`, several exports under one prefix).
//!
//! Items model an e-commerce `Orders` table and exercise every type
//! descriptor, nesting, sparse attributes, an attribute whose type changes
//! between items (`legacyCode`: `N` or `S`), a map whose keys are data
//! (`dailyViews`), a list of mixed scalars, a mix of `M` and `S`
//! (`payload`), and numbers at DynamoDB's limits (`precise`).
//! The same options give byte-identical output.

mod items;

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use flate2::Compression;
use flate2::write::GzEncoder;
use md5::{Digest, Md5};

use crate::ddb::value::{AttrValue, Item};
use crate::error::{Error, Result};
use crate::export::OutputFormat;
pub use items::{Rng, make_item};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub items: u64,
    pub files: usize,
    pub seed: u64,
    /// The S3 prefix the export was written under (`None`: bucket root).
    pub prefix: Option<String>,
    /// Extra empty data files (one per empty table partition).
    pub empty_files: usize,
    /// Also write an incremental export covering six hours after the full one.
    pub incremental: bool,
    pub table: String,
    pub bucket: String,
    /// Add attributes with awkward names (dots, spaces, unicode, case collisions).
    pub awkward_names: bool,
    /// `DYNAMODB_JSON` (`*.json.gz`) or `ION` (`*.ion.gz`, Ion text).
    pub format: OutputFormat,
    /// Items: the generated `Orders` table, or these (cycled).
    pub items_from: Option<std::sync::Arc<Vec<Item>>>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            items: 1000,
            files: 2,
            seed: 42,
            prefix: None,
            empty_files: 1,
            incremental: false,
            table: "Orders".into(),
            bucket: "example-bucket".into(),
            awkward_names: false,
            format: OutputFormat::DynamodbJson,
            items_from: None,
        }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The folder holding `AWSDynamoDB/` (the bucket root plus prefix).
    pub root: PathBuf,
    pub full_export_id: String,
    pub full_export_dir: PathBuf,
    pub incremental_export_id: Option<String>,
}

const B32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";

struct FileOut {
    key: String,
    items: u64,
    md5: [u8; 16],
    raw_bytes: u64,
}

/// Write an export (and optionally an incremental one) below `bucket_root`,
/// which plays the role of the S3 bucket.
pub fn generate(bucket_root: &Path, opts: &GenerateOptions) -> Result<Generated> {
    let mut meta = Rng::new(opts.seed ^ 0x6d65_7461);
    let export_ms = export_time_ms(opts);
    let export_id = format!("{:014}-{:08x}", export_ms + meta.below(900) as i64, meta.next_u64() as u32);
    let prefix = opts.prefix.as_deref().map(|p| p.trim_matches('/')).filter(|p| !p.is_empty());
    let key_prefix = prefix.map(|p| format!("{p}/")).unwrap_or_default();
    let root = bucket_root.join(prefix.unwrap_or(""));
    let export_dir = root.join("AWSDynamoDB").join(&export_id);
    mkdir(&export_dir.join("data"))?;

    let files = opts.files.max(1);
    let weights: Vec<f64> = (0..files).map(|_| 0.85 + 0.3 * meta.unit()).collect();
    let wsum: f64 = weights.iter().sum();
    let mut counts: Vec<u64> = weights.iter().map(|w| (opts.items as f64 * w / wsum) as u64).collect();
    counts[0] += opts.items - counts.iter().sum::<u64>();

    let incremental = opts.incremental.then(|| {
        let inc_ms = export_ms + 6 * 3_600_000 + 20 * 60_000;
        format!("{:014}-{:08x}", inc_ms + meta.below(900) as i64, meta.next_u64() as u32)
    });
    let t_hi = export_ms - 60_000;
    let t_lo = t_hi - 2 * 365 * 86_400_000;
    let (inc_from_us, inc_to_us) = (export_ms * 1000, (export_ms + 6 * 3_600_000) * 1000);

    let ext = match opts.format {
        OutputFormat::DynamodbJson => "json",
        OutputFormat::Ion => "ion",
    };
    let mut next_given = 0usize;
    let mut full_files = Vec::new();
    let mut inc_files = Vec::new();
    for (i, &n) in counts.iter().enumerate() {
        let name = rand_name(&mut meta);
        let key = format!("{key_prefix}AWSDynamoDB/{export_id}/data/{name}.{ext}.gz");
        let mut rng = Rng::new(opts.seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
        let mut irng = Rng::new(opts.seed.wrapping_mul(7_919).wrapping_add(i as u64) ^ 0x1c);
        let mut out = GzFile::create(&bucket_root.join(&key))?;
        let mut inc_out = match &incremental {
            Some(_) => {
                let iname = rand_name(&mut meta);
                let ikey = format!("{key_prefix}AWSDynamoDB/data/{iname}.{ext}.gz");
                Some((GzFile::create(&bucket_root.join(&ikey))?, ikey, 0u64))
            }
            None => None,
        };
        let mut line = String::with_capacity(2048);
        for _ in 0..n {
            let item = match &opts.items_from {
                Some(given) => {
                    let item = given[next_given % given.len()].clone();
                    next_given += 1;
                    item
                }
                None => make_item(&mut rng, t_lo, t_hi, opts.awkward_names),
            };
            line.clear();
            item_line(opts.format, &item, &mut line);
            out.write(line.as_bytes())?;
            if let Some((inc, _, count)) = inc_out.as_mut()
                && irng.unit() < 0.05
            {
                let ts_us = inc_from_us + irng.below((inc_to_us - inc_from_us) as u64) as i64;
                for rec in items::changes(&mut irng, &item, ts_us, opts.format) {
                    inc.write(rec.as_bytes())?;
                    *count += 1;
                }
            }
        }
        full_files.push(out.finish(key, n)?);
        if let Some((inc, ikey, count)) = inc_out {
            inc_files.push(inc.finish(ikey, count)?);
        }
    }
    for _ in 0..opts.empty_files {
        let key = format!("{key_prefix}AWSDynamoDB/{export_id}/data/{}.{ext}.gz", rand_name(&mut meta));
        full_files.push(GzFile::create(&bucket_root.join(&key))?.finish(key, 0)?);
    }

    let table_arn = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}", opts.table);
    let iso =
        |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let table_id = format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        meta.next_u64() as u32,
        meta.next_u64() as u16,
        meta.next_u64() as u16,
        meta.next_u64() as u16,
        meta.next_u64() & 0xffff_ffff_ffff
    );
    let prefix_json = match prefix {
        Some(p) => serde_json::to_string(p).unwrap(),
        None => "null".into(),
    };
    let common = |id: &str, start_ms: i64, files: &[FileOut]| {
        let items: u64 = files.iter().map(|f| f.items).sum();
        let raw: u64 = files.iter().map(|f| f.raw_bytes).sum();
        format!(
            "\"exportArn\":\"{table_arn}/export/{id}\",\"startTime\":\"{}\",\"endTime\":\"{}\",\"tableId\":\"{table_id}\",\"tableArn\":\"{table_arn}\"",
            iso(start_ms),
            iso(start_ms + 300_000 + (items as i64 / 50)),
        ) + &format!(
            ",\"s3Bucket\":\"{}\",\"s3Prefix\":{prefix_json},\"s3SseAlgorithm\":\"AES256\",\"s3SseKmsKeyId\":null,\"manifestFilesS3Key\":\"{key_prefix}AWSDynamoDB/{id}/manifest-files.json\",\"billedSizeBytes\":{},\"itemCount\":{items},\"outputFormat\":\"{}\"",
            opts.bucket,
            raw * 6 / 10,
            match opts.format {
                OutputFormat::DynamodbJson => "DYNAMODB_JSON",
                OutputFormat::Ion => "ION",
            }
        )
    };
    let summary = format!(
        "{{\"version\":\"2020-06-30\",{},\"exportTime\":\"{}\"}}",
        common(&export_id, export_ms, &full_files),
        iso(export_ms)
    );
    write_manifests(&export_dir, &summary, &full_files)?;

    if let Some(inc_id) = &incremental {
        let inc_start: i64 = inc_id[..14].parse().unwrap();
        let summary = format!(
            "{{\"version\":\"2023-08-01\",{},\"exportFromTime\":\"{}\",\"exportToTime\":\"{}\",\"exportType\":\"INCREMENTAL_EXPORT\",\"outputView\":\"NEW_AND_OLD_IMAGES\"}}",
            common(inc_id, inc_start, &inc_files),
            iso(inc_from_us / 1000),
            iso(inc_to_us / 1000)
        );
        let dir = root.join("AWSDynamoDB").join(inc_id);
        mkdir(&dir)?;
        write_manifests(&dir, &summary, &inc_files)?;
    }
    Ok(Generated { root, full_export_id: export_id, full_export_dir: export_dir, incremental_export_id: incremental })
}

/// An incremental export of given change lines (see [`change_line`]), for
/// the window `[from_ms, to_ms)`, under the same prefix and table as `opts`
/// describe: its data files (`files`, the lines dealt round-robin; a file
/// may be empty) in the shared `AWSDynamoDB/data/`, its manifests in
/// `AWSDynamoDB/<id>/`. Returns the export id.
pub fn write_incremental(
    bucket_root: &Path,
    opts: &GenerateOptions,
    (from_ms, to_ms): (i64, i64),
    new_image_only: bool,
    lines: &[String],
    files: usize,
) -> Result<String> {
    let prefix = opts.prefix.as_deref().map(|p| p.trim_matches('/')).filter(|p| !p.is_empty());
    let key_prefix = prefix.map(|p| format!("{p}/")).unwrap_or_default();
    let root = bucket_root.join(prefix.unwrap_or(""));
    // Exports already there make the id differ for the same window and lines (a duplicate export).
    let there = std::fs::read_dir(root.join("AWSDynamoDB")).map_or(0, |d| d.count()) as u64;
    let mut meta = Rng::new(opts.seed ^ (to_ms as u64).rotate_left(17) ^ (lines.len() as u64) << 32 ^ there);
    let start_ms = to_ms + 15 * 60_000 + meta.below(900) as i64;
    let id = format!("{start_ms:014}-{:08x}", meta.next_u64() as u32);
    let ext = match opts.format {
        OutputFormat::DynamodbJson => "json",
        OutputFormat::Ion => "ion",
    };
    let mut outs = Vec::new();
    for _ in 0..files.max(1) {
        let key = format!("{key_prefix}AWSDynamoDB/data/{}.{ext}.gz", rand_name(&mut meta));
        outs.push((GzFile::create(&bucket_root.join(&key))?, key, 0u64));
    }
    for (i, line) in lines.iter().enumerate() {
        let n = outs.len();
        let (out, _, count) = &mut outs[i % n];
        out.write(line.as_bytes())?;
        if !line.ends_with('\n') {
            out.write(b"\n")?;
        }
        *count += 1;
    }
    let written = outs.into_iter().map(|(f, key, n)| f.finish(key, n)).collect::<Result<Vec<_>>>()?;
    let iso =
        |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let table_arn = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}", opts.table);
    let summary = serde_json::json!({
        "version": "2023-08-01",
        "exportArn": format!("{table_arn}/export/{id}"),
        "startTime": iso(start_ms),
        "endTime": iso(start_ms + 300_000),
        "tableArn": table_arn,
        "s3Bucket": opts.bucket,
        "s3Prefix": prefix,
        "s3SseAlgorithm": "AES256",
        "manifestFilesS3Key": format!("{key_prefix}AWSDynamoDB/{id}/manifest-files.json"),
        "billedSizeBytes": written.iter().map(|f| f.raw_bytes).sum::<u64>(),
        "itemCount": written.iter().map(|f| f.items).sum::<u64>(),
        "outputFormat": match opts.format { OutputFormat::DynamodbJson => "DYNAMODB_JSON", OutputFormat::Ion => "ION" },
        "exportFromTime": iso(from_ms),
        "exportToTime": iso(to_ms),
        "exportType": "INCREMENTAL_EXPORT",
        "outputView": if new_image_only { "NEW_IMAGE" } else { "NEW_AND_OLD_IMAGES" },
    });
    let dir = root.join("AWSDynamoDB").join(&id);
    mkdir(&dir)?;
    write_manifests(&dir, &summary.to_string(), &written)?;
    Ok(id)
}

/// The full export's time for `opts` (what [`generate`] writes as `exportTime`), in epoch milliseconds.
pub fn export_time_ms(opts: &GenerateOptions) -> i64 {
    let base = chrono::DateTime::parse_from_rfc3339("2024-06-01T03:00:00Z").unwrap().timestamp_millis();
    base + (opts.seed % 10_000) as i64 * 60_000
}

/// One full-export line: `{"Item":{…}}` or `$ion_1_0 {Item:{…}}`.
pub fn item_line(format: OutputFormat, item: &Item, line: &mut String) {
    match format {
        OutputFormat::DynamodbJson => {
            line.push_str("{\"Item\":");
            crate::ddb::value::write_item(item, line);
            line.push_str("}\n");
        }
        OutputFormat::Ion => {
            line.push_str("$ion_1_0 {Item:");
            crate::ddb::value::write_item_ion(item, line);
            line.push_str("}\n");
        }
    }
}

/// One incremental-export line: the change's metadata, keys and images.
pub fn change_line(format: OutputFormat, keys: &Item, old: Option<&Item>, new: Option<&Item>, ts_us: i64) -> String {
    let ts = AttrValue::N(ts_us.to_string());
    let mut line = String::new();
    type WriteItem = fn(&[(String, AttrValue)], &mut String);
    let (write, sep): (WriteItem, bool) = match format {
        OutputFormat::DynamodbJson => (crate::ddb::value::write_item, true),
        OutputFormat::Ion => (crate::ddb::value::write_item_ion, false),
    };
    let name = |n: &str| if sep { format!("\"{n}\"") } else { n.to_string() };
    if !sep {
        line.push_str("$ion_1_0 ");
    }
    line.push('{');
    line.push_str(&name("Metadata"));
    line.push(':');
    write(&[("WriteTimestampMicros".to_string(), ts)], &mut line);
    for (field, image) in [("Keys", Some(keys)), ("OldImage", old), ("NewImage", new)] {
        if let Some(image) = image {
            line.push(',');
            line.push_str(&name(field));
            line.push(':');
            write(image, &mut line);
        }
    }
    line.push_str("}\n");
    line
}

fn rand_name(rng: &mut Rng) -> String {
    (0..26).map(|_| B32[rng.below(32) as usize] as char).collect()
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| Error::io(p.display().to_string(), e))
}

fn write_file(p: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(p, bytes).map_err(|e| Error::io(p.display().to_string(), e))
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn write_manifests(dir: &Path, summary: &str, files: &[FileOut]) -> Result<()> {
    let mut mf = String::new();
    for f in files {
        // Real etags carry a multipart suffix: they are not the object's MD5.
        let etag = format!("{:x}-1", Md5::digest(f.md5));
        mf.push_str(&format!(
            "{{\"itemCount\":{},\"md5Checksum\":\"{}\",\"etag\":\"{etag}\",\"dataFileS3Key\":\"{}\"}}\n",
            f.items,
            b64(&f.md5),
            f.key
        ));
    }
    write_file(&dir.join("_started"), b"")?;
    write_file(&dir.join("manifest-files.json"), mf.as_bytes())?;
    write_file(&dir.join("manifest-files.md5"), b64(&Md5::digest(mf.as_bytes())).as_bytes())?;
    write_file(&dir.join("manifest-summary.json"), summary.as_bytes())?;
    write_file(&dir.join("manifest-summary.md5"), b64(&Md5::digest(summary.as_bytes())).as_bytes())
}

/// A gzip data file whose MD5 is computed as it is written.
struct GzFile {
    path: PathBuf,
    enc: GzEncoder<Vec<u8>>,
    raw: u64,
    file: std::fs::File,
    md5: Md5,
}

impl GzFile {
    fn create(path: &Path) -> Result<GzFile> {
        if let Some(parent) = path.parent() {
            mkdir(parent)?;
        }
        let file = std::fs::File::create(path).map_err(|e| Error::io(path.display().to_string(), e))?;
        Ok(GzFile {
            path: path.to_path_buf(),
            enc: GzEncoder::new(Vec::new(), Compression::new(6)),
            raw: 0,
            file,
            md5: Md5::new(),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.raw += bytes.len() as u64;
        self.enc.write_all(bytes).map_err(|e| Error::io(self.path.display().to_string(), e))?;
        if self.enc.get_ref().len() > 1 << 20 {
            let buf = std::mem::take(self.enc.get_mut());
            self.emit(&buf)?;
        }
        Ok(())
    }

    fn emit(&mut self, buf: &[u8]) -> Result<()> {
        self.md5.update(buf);
        self.file.write_all(buf).map_err(|e| Error::io(self.path.display().to_string(), e))
    }

    fn finish(mut self, key: String, items: u64) -> Result<FileOut> {
        let enc = std::mem::replace(&mut self.enc, GzEncoder::new(Vec::new(), Compression::none()));
        let rest = enc.finish().map_err(|e| Error::io(self.path.display().to_string(), e))?;
        self.emit(&rest)?;
        Ok(FileOut { key, items, md5: self.md5.finalize().into(), raw_bytes: self.raw })
    }
}
