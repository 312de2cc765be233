//! `convert` end to end: every value survives, partitions land where they
//! should, CSV/JSONL parse back, crashes and corruption never half-commit.

use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use dynolake::generate::GenerateOptions;

use crate::decode::{check, norm_number};
use crate::support::*;

fn convert(src: &std::path::Path, dest: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["convert", src.to_str().unwrap(), dest.to_str().unwrap()];
    args.extend_from_slice(extra);
    dynolake(&args, &[])
}

#[test]
fn every_value_survives_a_round_trip_through_parquet() {
    let e = export_with(GenerateOptions { items: 1500, files: 3, awkward_names: true, ..Default::default() });
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("ds");
    let o = convert(&e.generated.full_export_dir, &dest, &["--json"]);
    assert_code(&o, 0);
    let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(summary["rows"], 1500);
    assert_eq!(summary["items"], 1500);
    assert!(dest.join("_SUCCESS").exists());
    assert!(!dest.join("_temporary").exists());
    // Where the time went: every stage took some, and the workers' stages fit in the read's wall
    // time (two workers at most: twice it).
    let st = &summary["stages"];
    let secs = |k: &str| st[k].as_f64().unwrap_or_else(|| panic!("stages.{k} in {st}"));
    for k in ["read_inflate_seconds", "decode_seconds", "encode_write_seconds", "scan_wall_seconds", "commit_seconds"] {
        assert!(secs(k) > 0.0, "{k} in {st}");
    }
    let workers = secs("read_inflate_seconds") + secs("decode_seconds") + secs("encode_write_seconds");
    assert!(workers <= 2.0 * secs("scan_wall_seconds") * 1.05 + 0.01, "{st}");
    assert!(
        secs("scan_wall_seconds") + secs("commit_seconds") <= summary["elapsed_seconds"].as_f64().unwrap(),
        "{summary}"
    );

    assert_dataset_holds_every_item(&dest, &e.generated.full_export_dir);
    // The export's identity travels in the file metadata.
    let f = walk(&dest).into_iter().find(|p| p.extension().is_some_and(|x| x == "parquet")).unwrap();
    let reader = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(f).unwrap()).unwrap();
    use parquet::file::reader::FileReader;
    let kv = reader.metadata().file_metadata().key_value_metadata().unwrap();
    let source_kv = kv.iter().find(|k| k.key == "dynolake.source").unwrap();
    assert!(source_kv.value.as_ref().unwrap().contains(&e.generated.full_export_id));
}

/// Read the dataset back and compare it item by item with the export.
fn assert_dataset_holds_every_item(dest: &std::path::Path, export_dir: &std::path::Path) {
    let source = source_items(export_dir);
    let batches = read_parquet_dir(dest);
    let mut seen = 0;
    for b in &batches {
        let schema = b.schema();
        let ids = b.column_by_name("order_id").unwrap().as_string::<i32>();
        let extra = b.column_by_name("_extra").unwrap();
        for row in 0..b.num_rows() {
            let item = &source[ids.value(row)];
            assert!(extra.is_null(row));
            for (f, col) in schema.fields().iter().zip(b.columns()) {
                let Some(attr) = f.metadata().get("dynolake.attribute") else { continue };
                check(col.as_ref(), f, row, item.get(attr), &format!("{} {attr}", ids.value(row)));
            }
            seen += 1;
        }
    }
    assert_eq!(seen, source.len());
}

/// The schema in the dataset's (one) commit record.
fn committed_schema(dest: &std::path::Path) -> serde_json::Value {
    let commits: Vec<_> =
        std::fs::read_dir(dest.join("_dynolake/commits")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(commits.len(), 1);
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&commits[0]).unwrap()).unwrap();
    record["schema"].clone()
}

