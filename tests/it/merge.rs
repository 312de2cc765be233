//! `dynolake merge` and change tables: results checked against a plain
//! in-memory model of the same changes (a map from key to item, changes
//! applied in write-time order), compared value for value with what
//! `convert` makes of the model's final items as a full export.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
use dynolake::ddb::value::{AttrValue as V, Item};
use dynolake::export::OutputFormat;
use dynolake::generate::{GenerateOptions, Rng, change_line, export_time_ms, generate, write_incremental};

use super::decode::concat;
use super::support::*;

type Key = (String, i64);
type Model = BTreeMap<Key, Item>;

const HOUR: i64 = 3_600_000;

fn s(v: &str) -> V {
    V::S(v.into())
}

fn key_of(item: &Item) -> Key {
    let pk = item.iter().find_map(|(k, v)| match (k.as_str(), v) {
        ("pk", V::S(s)) => Some(s.clone()),
        _ => None,
    });
    let sk = item.iter().find_map(|(k, v)| match (k.as_str(), v) {
        ("sk", V::N(n)) => n.parse().ok(),
        _ => None,
    });
    (pk.unwrap(), sk.unwrap())
}

fn keys(k: &Key) -> Item {
    vec![("pk".into(), s(&k.0)), ("sk".into(), V::N(k.1.to_string()))]
}

/// An item with a few types: a sparse `tag`, a set, a map, a number that must stay exact.
fn make(k: &Key, v: u64, r: &mut Rng) -> Item {
    let mut it = keys(k);
    it.push(("v".into(), V::N(format!("{v}.{:02}", v % 100).trim_end_matches('0').trim_end_matches('.').into())));
    if r.unit() < 0.6 {
        it.push(("tag".into(), s(&format!("t{}", r.below(50)))));
    }
    it.push(("colours".into(), V::SS(vec!["red".into(), format!("c{}", r.below(5))])));
    it.push((
        "doc".into(),
        V::M(vec![("n".into(), V::N("12345678901234567890123.5".into())), ("ok".into(), V::Bool(true))]),
    ));
    it
}

struct Fixture {
    dir: tempfile::TempDir,
    opts: GenerateOptions,
    t0: i64,
    model: Model,
    rng: Rng,
}

impl Fixture {
    fn new(n: usize, format: OutputFormat) -> Fixture {
        Fixture::with_items(n, format, |_| {})
    }

    /// `edit` may change the base items before they are written.
    fn with_items(n: usize, format: OutputFormat, edit: impl FnOnce(&mut Vec<Item>)) -> Fixture {
        let mut rng = Rng::new(7);
        let mut items: Vec<Item> =
            (0..n).map(|i| make(&(format!("p{i:04}"), (i % 3) as i64), i as u64 * 7, &mut rng)).collect();
        edit(&mut items);
        let model = items.iter().map(|it| (key_of(it), it.clone())).collect();
        let opts = GenerateOptions {
            items: n as u64,
            files: 2,
            items_from: Some(Arc::new(items)),
            prefix: Some("exports/orders".into()),
            format,
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), &opts).unwrap();
        let t0 = export_time_ms(&opts);
        Fixture { dir, opts, t0, model, rng }
    }

    fn root(&self) -> String {
        self.dir.path().join("exports/orders").display().to_string()
    }

    /// `count` changes written in `[from, to)` (hours after the full export), applied to the model in
    /// write-time order and written in shuffled order: updates that drop `tag`, removals, inserts of new
    /// keys, a change to a key the base never had, and a few hot keys changed several times.
    fn changes(&mut self, from_h: f64, to_h: f64, count: usize, new_image_only: bool) -> Vec<(i64, String)> {
        let (from, to) = (self.t0 + (from_h * HOUR as f64) as i64, self.t0 + (to_h * HOUR as f64) as i64);
        let mut out = Vec::new();
        let r = &mut self.rng;
        for i in 0..count {
            let ts_us = (from + (to - from) * i as i64 / count as i64) * 1000 + r.below(999) as i64;
            let existing: Vec<Key> = self.model.keys().cloned().collect();
            let pick = r.unit();
            let k = if pick < 0.15 {
                existing[r.below(3.min(existing.len() as u64)) as usize].clone() // hot keys
            } else if pick < 0.75 {
                existing[r.below(existing.len() as u64) as usize].clone()
            } else {
                (format!("n{}", r.below(1_000_000)), r.below(3) as i64)
            };
            let old = self.model.get(&k).cloned();
            let remove = old.is_some() && r.unit() < 0.25;
            let (old_img, new_img) = if remove {
                self.model.remove(&k);
                (old, None)
            } else {
                let mut new = make(&k, r.below(1_000_000), r);
                new.retain(|(a, _)| a != "tag" || r.unit() < 0.5);
                // A change to a key the base never had, with an old image (as if the base missed it).
                let old = old.or_else(|| (r.unit() < 0.3).then(|| make(&k, 1, r)));
                self.model.insert(k.clone(), new.clone());
                (old, Some(new))
            };
            let (old_img, k_img) = match new_image_only {
                true => (None, keys(&k)),
                false => (old_img, keys(&k)),
            };
            out.push((ts_us, change_line(self.opts.format, &k_img, old_img.as_ref(), new_img.as_ref(), ts_us)));
        }
        out
    }

    /// Write an incremental export of `lines` (shuffled) for the window in hours after the full export.
    fn write(&mut self, window: (f64, f64), lines: &[(i64, String)], new_image_only: bool) -> String {
        let mut lines: Vec<String> = lines.iter().map(|(_, l)| l.clone()).collect();
        for i in (1..lines.len()).rev() {
            lines.swap(i, self.rng.below(i as u64 + 1) as usize);
        }
        let w = (self.t0 + (window.0 * HOUR as f64) as i64, self.t0 + (window.1 * HOUR as f64) as i64);
        write_incremental(self.dir.path(), &self.opts, w, new_image_only, &lines, 2).unwrap()
    }
}