#[test]
fn one_read_or_two_the_committed_schema_is_the_exact_one() {
    let e = export_with(GenerateOptions { items: 1200, files: 3, awkward_names: true, ..Default::default() });
    let src = &e.generated.full_export_dir;
    let out = tempfile::tempdir().unwrap();
    let schema_file = out.path().join("exact.json");
    assert_code(&dynolake(&["schema", src.to_str().unwrap(), "-o", schema_file.to_str().unwrap()], &[]), 0);
    let exact: serde_json::Value = serde_json::from_slice(&std::fs::read(&schema_file).unwrap()).unwrap();
    assert_eq!(exact["inferred_from"], "exact");

    // The first items are all items: one read, checked on the way.
    let once = out.path().join("once");
    let o = convert(src, &once, &[]);
    assert_code(&o, 0);
    assert!(!stderr(&o).contains("reading the export again"), "{}", stderr(&o));
    assert_eq!(committed_schema(&once), exact);

    // Three items cannot predict rare attributes: the check notices, and a second read uses the exact schema.
    let twice = out.path().join("twice");
    let o = convert(src, &twice, &["--first-items", "3"]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("reading the export again with the exact schema"), "{}", stderr(&o));
    assert_eq!(committed_schema(&twice), exact);
    assert!(!twice.join("_temporary").exists());
    assert!(!twice.join("_rejects").exists());
    assert_dataset_holds_every_item(&twice, src);
}

#[test]
fn partitions_land_where_they_should() {
    let e = export_with(GenerateOptions { items: 800, files: 2, ..Default::default() });
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("ds");
    let o = convert(
        &e.generated.full_export_dir,
        &dest,
        &["-p", "status", "-p", "month(createdAt)", "--max-open-files", "3"],
    );
    assert_code(&o, 0);
    let source = source_items(&e.generated.full_export_dir);
    let mut rows = 0;
    for f in walk(&dest) {
        let rel = f.strip_prefix(&dest).unwrap().to_string_lossy().to_string();
        if rel.starts_with('_') {
            continue;
        }
        let parts: Vec<&str> = rel.split('/').collect();
        assert_eq!(parts.len(), 3, "{rel}");
        let status = parts[0].strip_prefix("status=").unwrap();
        let month = parts[1].strip_prefix("created_at_month=").unwrap();
        let file = std::fs::File::open(&f).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
        for b in reader {
            let b = b.unwrap();
            assert!(b.column_by_name("status").is_none(), "identity partition columns are not repeated");
            let ids = b.column_by_name("order_id").unwrap().as_string::<i32>();
            let created = b.column_by_name("created_at").unwrap().as_string::<i32>();
            for r in 0..b.num_rows() {
                let item = &source[ids.value(r)];
                let serde_dynamo::AttributeValue::S(s) = &item["status"] else { panic!() };
                assert_eq!(s, status);
                assert_eq!(&created.value(r)[..7], month);
                rows += 1;
            }
        }
    }
    assert_eq!(rows, 800);
    // The commit record counts rows per partition.
    let commits = walk(&dest.join("_dynolake/commits"));
    let rec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&commits[0]).unwrap()).unwrap();
    let per: u64 = rec["partitions"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(per, 800);
}

/// Columns whose values rarely repeat (order ids, timestamps) are written
/// without a Parquet dictionary; columns that repeat (statuses, quantities)
/// keep it. Columns nearly empty (attachments: in 3 % of items, a few bytes)
/// are written uncompressed, the rest with zstd. Files of one run,
/// partitioned and not; the data reads back the same.
#[test]
fn near_unique_columns_are_written_without_a_dictionary() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    // Files of 6,000 items: a decoded batch large enough to decide from.
    let e = export_with(GenerateOptions { items: 12_000, files: 2, ..Default::default() });
    let src = &e.generated.full_export_dir;
    let out = tempfile::tempdir().unwrap();
    for (name, extra) in [("plain", &[][..]), ("by-day", &["-p", "day(createdAt)", "--max-open-files", "4"][..])] {
        let dest = out.path().join(name);
        assert_code(&convert(src, &dest, extra), 0);
        let (mut with_dict, mut without) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
        let mut codecs: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
        let mut files = 0;
        for f in walk(&dest).into_iter().filter(|p| p.extension().is_some_and(|x| x == "parquet")) {
            files += 1;
            let reader = SerializedFileReader::new(std::fs::File::open(&f).unwrap()).unwrap();
            for rg in reader.metadata().row_groups() {
                for c in rg.columns() {
                    let dict = c.dictionary_page_offset().is_some()
                        || c.encodings().any(|e| {
                            matches!(
                                e,
                                parquet::basic::Encoding::RLE_DICTIONARY | parquet::basic::Encoding::PLAIN_DICTIONARY
                            )
                        });
                    let path = c.column_path().string();
                    codecs.entry(path.clone()).or_default().insert(format!("{:?}", c.compression()));
                    match dict {
                        true => with_dict.insert(path),
                        false => without.insert(path),
                    };
                }
            }
        }
        assert!(files > 0, "{name}");
        for near_unique in ["order_id", "created_at", "shipping.geo.lat", "lines.list.element.sku"] {
            assert!(without.contains(near_unique), "{name}: {near_unique} is written plain: {without:?}");
            assert!(!with_dict.contains(near_unique), "{name}: {near_unique} has no dictionary in any file");
        }
        // ~1,000 customers over 12,000 orders repeat in a big file; in a day's
        // partition of a few rows they would not, and a city of 16 would not either.
        let repeated: &[&str] = match name {
            "plain" => &["status", "customer_id", "shipping.city", "lines.list.element.qty"],
            _ => &["status", "lines.list.element.qty"],
        };
        for r in repeated {
            assert!(with_dict.contains(*r), "{name}: {r} keeps its dictionary: {with_dict:?}");
        }
        let codec = |c: &str| codecs[c].iter().cloned().collect::<Vec<_>>();
        // A day's partition of a few rows may hold enough attachments to compress.
        match name {
            "plain" => assert_eq!(codec("attachments.list.element"), ["UNCOMPRESSED"], "{codecs:?}"),
            _ => assert!(codec("attachments.list.element").contains(&"UNCOMPRESSED".into()), "{codecs:?}"),
        }
        for dense in ["order_id", "status", "shipping.geo.lat", "lines.list.element.sku"] {
            assert_eq!(codec(dense), ["ZSTD(ZstdLevel(1))"], "{name}: {dense}");
        }
        assert_dataset_holds_every_item(&dest, src);
    }
}

/// More partitions than open files: rows of the others wait on disk and are
/// written after the scan, a file per partition (not a file per batch), the
/// spill files are removed, and every row lands in its partition.
#[test]
fn a_thousand_partitions_get_a_file_each_not_a_file_per_batch() {
    let e = export_with(GenerateOptions { items: 4_000, files: 4, ..Default::default() });
    let src = &e.generated.full_export_dir;
    let source = source_items(src);
    let customer = |id: &str| {
        let serde_dynamo::AttributeValue::S(c) = &source[id]["customerId"] else { panic!("customerId") };
        c.clone()
    };
    let customers: std::collections::HashSet<String> = source.keys().map(|id| customer(id)).collect();
    assert!(customers.len() > 900, "the generator spreads orders over ~1,000 customers");
    let out = tempfile::tempdir().unwrap();
    let spill = out.path().join("spill");
    let (jobs, max_open) = (2, 4);
    for format in ["parquet", "jsonl"] {
        let dest = out.path().join(format);
        let o = convert(
            src,
            &dest,
            &[
                "-p",
                "customerId",
                "--format",
                format,
                "--jobs",
                &jobs.to_string(),
                "--max-open-files",
                &max_open.to_string(),
                "--spill-dir",
                spill.to_str().unwrap(),
                "--json",
            ],
        );
        assert_code(&o, 0);
        let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(summary["partitions"], customers.len());
        assert!(summary["spilled_partitions"].as_u64().unwrap() >= (customers.len() - jobs * max_open) as u64);
        assert!(summary["spilled_rows"].as_u64().unwrap() > 0);
        // A partition's files: one from the merge, and one from each worker
        // that had it among its open files.
        let files = summary["files"].as_u64().unwrap() as usize;
        assert!(files >= customers.len() && files <= customers.len() + jobs * max_open, "{files} files");
        let peak = summary["peak_memory_bytes"].as_u64().expect("peak memory is reported on Linux");
        assert!(peak > 0 && peak < 512 << 20, "peak {peak}");
        assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0, "spill files are removed");

        let mut rows = 0;
        for f in walk(&dest) {
            let rel = f.strip_prefix(&dest).unwrap().to_string_lossy().to_string();
            if rel.starts_with('_') {
                continue;
            }
            let (dir, _) = rel.split_once('/').unwrap();
            let value = dir.strip_prefix("customer_id=").unwrap();
            let ids: Vec<String> = match format {
                "parquet" => {
                    let file = std::fs::File::open(&f).unwrap();
                    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .unwrap()
                        .build()
                        .unwrap();
                    let mut ids = Vec::new();
                    for b in reader {
                        let b = b.unwrap();
                        let col = b.column_by_name("order_id").unwrap().as_string::<i32>();
                        ids.extend((0..b.num_rows()).map(|r| col.value(r).to_string()));
                    }
                    ids
                }
                _ => std::fs::read_to_string(&f)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["order_id"].as_str().unwrap().into())
                    .collect(),
            };
            for id in ids {
                assert_eq!(customer(&id), value, "{id} in {rel}");
                rows += 1;
            }
        }
        assert_eq!(rows, 4_000);
    }
    assert_dataset_holds_every_item(&out.path().join("parquet"), src);
}