fn merge(args: &[&str]) -> serde_json::Value {
    let mut a = vec!["merge", "--json"];
    a.extend_from_slice(args);
    let o = dynolake(&a, &[]);
    assert_code(&o, 0);
    serde_json::from_str(&stdout(&o)).unwrap()
}

/// Sorted by key, for comparing.
pub(super) fn sorted(dir: &Path) -> RecordBatch {
    let b = concat(&read_parquet_dir(dir));
    let cols: Vec<SortColumn> = ["pk", "sk"]
        .iter()
        .map(|c| SortColumn { values: b.column_by_name(c).unwrap().clone(), options: None })
        .collect();
    take_record_batch(&b, &lexsort_to_indices(&cols, None).unwrap()).unwrap()
}

/// The newest commit record of a dataset.
pub(super) fn last_record(dest: &Path) -> serde_json::Value {
    let mut recs: Vec<serde_json::Value> = walk(&dest.join("_dynolake/commits"))
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    recs.sort_by_key(|r| r["committed_at"].as_str().unwrap().to_string());
    recs.pop().unwrap()
}

/// The model's items as a full export, converted with `schema` (a schema
/// file's JSON): the dataset the merge must equal. Returns its folder (and
/// the temporary folder holding it).
fn model_converted(fx: &Fixture, schema: &serde_json::Value) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = converted_items(fx.model.values().cloned().collect(), fx.opts.clone(), schema, tmp.path());
    (tmp, out)
}

/// The merged dataset holds exactly the model's items: convert them (as a full export, with the
/// merged dataset's schema) and compare every value.
#[track_caller]
fn assert_matches_model(fx: &Fixture, dest: &Path) {
    let (_tmp, out) = model_converted(fx, &last_record(dest)["schema"]);
    let (want, got) = (sorted(&out), sorted(dest));
    assert_eq!(got.num_rows(), fx.model.len(), "rows");
    assert_same_columns(&want, &got);
}