/// Once a worker spills, partitions without an open file get their source
/// lines spilled, found by the partition column alone and decoded after the
/// scan: every item lands in its partition, the statistics of those lines
/// make the exact schema (one read, as without a spill), and a line only the
/// whole decode rejects is reported with its file and line like any other.
#[test]
fn spilled_source_lines_are_decoded_after_the_scan_and_answer_for_their_rejects() {
    // Eight files for two workers: each spills on its first file and takes lines from then on.
    let e = export_with(GenerateOptions {
        items: 8_000,
        files: 8,
        empty_files: 0,
        awkward_names: true,
        ..Default::default()
    });
    let src = &e.generated.full_export_dir;
    let out = tempfile::tempdir().unwrap();
    let by_day = ["-p", "day(createdAt)", "--max-open-files", "2", "--jobs", "2", "--json"];
    let schema_file = out.path().join("exact.json");
    assert_code(&dynolake(&["schema", src.to_str().unwrap(), "-o", schema_file.to_str().unwrap()], &[]), 0);
    let exact: serde_json::Value = serde_json::from_slice(&std::fs::read(&schema_file).unwrap()).unwrap();

    let clean = out.path().join("clean");
    let o = convert(src, &clean, &by_day);
    assert_code(&o, 0);
    let s: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!((s["rows"].as_u64(), s["items"].as_u64()), (Some(8_000), Some(8_000)), "{s}");
    let (rows, lines) = (s["spilled_rows"].as_u64().unwrap(), s["spilled_lines"].as_u64().unwrap());
    assert!(lines > 4_000 && lines <= rows, "most rows are spilled as lines: {s}");
    assert!(!stderr(&o).contains("reading the export again"), "{}", stderr(&o));
    assert_eq!(committed_schema(&clean), exact, "the spilled lines' statistics count");
    assert_dataset_holds_every_item(&clean, src);
    for f in walk(&clean).into_iter().filter(|p| p.extension().is_some_and(|x| x == "parquet")) {
        let day = f.parent().unwrap().file_name().unwrap().to_str().unwrap().strip_prefix("created_at_day=").unwrap();
        let file = std::fs::File::open(&f).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
        for b in reader {
            let b = b.unwrap();
            let created = b.column_by_name("created_at").unwrap().as_string::<i32>();
            for r in 0..b.num_rows() {
                assert_eq!(&created.value(r)[..10], day, "{}", f.display());
            }
        }
    }

    // A bad number at line 500 of every data file: its partition reads, its amount does not.
    let mut files = walk(&src.join("data"));
    files.sort();
    for (k, f) in files.iter().enumerate() {
        let mut lines: Vec<String> = read_lines(f).lines().map(String::from).collect();
        let bad = format!(
            r#"{{"Item":{{"orderId":{{"S":"bad-{k}"}},"createdAt":{{"S":"2024-02-1{k}T08:00:00Z"}},"amount":{{"N":"12abc"}}}}}}"#
        );
        lines.insert(499, bad);
        rewrite_data_file(src, f, &(lines.join("\n") + "\n"));
    }
    let blocked = out.path().join("blocked");
    let o = convert(src, &blocked, &by_day);
    assert_code(&o, 1);
    assert!(stdout(&o).contains("8 item(s) could not be decoded"), "{}", stdout(&o));
    assert!(!blocked.join("_SUCCESS").exists());
    let rejects = walk(&blocked.join("_rejects"));
    assert_eq!(rejects.len(), 1);
    let mut seen: Vec<String> = std::fs::read_to_string(&rejects[0])
        .unwrap()
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!((r["line"].as_u64(), r["path"].as_str()), (Some(500), Some("amount")), "{r}");
            assert!(r["reason"].as_str().unwrap().contains("malformed number"), "{r}");
            assert!(r["text"].as_str().unwrap().contains("12abc"), "{r}");
            r["file"].as_str().unwrap().rsplit('/').next().unwrap().to_string()
        })
        .collect();
    seen.sort();
    let want: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_str().unwrap().to_string()).collect();
    assert_eq!(seen, want, "one reject per data file, naming it");

    let allowed = out.path().join("allowed");
    let mut args = by_day.to_vec();
    args.push("--allow-rejects");
    let o = convert(src, &allowed, &args);
    assert_code(&o, 0);
    let s: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!((s["rows"].as_u64(), s["rejected"].as_u64(), s["items"].as_u64()), (Some(8_000), Some(8), Some(8_000)));
    assert!(s["spilled_lines"].as_u64().unwrap() > 4_000, "{s}");

    // Strict: the first bad line stops the run, naming its file and line (--json: the error is JSON on stdout).
    let o = convert(src, &out.path().join("strict"), &[&by_day[..], &["--strict"]].concat());
    assert_code(&o, 1);
    let err = stdout(&o);
    assert!(err.contains(":500 at `amount`") && err.contains("malformed number"), "{err}");
    assert!(want.iter().any(|f| err.contains(f.as_str())), "{err}");
}

/// A spill that cannot be written stops the job before the commit, saying where.
#[test]
fn a_spill_that_cannot_be_written_leaves_no_dataset() {
    let e = export_with(GenerateOptions { items: 300, files: 2, ..Default::default() });
    let out = tempfile::tempdir().unwrap();
    let not_a_dir = out.path().join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let dest = out.path().join("ds");
    let args = ["-p", "customerId", "--max-open-files", "1", "--spill-dir", not_a_dir.to_str().unwrap()];
    let o = convert(&e.generated.full_export_dir, &dest, &args);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains(not_a_dir.to_str().unwrap()), "{}", stderr(&o));
    assert!(!dest.join("_SUCCESS").exists());
    assert!(visible_files(&dest).is_empty(), "{:?}", visible_files(&dest));
    assert!(!dest.join("_temporary").exists());
}

#[test]
fn jsonl_and_csv_parse_back_with_exact_numbers() {
    let e = export_with(GenerateOptions { items: 400, files: 2, ..Default::default() });
    let source = source_items(&e.generated.full_export_dir);
    let out = tempfile::tempdir().unwrap();

    let dest = out.path().join("jsonl");
    assert_code(&convert(&e.generated.full_export_dir, &dest, &["--format", "jsonl"]), 0);
    let mut n = 0;
    for f in walk(&dest).into_iter().filter(|f| f.extension().is_some_and(|x| x == "jsonl")) {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let item = &source[v["order_id"].as_str().unwrap()];
            let serde_dynamo::AttributeValue::N(amount) = &item["amount"] else { panic!() };
            // Numbers are JSON numbers with the stored digits (compare the raw text).
            let raw = line.split("\"amount\":").nth(1).unwrap().split([',', '}']).next().unwrap();
            assert_eq!(norm_number(raw), norm_number(amount), "{line}");
            if let Some(serde_dynamo::AttributeValue::Ss(tags)) = item.get("tags") {
                let got: Vec<&str> = v["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
                assert_eq!(got.len(), tags.len());
            }
            assert!(v.get("Item").is_none() && !line.contains("{\"S\":"), "no descriptors: {line}");
            n += 1;
        }
    }
    assert_eq!(n, 400);

    let dest = out.path().join("csv");
    assert_code(&convert(&e.generated.full_export_dir, &dest, &["--format", "csv"]), 0);
    let mut n = 0;
    for f in walk(&dest).into_iter().filter(|f| f.extension().is_some_and(|x| x == "csv")) {
        let text = std::fs::read_to_string(&f).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let fields: Vec<arrow::datatypes::Field> =
            header.iter().map(|h| arrow::datatypes::Field::new(*h, arrow::datatypes::DataType::Utf8, true)).collect();
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(fields));
        let reader =
            arrow::csv::ReaderBuilder::new(schema).with_header(true).build(std::fs::File::open(&f).unwrap()).unwrap();
        for b in reader {
            let b = b.unwrap();
            let ids = b.column_by_name("order_id").unwrap().as_string::<i32>();
            let amounts = b.column_by_name("amount").unwrap().as_string::<i32>();
            let notes = b.column_by_name("notes").unwrap().as_string::<i32>();
            for r in 0..b.num_rows() {
                let item = &source[ids.value(r)];
                let serde_dynamo::AttributeValue::N(amount) = &item["amount"] else { panic!() };
                assert_eq!(amounts.value(r), amount, "numbers exactly as stored");
                if let Some(serde_dynamo::AttributeValue::S(note)) = item.get("notes") {
                    assert_eq!(notes.value(r), note, "quoting survives newlines, quotes and commas");
                }
                n += 1;
            }
        }
    }
    assert_eq!(n, 400);
}