/// `held`: the changes fit the memory held for them (read once), or not (`--changes-memory 0`: read twice).
fn merge_chain(format: OutputFormat, held: bool) {
    let mut fx = Fixture::new(600, format);
    // A: [0h, 2h); B overlaps A by half an hour and repeats A's changes of that half hour; C is empty;
    // D repeats B's window exactly (a duplicate export).
    let a = fx.changes(0.0, 2.0, 120, false);
    let a_tail: Vec<(i64, String)> = a.iter().filter(|(t, _)| *t >= (fx.t0 + 3 * HOUR / 2) * 1000).cloned().collect();
    let a_id = fx.write((0.0, 2.0), &a, false);
    let mut b = a_tail;
    b.extend(fx.changes(2.0, 4.0, 150, false));
    let b_id = fx.write((1.5, 4.0), &b, false);
    let c_id = fx.write((4.0, 5.0), &[], false);
    let d_id = fx.write((1.5, 4.0), &b, false);
    let dest = fx.dir.path().join("lake");
    let dest_s = dest.display().to_string();
    let memory = if held { "192" } else { "0" };
    let summary = merge(&[&fx.root(), &dest_s, "--changes-memory", memory]);
    assert_eq!(summary["written"], true);
    assert_eq!(summary["change_scans"], if held { 1 } else { 2 }, "{summary}");
    let applied: Vec<&str> = summary["applied"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    // B and D are the same window: whichever comes first is applied, the other left out.
    let (first, second) = if applied[1] == b_id { (&b_id, &d_id) } else { (&d_id, &b_id) };
    assert_eq!(applied, [a_id.as_str(), first.as_str(), c_id.as_str()], "{summary}");
    let skipped = summary["skipped"].to_string();
    assert!(skipped.contains(second.as_str()), "the duplicate window is left out: {skipped}");
    assert_eq!(summary["key"], serde_json::json!(["pk", "sk"]));
    assert_matches_model(&fx, &dest);

    // The next day: one more export. Only it is applied, onto the merged dataset.
    let before = last_record(&dest)["run_id"].clone();
    let e = fx.changes(5.0, 6.0, 80, false);
    let e_id = fx.write((5.0, 6.0), &e, false);
    let summary = merge(&[&fx.root(), &dest_s]);
    assert_eq!(summary["applied"], serde_json::json!([e_id]), "{summary}");
    assert!(summary["base"].as_str().unwrap().starts_with("dataset"), "{summary}");
    assert_matches_model(&fx, &dest);
    assert_ne!(last_record(&dest)["run_id"], before);
    let held = last_record(&dest)["merge"]["applied"].as_array().unwrap().len();
    assert_eq!(held, 4, "the record holds every export applied");

    // Nothing new: says so, writes nothing.
    let record = last_record(&dest);
    let summary = merge(&[&fx.root(), &dest_s]);
    assert_eq!(summary["written"], false);
    assert_eq!(last_record(&dest), record);
    let o = dynolake(&["merge", &fx.root(), &dest_s], &[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("nothing new to apply"), "{}", stdout(&o));
}

#[test]
fn merge_applies_a_chain_like_the_model_json() {
    merge_chain(OutputFormat::DynamodbJson, true);
}

#[test]
fn merge_applies_a_chain_like_the_model_ion_changes_read_twice() {
    merge_chain(OutputFormat::Ion, false);
}

#[test]
fn merge_reads_new_image_exports_and_separate_change_folders() {
    let mut fx = Fixture::new(300, OutputFormat::DynamodbJson);
    let a = fx.changes(0.0, 1.0, 90, true);
    fx.write((0.0, 1.0), &a, true);
    // A second chain link in another folder (another prefix of the same bucket).
    let b = fx.changes(1.0, 2.0, 60, false);
    let other = GenerateOptions { prefix: Some("elsewhere".into()), ..fx.opts.clone() };
    let mut lines: Vec<String> = b.iter().map(|(_, l)| l.clone()).collect();
    lines.reverse();
    let w = (fx.t0 + HOUR, fx.t0 + 2 * HOUR);
    write_incremental(fx.dir.path(), &other, w, false, &lines, 1).unwrap();
    // A data file no manifest lists, in the shared data folder: never read.
    let stray = fx.dir.path().join("exports/orders/AWSDynamoDB/data/zzzzzzzzzzzzzzzzzzzzzzzzzz.json.gz");
    std::fs::write(&stray, b"not even gzip").unwrap();
    let dest = fx.dir.path().join("lake");
    let elsewhere = fx.dir.path().join("elsewhere").display().to_string();
    let summary = merge(&[&fx.root(), &elsewhere, &dest.display().to_string(), "--key", "pk,sk"]);
    assert_eq!(summary["applied"].as_array().unwrap().len(), 2, "{summary}");
    assert_matches_model(&fx, &dest);
}

#[test]
fn merge_refuses_a_gap_naming_it_and_writes_nothing() {
    let mut fx = Fixture::new(100, OutputFormat::DynamodbJson);
    let a = fx.changes(0.0, 1.0, 10, false);
    fx.write((0.0, 1.0), &a, false);
    let b = fx.changes(2.0, 3.0, 10, false);
    fx.write((2.0, 3.0), &b, false);
    let dest = fx.dir.path().join("lake");
    let o = dynolake(&["merge", &fx.root(), &dest.display().to_string()], &[]);
    assert_code(&o, 1);
    let iso =
        |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let err = stderr(&o);
    assert!(err.contains(&format!("nothing covers {} to {}", iso(fx.t0 + HOUR), iso(fx.t0 + 2 * HOUR))), "{err}");
    assert!(walk(&dest).iter().all(|p| !p.to_string_lossy().ends_with(".parquet")), "nothing written");
}

#[test]
fn merge_killed_in_its_commit_is_finished_by_the_next_run() {
    let mut fx = Fixture::new(400, OutputFormat::DynamodbJson);
    let a = fx.changes(0.0, 1.0, 60, false);
    fx.write((0.0, 1.0), &a, false);
    let dest = fx.dir.path().join("lake").display().to_string();
    let o = dynolake(
        &["merge", &fx.root(), &dest, "--max-rows-per-file", "50"],
        &[("DYNOLAKE_CRASH_AT", "mid-commit".into())],
    );
    assert_eq!(o.status.code(), Some(101), "{}", stderr(&o));
    let summary = merge(&[&fx.root(), &dest]);
    assert!(!summary["finished_interrupted"].as_array().unwrap().is_empty(), "{summary}");
    assert_eq!(summary["written"], false, "the finished commit already holds the export: {summary}");
    assert_matches_model(&fx, Path::new(&dest));
}

#[test]
fn change_tables_read_through_schema_sql_and_convert() {
    let mut fx = Fixture::new(200, OutputFormat::DynamodbJson);
    let a = fx.changes(0.0, 1.0, 80, false);
    let id = fx.write((0.0, 1.0), &a, false);
    let removes = a.iter().filter(|(_, l)| !l.contains("NewImage")).count();
    let inc = format!("{}/AWSDynamoDB/{id}", fx.root());
    let o = dynolake(&["schema", &inc], &[]);
    assert_code(&o, 0);
    let o = dynolake(
        &[
            "sql",
            &format!("c={inc}"),
            "-e",
            "SELECT _op, count(*) AS n FROM c GROUP BY _op ORDER BY _op",
            "--format",
            "csv",
        ],
        &[],
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(out.contains(&format!("remove,{removes}")), "{out}");
    // A join of the change table to the full export.
    let q = "SELECT count(*) AS n FROM c JOIN f ON c.pk = f.pk AND c.sk = f.sk WHERE c._op = 'remove'";
    let o = dynolake(&["sql", &format!("c={inc}"), &format!("f={}", fx.root()), "-e", q, "--format", "csv"], &[]);
    assert_code(&o, 0);
    assert!(stdout(&o).lines().nth(1).unwrap().parse::<usize>().unwrap() > 0, "{}", stdout(&o));
    let out = fx.dir.path().join("changes");
    let o = dynolake(&["convert", &inc, &out.display().to_string()], &[]);
    assert_code(&o, 0);
    let b = concat(&read_parquet_dir(&out));
    assert_eq!(b.num_rows(), a.len());
    let names: Vec<String> = b.schema().fields().iter().take(4).map(|f| f.name().clone()).collect();
    assert_eq!(names, ["_op", "_write_time", "_sequence", "_ttl_delete"]);
}

/// Two records of one key with the same write time in one export (here the same
/// record twice) cannot be told apart by key and time: the merge ranks whole
/// rows instead, and the key still has one row.
#[test]
fn merge_with_tied_write_times_keeps_one_row_per_key() {
    let mut fx = Fixture::new(200, OutputFormat::DynamodbJson);
    let mut a = fx.changes(0.0, 1.0, 40, false);
    let again = a.iter().find(|(_, l)| l.contains("NewImage")).unwrap().clone();
    a.push(again);
    fx.write((0.0, 1.0), &a, false);
    let dest = fx.dir.path().join("lake");
    merge(&[&fx.root(), &dest.display().to_string()]);
    assert_matches_model(&fx, &dest);
}

/// The first items of the base do not show every attribute: the schema they
/// give is checked on the same read, found short, and the merge reads again
/// with the exact one (nothing of the first attempt is committed).
#[test]
fn merge_reads_again_when_the_first_items_do_not_give_the_schema() {
    // An attribute only the last base item has (in the last data file).
    let mut fx = Fixture::with_items(300, OutputFormat::DynamodbJson, |items| {
        items.last_mut().unwrap().push(("late".into(), V::N("12.5".into())));
    });
    let a = fx.changes(0.0, 1.0, 30, false);
    fx.write((0.0, 1.0), &a, false);
    assert_merges_after_reading_again(&fx, "reading again");
}

/// The same for the changes: their first items (the schema's sample) miss an
/// attribute a later change brings; decoding the changes finds it, nothing is
/// committed, and the merge reads again with the exact schema.
#[test]
fn merge_reads_again_when_the_changes_first_items_do_not_give_the_schema() {
    let mut fx = Fixture::new(300, OutputFormat::DynamodbJson);
    let mut a = fx.changes(0.0, 1.0, 40, false);
    let k: Key = ("late0".into(), 1);
    let mut img = keys(&k);
    img.push(("late".into(), V::N("12.5".into())));
    let ts = (fx.t0 + HOUR / 2) * 1000;
    a.push((ts, change_line(fx.opts.format, &keys(&k), None, Some(&img), ts)));
    fx.model.insert(k, img);
    fx.write((0.0, 1.0), &a, false);
    assert_merges_after_reading_again(&fx, "reading again: values of `late` in the changes");
}

/// Merge with `--first-items 10`: the first attempt finds the schema short
/// (stderr says `why`), and the second gives the model in one commit.
#[track_caller]
fn assert_merges_after_reading_again(fx: &Fixture, why: &str) {
    let dest = fx.dir.path().join("lake");
    let o = dynolake(&["merge", &fx.root(), &dest.display().to_string(), "--first-items", "10", "--json"], &[]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains(why), "{}", stderr(&o));
    assert_matches_model(fx, &dest);
    assert_eq!(last_record(&dest)["schema"]["inferred_from"], "exact");
    assert_eq!(walk(&dest.join("_dynolake/commits")).len(), 1, "one commit");
}

/// The newest `commitInfo` of a Delta table and the number of commits.
fn delta_log(dest: &Path) -> (serde_json::Value, usize) {
    let mut logs: Vec<_> =
        walk(&dest.join("_delta_log")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
    logs.sort();
    let text = std::fs::read_to_string(logs.last().unwrap()).unwrap();
    let info = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find_map(|v| v.get("commitInfo").cloned())
        .unwrap();
    (info, logs.len())
}

/// The Delta table holds exactly the model's items, read through its log by
/// DataFusion (`dynolake sql`), compared with `convert` of the model's items.
#[track_caller]
fn assert_delta_matches_model(fx: &Fixture, dest: &Path) {
    let (info, _) = delta_log(dest);
    let (_tmp, out) = model_converted(fx, &info["dynolake"]["schema"]);
    let (e, d) = (format!("e={}", out.display()), format!("d={}", dest.display()));
    let q = "SELECT (SELECT count(*) FROM d) AS n, (SELECT count(DISTINCT (pk, sk)) FROM d) AS k, \
             (SELECT count(*) FROM (SELECT * FROM e EXCEPT SELECT * FROM d)) AS missing, \
             (SELECT count(*) FROM (SELECT * FROM d EXCEPT SELECT * FROM e)) AS unexpected";
    let o = dynolake(&["sql", &e, &d, "-e", q, "--format", "csv"], &[]);
    assert_code(&o, 0);
    let n = fx.model.len();
    assert_eq!(stdout(&o).lines().nth(1), Some(format!("{n},{n},0,0").as_str()), "{}", stdout(&o));
}

#[test]
fn merge_writes_a_delta_table_then_merges_into_it() {
    let mut fx = Fixture::new(400, OutputFormat::DynamodbJson);
    let a = fx.changes(0.0, 2.0, 100, false);
    fx.write((0.0, 2.0), &a, false);
    let b = fx.changes(2.0, 3.0, 60, false);
    fx.write((2.0, 3.0), &b, false);
    let dest = fx.dir.path().join("delta");
    let dest_s = dest.display().to_string();
    let summary = merge(&[&fx.root(), &dest_s, "--format", "delta", "--partition-by", "sk"]);
    assert_eq!(summary["applied"].as_array().unwrap().len(), 2, "{summary}");
    let (info, commits) = delta_log(&dest);
    assert_eq!(commits, 1);
    assert_eq!(info["dynolake"]["merge"]["applied"].as_array().unwrap().len(), 2);
    assert_delta_matches_model(&fx, &dest);

    // The next export: one MERGE transaction on the table.
    let e = fx.changes(3.0, 4.0, 50, false);
    let e_id = fx.write((3.0, 4.0), &e, false);
    let summary = merge(&[&fx.root(), &dest_s, "--format", "delta", "--partition-by", "sk"]);
    assert_eq!(summary["applied"], serde_json::json!([e_id]), "{summary}");
    let (info, commits) = delta_log(&dest);
    assert_eq!(commits, 2);
    assert_eq!(info["operation"], "MERGE");
    let applied = info["dynolake"]["merge"]["applied"].as_array().unwrap();
    assert_eq!(applied.len(), 3);
    assert!(applied.last().unwrap().as_str().unwrap().ends_with(&e_id));
    assert_delta_matches_model(&fx, &dest);

    // Nothing new: no commit.
    let summary = merge(&[&fx.root(), &dest_s, "--format", "delta"]);
    assert_eq!(summary["written"], false, "{summary}");
    assert_eq!(delta_log(&dest).1, 2);
}

/// `convert --format delta` starts a Delta table from a full export alone;
/// `merge` then applies the incremental exports onto it; `ddl` gives Athena's
/// Delta table; converting again over it is refused unless overwriting.
#[test]
fn convert_to_delta_then_merge_onto_it() {
    let mut fx = Fixture::new(300, OutputFormat::DynamodbJson);
    let before = fx.model.clone();
    let dest = fx.dir.path().join("delta");
    let dest_s = dest.display().to_string();
    let o = dynolake(&["convert", &fx.root(), &dest_s, "--format", "delta"], &[]);
    assert_code(&o, 0);
    let after = std::mem::replace(&mut fx.model, before);
    assert_delta_matches_model(&fx, &dest);
    let files = walk(&dest);
    assert!(files.iter().any(|f| f.to_string_lossy().ends_with(".zstd.parquet")), "zstd like every output: {files:?}");
    fx.model = after;
    let o = dynolake(&["convert", &fx.root(), &dest_s, "--format", "delta"], &[]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("already holds a Delta table"), "{}", stderr(&o));

    let a = fx.changes(0.0, 1.0, 60, false);
    fx.write((0.0, 1.0), &a, false);
    let summary = merge(&[&fx.root(), &dest_s, "--format", "delta"]);
    assert_eq!(summary["applied"].as_array().unwrap().len(), 1, "{summary}");
    assert_eq!(delta_log(&dest).0["operation"], "MERGE");
    assert_delta_matches_model(&fx, &dest);

    let o = dynolake(&["ddl", &dest_s, "--location", "s3://lake/orders"], &[]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("LOCATION 's3://lake/orders/'\nTBLPROPERTIES ('table_type'='DELTA');"),
        "{}",
        stdout(&o)
    );
}

/// Merge from S3 into S3, as Parquet and as a Delta table, through the real
/// S3 server of the tests (the Delta log's commits are conditional puts).
#[test]
fn merge_from_and_to_s3() {
    let s3 = S3Server::start();
    let mut fx = Fixture::new(3000, OutputFormat::DynamodbJson);
    let a = fx.changes(0.0, 1.0, 200, false);
    fx.write((0.0, 1.0), &a, false);
    s3.upload_dir(&fx.dir.path().join("exports"), BUCKET, "exports");
    let src = format!("s3://{BUCKET}/exports/orders/");
    let o = dynolake(&["merge", &src, "s3://lake/orders-pq", "--json"], &s3.env());
    assert_code(&o, 0);
    let o = dynolake(&["merge", &src, "s3://lake/orders-delta", "--format", "delta", "--json"], &s3.env());
    assert_code(&o, 0);
    assert!(s3.list("lake", "orders-delta/_delta_log").iter().any(|k| k.ends_with("00000000000000000000.json")));
    // A second change export, merged into the S3 Delta table as one MERGE.
    let b = fx.changes(1.0, 2.0, 100, false);
    let id = fx.write((1.0, 2.0), &b, false);
    s3.upload_dir(&fx.dir.path().join("exports"), BUCKET, "exports");
    let o = dynolake(&["merge", &src, "s3://lake/orders-delta", "--format", "delta", "--json"], &s3.env());
    assert_code(&o, 0);
    let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(summary["applied"], serde_json::json!([id]), "{summary}");
    let n = fx.model.len();
    let q = "SELECT (SELECT count(*) FROM d) AS n, (SELECT count(DISTINCT (pk, sk)) FROM d) AS k";
    let o = dynolake(&["sql", "d=s3://lake/orders-delta", "-e", q, "--format", "csv"], &s3.env());
    assert_code(&o, 0);
    assert_eq!(stdout(&o).lines().nth(1), Some(format!("{n},{n}").as_str()), "{}", stdout(&o));
}

/// A DynamoDB Streams record as a Lambda receives it.
fn stream_record(
    seconds: i64,
    seq: &str,
    keys_img: &Item,
    old: Option<&Item>,
    new: Option<&Item>,
    ttl: bool,
) -> String {
    let img = |it: &Item| {
        let mut s = String::new();
        dynolake::ddb::value::write_item(it, &mut s);
        s
    };
    let event = match (old, new) {
        (_, None) => "REMOVE",
        (None, Some(_)) => "INSERT",
        _ => "MODIFY",
    };
    let mut d = format!("\"ApproximateCreationDateTime\":{seconds},\"Keys\":{}", img(keys_img));
    if let Some(n) = new {
        d.push_str(&format!(",\"NewImage\":{}", img(n)));
    }
    if let Some(o) = old {
        d.push_str(&format!(",\"OldImage\":{}", img(o)));
    }
    d.push_str(&format!(",\"SequenceNumber\":\"{seq}\",\"SizeBytes\":100,\"StreamViewType\":\"NEW_AND_OLD_IMAGES\""));
    let who =
        if ttl { ",\"userIdentity\":{\"type\":\"Service\",\"principalId\":\"dynamodb.amazonaws.com\"}" } else { "" };
    format!(
        "{{\"eventID\":\"{seq}\",\"eventName\":\"{event}\",\"eventVersion\":\"1.1\",\"eventSource\":\"aws:dynamodb\",\"awsRegion\":\"us-east-1\",\"dynamodb\":{{{d}}}{who}}}\n"
    )
}

/// Streams records (a folder of JSON Lines, gzipped or not) as changes: read
/// as a change table by `sql`, and applied by `merge` after the export chain,
/// ordered within a second by sequence numbers compared as integers.
#[test]
fn merge_applies_streams_records_after_the_chain() {
    use std::io::Write;
    let mut fx = Fixture::new(200, OutputFormat::DynamodbJson);
    let a = fx.changes(0.0, 1.0, 40, false);
    fx.write((0.0, 1.0), &a, false);
    // Records in the hour after the export's window; two changes of one key in one second, where
    // the later has the numerically larger but lexically smaller sequence number.
    let t = (fx.t0 + HOUR) / 1000 + 60;
    let keys_of: Vec<Key> = fx.model.keys().take(5).cloned().collect();
    let mut lines = Vec::new();
    let mut r = Rng::new(99);
    let k0 = keys_of[0].clone();
    let old = fx.model[&k0].clone();
    let mid = make(&k0, 111, &mut r);
    let last = make(&k0, 222, &mut r);
    lines.push(stream_record(t, "99999999999999999999999", &keys(&k0), Some(&old), Some(&mid), false));
    lines.push(stream_record(t, "100000000000000000000000", &keys(&k0), Some(&mid), Some(&last), false));
    fx.model.insert(k0, last);
    // A TTL removal, an insert, a modify.
    let k1 = keys_of[1].clone();
    lines.push(stream_record(t + 5, "100000000000000000000100", &keys(&k1), Some(&fx.model[&k1].clone()), None, true));
    fx.model.remove(&k1);
    let kn: Key = ("s-new".into(), 1);
    let new = make(&kn, 5, &mut r);
    lines.push(stream_record(t + 6, "100000000000000000000200", &keys(&kn), None, Some(&new), false));
    fx.model.insert(kn, new);
    let k2 = keys_of[2].clone();
    let changed = make(&k2, 333, &mut r);
    lines.push(stream_record(
        t + 7,
        "100000000000000000000300",
        &keys(&k2),
        Some(&fx.model[&k2].clone()),
        Some(&changed),
        false,
    ));
    fx.model.insert(k2, changed);
    let folder = fx.dir.path().join("streams");
    std::fs::create_dir_all(folder.join("2024/06/01")).unwrap();
    // Shuffled over a plain file and a gzipped one.
    std::fs::write(folder.join("2024/06/01/b.jsonl"), [lines[1].clone(), lines[3].clone()].concat()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all([lines[4].clone(), lines[0].clone(), lines[2].clone()].concat().as_bytes()).unwrap();
    std::fs::write(folder.join("2024/06/01/a.json.gz"), gz.finish().unwrap()).unwrap();

    let streams = folder.display().to_string();
    let q = "SELECT _op, _sequence, _ttl_delete FROM s ORDER BY length(_sequence), _sequence";
    let o = dynolake(&["sql", &format!("s={streams}"), "-e", q, "--format", "csv"], &[]);
    assert_code(&o, 0);
    let out = stdout(&o);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 5, "{out}");
    assert!(rows[0].starts_with("modify,99999999999999999999999,false"), "{out}");
    assert!(rows[2].starts_with("remove,100000000000000000000100,true"), "{out}");

    let dest = fx.dir.path().join("lake");
    let summary = merge(&[&fx.root(), &streams, &dest.display().to_string()]);
    assert_eq!(summary["applied"].as_array().unwrap().len(), 2, "{summary}");
    let to = chrono::DateTime::from_timestamp(t + 7, 0).unwrap().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    assert_eq!(summary["current_to"], to, "current to the newest record");
    assert_eq!(summary["change_scans"], 1, "{summary}");
    assert_matches_model(&fx, &dest);
    // The same with the changes read twice (too big to hold).
    let twice = fx.dir.path().join("lake2");
    let summary = merge(&[&fx.root(), &streams, &twice.display().to_string(), "--changes-memory", "0"]);
    assert_eq!((summary["change_scans"].as_u64(), &summary["current_to"]), (Some(2), &serde_json::json!(to)));
    assert_matches_model(&fx, &twice);
}

/// A partitioned merge with more partitions than open files: the changes'
/// winners spill as rows, the base's unchanged rows as their source lines
/// (decoded after the scan, with the key filter the scan applies). The
/// dataset is the model's, each row in its partition.
#[test]
fn a_partitioned_merge_spills_the_base_as_lines_and_matches_the_model() {
    let mut fx = Fixture::new(600, OutputFormat::DynamodbJson);
    let a = fx.changes(0.0, 2.0, 120, false);
    fx.write((0.0, 2.0), &a, false);
    let dest = fx.dir.path().join("lake");
    let args = ["--partition-by", "tag", "--max-open-files", "1", "--jobs", "2", "--changes-memory", "192"];
    let summary = merge(&[&[fx.root().as_str(), dest.to_str().unwrap()][..], &args[..]].concat());
    assert!(summary["spilled_lines"].as_u64().unwrap() > 0, "{summary}");
    assert!(summary["spilled_lines"].as_u64() < summary["spilled_rows"].as_u64(), "winners spill as rows: {summary}");
    // The model converted, less the partition column the files do not repeat.
    let (_tmp, out) = model_converted(&fx, &last_record(&dest)["schema"]);
    let want = sorted(&out);
    let keep: Vec<usize> = (0..want.num_columns()).filter(|&i| want.schema().field(i).name() != "tag").collect();
    let got = sorted(&dest);
    assert_eq!(got.num_rows(), fx.model.len(), "rows");
    assert_same_columns(&want.project(&keep).unwrap(), &got);
    let mut files = 0;
    for f in walk(&dest).into_iter().filter(|p| p.extension().is_some_and(|x| x == "parquet")) {
        files += 1;
        let dir = f.parent().unwrap().file_name().unwrap().to_str().unwrap().strip_prefix("tag=").unwrap().to_string();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
                .unwrap()
                .build()
                .unwrap();
        let b = concat(&reader.map(|b| b.unwrap()).collect::<Vec<_>>());
        let pk = b.column_by_name("pk").unwrap().as_string::<i32>().clone();
        let sk = arrow::compute::cast(b.column_by_name("sk").unwrap(), &arrow::datatypes::DataType::Int64).unwrap();
        let sk = sk.as_primitive::<arrow::datatypes::Int64Type>();
        for r in 0..b.num_rows() {
            let item = &fx.model[&(pk.value(r).to_string(), sk.value(r))];
            let tag = item.iter().find(|(k, _)| k == "tag").map(|(_, v)| match v {
                V::S(t) => t.clone(),
                other => panic!("tag {other:?}"),
            });
            assert_eq!(tag.as_deref().unwrap_or("__HIVE_DEFAULT_PARTITION__"), dir, "{}", f.display());
        }
    }
    assert!(files > 10, "a file per tag: {files}");
}

/// The library call counts the base's items as the merge reads them (what the progress bar shows):
/// each once, in the pass that writes.
#[test]
fn merge_counts_the_base_items_it_reads() {
    let e = export_with(GenerateOptions { items: 3000, files: 3, incremental: true, ..Default::default() });
    let out = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = dynolake::store::Location::local(e.generated.root.clone()).unwrap();
    let dest = dynolake::store::Location::local(out.path().join("merged")).unwrap();
    let plan = rt.block_on(dynolake::merge::plan(&base, &[], &dest, dynolake::write::files::Format::Parquet)).unwrap();
    assert_eq!(plan.base_export().unwrap().summary.item_count, 3000);
    let progress = Arc::new(dynolake::pipeline::Progress::default());
    let opts = dynolake::merge::MergeOptions { progress: Some(progress.clone()), ..Default::default() };
    let s = dynolake::merge::run(plan, &dest, &opts, &rt).unwrap();
    assert!(s.written && s.change_records > 0, "{s:?}");
    assert_eq!(progress.items.load(std::sync::atomic::Ordering::Relaxed), 3000);
    assert!(progress.uncompressed_bytes.load(std::sync::atomic::Ordering::Relaxed) > 0);
}

/// A base line that cannot be decoded stops the merge with an error naming
/// the data file, the line and the attribute path (the base is read by the
/// pipeline without a rejects file), and nothing is committed.
#[test]
fn a_base_line_that_does_not_decode_stops_the_merge_naming_it() {
    let mut fx = Fixture::new(200, OutputFormat::DynamodbJson);
    let full = std::fs::read_dir(fx.dir.path().join("exports/orders/AWSDynamoDB")).unwrap().next().unwrap().unwrap();
    let file = biggest_data_file(&full.path());
    let mut lines: Vec<String> = read_lines(&file).lines().map(String::from).collect();
    lines[2] = r#"{"Item":{"pk":{"S":"bad"},"sk":{"N":"1"},"v":{"N":"12x"}}}"#.into();
    rewrite_data_file(&full.path(), &file, &(lines.join("\n") + "\n"));
    let a = fx.changes(0.0, 1.0, 20, false);
    fx.write((0.0, 1.0), &a, false);
    let dest = fx.dir.path().join("lake");
    let o = dynolake(&["merge", &fx.root(), &dest.display().to_string()], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(stderr(&o).contains(&format!("{name}:3 at `v`")), "{}", stderr(&o));
    assert!(!dest.join("_dynolake/commits").exists(), "nothing committed");
}

/// `--key` naming an attribute that is no scalar (here a map) is refused with its name and type.
#[test]
fn a_key_that_is_not_a_scalar_is_refused_naming_it() {
    let mut fx = Fixture::new(50, OutputFormat::DynamodbJson);
    let a = fx.changes(0.0, 1.0, 10, false);
    fx.write((0.0, 1.0), &a, false);
    let dest = fx.dir.path().join("lake");
    let o = dynolake(&["merge", &fx.root(), &dest.display().to_string(), "--key", "pk,doc"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("key column `doc` has type Struct"), "{}", stderr(&o));
    assert!(!dest.join("_dynolake/commits").exists(), "nothing committed");
}