fn visible_files(dest: &std::path::Path) -> Vec<String> {
    if !dest.exists() {
        return Vec::new();
    }
    walk(dest)
        .into_iter()
        .map(|f| f.strip_prefix(dest).unwrap().to_string_lossy().to_string())
        .filter(|r| !r.starts_with("_temporary") && !r.starts_with("_rejects") && !r.ends_with("lease.json"))
        .collect()
}

#[test]
fn a_crash_before_or_during_the_commit_never_leaves_half_a_dataset() {
    let e = export_with(GenerateOptions { items: 600, files: 4, ..Default::default() });
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("ds");
    let src = e.generated.full_export_dir.to_str().unwrap();
    let d = dest.to_str().unwrap();

    // Crash after the data files were written, before the commit.
    let o = dynolake(&["convert", src, d, "-p", "status"], &[("DYNOLAKE_CRASH_AT", "before-commit".into())]);
    assert_code(&o, 101);
    assert!(visible_files(&dest).is_empty(), "{:?}", visible_files(&dest));
    // Rerunning cleans up and finishes the job.
    let o = dynolake(&["convert", src, d, "-p", "status"], &[]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("removed leftovers"), "{}", stderr(&o));
    let first: Vec<String> = visible_files(&dest);
    assert!(first.iter().any(|f| f == "_SUCCESS"));

    // Overwrite, crashing half way through moving files into place.
    let o = dynolake(
        &["convert", src, d, "-p", "status", "--mode", "overwrite"],
        &[("DYNOLAKE_CRASH_AT", "mid-commit".into())],
    );
    assert_code(&o, 101);
    // The old dataset is still complete and its commit record still the only one.
    for f in &first {
        assert!(dest.join(f).exists(), "{f} of the old dataset must survive");
    }
    assert_eq!(walk(&dest.join("_dynolake/commits")).len(), 1);
    // Rerunning the same command finishes the interrupted commit.
    let o = dynolake(&["convert", src, d, "-p", "status", "--mode", "overwrite"], &[]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("finished the commit of interrupted run"), "{}", stderr(&o));
    let rows: usize = read_parquet_dir(&dest).iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 600, "exactly one dataset after overwrite");
    assert_eq!(walk(&dest.join("_dynolake/commits")).len(), 1);

    // Append adds a second commit.
    assert_code(&dynolake(&["convert", src, d, "-p", "status", "--mode", "append"], &[]), 0);
    let rows: usize = read_parquet_dir(&dest).iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 1200);
    // Default mode refuses a committed dataset.
    assert_code(&dynolake(&["convert", src, d], &[]), 2);
}

#[test]
fn a_sample_shared_out_among_workers_gives_the_schema_one_worker_would() {
    let e = export_with(GenerateOptions { items: 900, files: 3, awkward_names: true, ..Default::default() });
    let src = e.generated.full_export_dir.to_str().unwrap();
    let schema = |jobs: &str, sample: &str| {
        let o = dynolake(&["schema", src, "--sample", sample, "--jobs", jobs, "--json"], &[]);
        assert_code(&o, 0);
        stdout(&o)
    };
    // 250 stays in the first file; 451 and 700 cross into the next ones (about 300 items a file).
    for sample in ["1", "250", "451", "700"] {
        let one = schema("1", sample);
        assert!(one.contains(&format!("\"sample:{sample}\"")), "{one}");
        assert_eq!(schema("2", sample), one, "--sample {sample} on two workers");
        assert_eq!(schema("3", sample), one, "--sample {sample} on three workers");
    }
    assert_ne!(schema("2", "1"), schema("2", "700"), "the sample size matters");
}

#[test]
fn appending_keeps_the_dataset_schema_and_partitioning() {
    let e = export_with(GenerateOptions { items: 400, files: 2, ..Default::default() });
    let src = e.generated.full_export_dir.to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    let d = out.path().join("ds");
    let d = d.to_str().unwrap();
    // The dataset was written with a schema that leaves `notes` out.
    let schema_file = out.path().join("s.json");
    assert_code(&dynolake(&["schema", src, "-o", schema_file.to_str().unwrap()], &[]), 0);
    let mut s: serde_json::Value = serde_json::from_slice(&std::fs::read(&schema_file).unwrap()).unwrap();
    s["columns"].as_array_mut().unwrap().retain(|c| c["attribute"] != "notes");
    std::fs::write(&schema_file, s.to_string()).unwrap();
    let o = dynolake(&["convert", src, d, "-p", "status", "--schema", schema_file.to_str().unwrap(), "--json"], &[]);
    assert_code(&o, 0);
    let first: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(first["extra_values"].as_u64().unwrap() > 0, "notes went to _extra");

    // Other partitioning would mix layouts: refused before anything is read.
    let o = dynolake(&["convert", src, d, "--mode", "append"], &[]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("partitioned by [status]"), "{}", stderr(&o));

    // Appending without --schema uses the dataset's schema, not a freshly inferred one.
    let o = dynolake(&["convert", src, d, "-p", "status", "--mode", "append", "--json"], &[]);
    assert_code(&o, 0);
    let second: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(second["extra_values"], first["extra_values"]);
    let commits: Vec<serde_json::Value> = walk(&std::path::Path::new(d).join("_dynolake/commits"))
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    assert_eq!(commits.len(), 2);
    let columns = |c: &serde_json::Value| -> Vec<String> {
        c["schema"]["columns"].as_array().unwrap().iter().map(|c| format!("{} {}", c["column"], c["type"])).collect()
    };
    assert_eq!(columns(&commits[0]), columns(&commits[1]));
    let batches = read_parquet_dir(std::path::Path::new(d));
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 800);
    assert!(batches.iter().all(|b| b.schema() == batches[0].schema()), "every file reads as one table");
}

#[test]
fn a_corrupted_data_file_aborts_without_a_commit() {
    let e = export_with(GenerateOptions { items: 600, files: 3, ..Default::default() });
    let f = biggest_data_file(&e.generated.full_export_dir);
    let mut bytes = std::fs::read(&f).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x10;
    std::fs::write(&f, bytes).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("ds");
    let o = convert(&e.generated.full_export_dir, &dest, &[]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains(f.file_name().unwrap().to_str().unwrap()), "{}", stderr(&o));
    assert!(visible_files(&dest).is_empty(), "{:?}", visible_files(&dest));
}

#[test]
fn rejected_items_block_the_commit_unless_allowed() {
    let e = export_with(GenerateOptions { items: 200, files: 1, empty_files: 0, ..Default::default() });
    let f = biggest_data_file(&e.generated.full_export_dir);
    let mut lines = read_lines(&f);
    lines.push_str("{\"Item\":{\"orderId\":{\"S\":\"bad\"},\"amount\":{\"N\":\"12abc\"}}}\n");
    rewrite_data_file(&e.generated.full_export_dir, &f, &lines);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("ds");
    let o = convert(&e.generated.full_export_dir, &dest, &[]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("1 item(s) could not be decoded"), "{}", stderr(&o));
    assert!(!dest.join("_SUCCESS").exists());
    let rejects = walk(&dest.join("_rejects"));
    assert_eq!(rejects.len(), 1);
    let r: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&rejects[0]).unwrap().trim()).unwrap();
    assert_eq!(r["line"], 201);
    assert_eq!(r["path"], "amount");
    assert!(r["reason"].as_str().unwrap().contains("malformed number"));

    let o = convert(&e.generated.full_export_dir, &dest, &["--allow-rejects", "--json"]);
    assert_code(&o, 0);
    let s: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(s["rows"], 200);
    assert_eq!(s["rejected"], 1);
}

#[test]
fn a_schema_file_renames_retypes_and_catches_the_rest() {
    let e = export_with(GenerateOptions { items: 300, files: 2, ..Default::default() });
    let out = tempfile::tempdir().unwrap();
    let schema_path = out.path().join("orders.json");
    let o = dynolake(
        &["schema", e.generated.full_export_dir.to_str().unwrap(), "-o", schema_path.to_str().unwrap(), "-q"],
        &[],
    );
    assert_code(&o, 0);
    let mut s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&schema_path).unwrap()).unwrap();
    let cols = s["columns"].as_array_mut().unwrap();
    cols.retain(|c| c["attribute"] != "notes");
    for c in cols.iter_mut() {
        if c["attribute"] == "amount" {
            c["type"] = "double".into();
            c["column"] = "total".into();
        }
        if c["attribute"] == "createdAt" {
            c["type"] = "timestamp".into();
        }
    }
    std::fs::write(&schema_path, serde_json::to_string_pretty(&s).unwrap()).unwrap();
    let dest = out.path().join("ds");
    let o = convert(&e.generated.full_export_dir, &dest, &["--schema", schema_path.to_str().unwrap(), "--json"]);
    assert_code(&o, 0);
    let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let notes = summary["extra_by_attribute"]["notes"].as_u64().unwrap();
    assert!(notes > 0);
    let source = source_items(&e.generated.full_export_dir);
    let mut with_notes = 0;
    for b in read_parquet_dir(&dest) {
        assert!(matches!(b.column_by_name("total").unwrap().data_type(), arrow::datatypes::DataType::Float64));
        assert!(matches!(
            b.column_by_name("created_at").unwrap().data_type(),
            arrow::datatypes::DataType::Timestamp(_, _)
        ));
        let ids = b.column_by_name("order_id").unwrap().as_string::<i32>();
        let extra = b.column_by_name("_extra").unwrap().as_string::<i32>();
        for r in 0..b.num_rows() {
            let has = source[ids.value(r)].contains_key("notes");
            assert_eq!(!extra.is_null(r), has);
            if has {
                with_notes += 1;
                assert!(extra.value(r).starts_with("{\"notes\":"));
            }
        }
    }
    assert_eq!(with_notes, notes);
}

#[test]
fn convert_from_s3_to_s3() {
    let s3 = S3Server::start();
    let e = export_with(GenerateOptions { items: 700, files: 3, prefix: Some("exp".into()), ..Default::default() });
    s3.upload_dir(e.dir.path(), BUCKET, "");
    let src = format!("s3://{BUCKET}/exp/");
    let dest = "s3://lake/orders";
    // Five statuses, two open files: the other partitions go through the spill and its merge, to S3 as well.
    let o = dynolake(&["convert", &src, dest, "-p", "status", "--max-open-files", "2", "--json"], &s3.env());
    assert_code(&o, 0);
    let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(summary["spilled_partitions"].as_u64().unwrap() >= 3, "{summary}");
    let keys = s3.list("lake", "orders");
    assert!(keys.iter().any(|k| k == "orders/_SUCCESS"), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains("_temporary")), "{keys:?}");
    let data: Vec<&String> = keys.iter().filter(|k| k.ends_with(".parquet")).collect();
    assert!(data.iter().all(|k| k.starts_with("orders/status=")), "{data:?}");
    let mut rows = 0;
    for k in &data {
        let bytes = bytes::Bytes::from(s3.get("lake", k));
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
        rows += r.map(|b| b.unwrap().num_rows()).sum::<usize>();
    }
    assert_eq!(rows, 700);
    // Overwrite replaces the old files after the new commit.
    let o = dynolake(&["convert", &src, dest, "--mode", "overwrite"], &s3.env());
    assert_code(&o, 0);
    let keys = s3.list("lake", "orders");
    let data: Vec<&String> = keys.iter().filter(|k| k.ends_with(".parquet")).collect();
    assert!(data.iter().all(|k| !k.contains("status=")), "old partitioned files are gone: {data:?}");
    let by_key: HashMap<&str, ()> = keys.iter().map(|k| (k.as_str(), ())).collect();
    assert!(by_key.contains_key("orders/_SUCCESS"));
}
