//! `dynolake sql`: the example queries against snapshots, exact answers checked
//! independently, pushdown visible in EXPLAIN, and errors that help.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dynolake::generate::GenerateOptions;

use crate::decode::norm_number;
use crate::support::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The export the snapshots were taken from, and its conversion.
fn fixture() -> (TestExport, tempfile::TempDir) {
    let e = export_with(GenerateOptions { items: 3000, files: 3, seed: 7, ..Default::default() });
    let out = tempfile::tempdir().unwrap();
    let o = dynolake(
        &[
            "convert",
            e.generated.full_export_dir.to_str().unwrap(),
            out.path().join("lake").to_str().unwrap(),
            "-p",
            "status",
            "-q",
        ],
        &[],
    );
    assert_code(&o, 0);
    (e, out)
}

fn sql(args: &[&str]) -> std::process::Output {
    dynolake(&[&["sql"], args].concat(), &[])
}

/// Compare with `tests/snapshots/sql/NAME.csv`; `UPDATE_SNAPSHOTS=1` rewrites it.
fn snapshot(name: &str, actual: &str) {
    let path = repo().join("tests/snapshots/sql").join(format!("{name}.csv"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("no snapshot {}: run the tests once with UPDATE_SNAPSHOTS=1 and review it", path.display())
    });
    assert_eq!(actual, expected, "{name}: result differs from {}", path.display());
}

#[test]
fn example_queries_match_their_snapshots() {
    let (e, out) = fixture();
    let export = format!("orders={}", e.dir.path().display());
    let lake = format!("lake={}", out.path().join("lake").display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("sql"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 6);
    for f in files {
        let o = sql(&[&export, &lake, "-f", f.to_str().unwrap(), "--format", "csv"]);
        assert_code(&o, 0);
        let name = f.file_stem().unwrap().to_str().unwrap().to_string();
        snapshot(&name, &stdout(&o));
    }
}

/// The revenue per status, computed from the export's JSON with serde_dynamo and exact decimal sums.
fn independent_revenue(export_dir: &Path) -> BTreeMap<String, (u64, i128)> {
    let mut out: BTreeMap<String, (u64, i128)> = BTreeMap::new();
    for (_, item) in source_items(export_dir) {
        let serde_dynamo::AttributeValue::S(status) = &item["status"] else { panic!() };
        let serde_dynamo::AttributeValue::N(amount) = &item["amount"] else { panic!() };
        let (neg, digits, exp) = norm_number(amount);
        let mut cents: i128 = if digits.is_empty() { 0 } else { digits.parse().unwrap() };
        for _ in 0..(exp + 2) {
            cents *= 10;
        }
        assert!(exp >= -2);
        if neg {
            cents = -cents;
        }
        let e = out.entry(status.clone()).or_default();
        e.0 += 1;
        e.1 += cents;
    }
    out
}

#[test]
fn sums_over_a_raw_export_and_a_dataset_are_exact() {
    let (e, out) = fixture();
    let want = independent_revenue(&e.generated.full_export_dir);
    let q = "SELECT status, count(*) AS n, sum(amount) AS total FROM t GROUP BY status ORDER BY status";
    for table in [format!("t={}", e.dir.path().display()), format!("t={}", out.path().join("lake").display())] {
        let o = sql(&[&table, "-e", q, "--format", "csv"]);
        assert_code(&o, 0);
        let got: BTreeMap<String, (u64, i128)> = stdout(&o)
            .lines()
            .skip(1)
            .map(|l| {
                let p: Vec<&str> = l.split(',').collect();
                (p[0].to_string(), (p[1].parse().unwrap(), p[2].replace('.', "").parse().unwrap()))
            })
            .collect();
        assert_eq!(got, want, "{table}");
    }
}

#[test]
fn projection_limit_and_partition_pruning_show_in_explain() {
    let (e, out) = fixture();
    let export = format!("orders={}", e.dir.path().display());
    let o = sql(&[&export, "-e", "EXPLAIN SELECT status, sum(amount) FROM orders GROUP BY status", "--format", "csv"]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("projection=[amount, status]") || stdout(&o).contains("projection=[status, amount]"),
        "{}",
        stdout(&o)
    );
    let o = sql(&[&export, "-e", "EXPLAIN SELECT order_id FROM orders LIMIT 10", "--format", "csv"]);
    assert!(stdout(&o).contains("limit=10"), "{}", stdout(&o));
    let o = sql(&[&export, "-e", "SELECT order_id FROM orders LIMIT 10", "--format", "csv"]);
    assert_eq!(stdout(&o).lines().count(), 11);

    let lake = format!("lake={}", out.path().join("lake").display());
    let o = sql(&[&lake, "-e", "EXPLAIN SELECT sum(amount) FROM lake WHERE status = 'PAID'", "--format", "csv"]);
    assert_code(&o, 0);
    let plan = stdout(&o);
    assert!(plan.contains("status=PAID"), "{plan}");
    for other in ["status=DELIVERED", "status=SHIPPED", "status=PENDING", "status=CANCELLED"] {
        assert!(!plan.contains(other), "{other} must be pruned: {plan}");
    }
}

#[test]
fn errors_say_what_is_there() {
    let (e, _out) = fixture();
    let export = format!("orders={}", e.dir.path().display());
    let o = sql(&[&export, "-e", "SELECT * FROM nope"]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("the tables are: orders"), "{}", stderr(&o));
    let o = sql(&[&export, "-e", "SELEC 1"]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("SELEC"), "{}", stderr(&o));
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("readme.txt"), "x").unwrap();
    let o = sql(&[empty.path().to_str().unwrap(), "-e", "SELECT 1"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("neither a DynamoDB export nor a Parquet dataset"), "{}", stderr(&o));
}

#[test]
fn a_corrupted_file_is_an_error_not_a_wrong_answer() {
    let e = small_export();
    let f = biggest_data_file(&e.generated.full_export_dir);
    let mut lines = read_lines(&f);
    lines = lines.replacen("\"status\":{\"S\":\"", "\"status\":{\"S\":\"X", 1);
    // Rewrite the data but keep the old manifest: a silent change.
    let keep = std::fs::read(e.generated.full_export_dir.join("manifest-files.json")).unwrap();
    let keep_md5 = std::fs::read(e.generated.full_export_dir.join("manifest-files.md5")).unwrap();
    let keep_s = std::fs::read(e.generated.full_export_dir.join("manifest-summary.json")).unwrap();
    let keep_smd5 = std::fs::read(e.generated.full_export_dir.join("manifest-summary.md5")).unwrap();
    rewrite_data_file(&e.generated.full_export_dir, &f, &lines);
    std::fs::write(e.generated.full_export_dir.join("manifest-files.json"), keep).unwrap();
    std::fs::write(e.generated.full_export_dir.join("manifest-files.md5"), keep_md5).unwrap();
    std::fs::write(e.generated.full_export_dir.join("manifest-summary.json"), keep_s).unwrap();
    std::fs::write(e.generated.full_export_dir.join("manifest-summary.md5"), keep_smd5).unwrap();
    let o = sql(&[e.dir.path().to_str().unwrap(), "-e", "SELECT status, count(*) FROM orders GROUP BY status"]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("MD5 mismatch"), "{}", stderr(&o));
}

#[test]
fn sql_over_s3_and_results_to_parquet() {
    let s3 = S3Server::start();
    let e = export_with(GenerateOptions { items: 400, files: 2, ..Default::default() });
    s3.upload_dir(e.dir.path(), BUCKET, "tables/orders");
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("r.parquet");
    let o = dynolake(
        &[
            "sql",
            &format!("s3://{BUCKET}/tables/orders"),
            "-e",
            "SELECT order_id, amount, tags FROM orders",
            "--format",
            "parquet",
            "-o",
            file.to_str().unwrap(),
        ],
        &s3.env(),
    );
    assert_code(&o, 0);
    let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
        .unwrap();
    let rows: usize = r.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 400);
    // The result file is a table too (named after it).
    let o = dynolake(&["sql", file.to_str().unwrap(), "-e", "SELECT count(*) AS n FROM r", "--format", "csv"], &[]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "n\n400\n");
}

/// Queries run with the first items' schema when every value they decode fits it, are run again
/// with the exact schema when one does not, and the exact schema is cached per export.
#[test]
fn queries_check_the_first_items_schema_and_cache_the_exact_one() {
    let cache = tempfile::tempdir().unwrap();
    let env = [("DYNOLAKE_CACHE_DIR", cache.path().display().to_string())];
    let src = repo().join("examples/orders").display().to_string();
    let run = |q: &str, first: &str, env: &[(&str, String)]| {
        let o = dynolake(&["sql", src.as_str(), "-e", q, "--format", "csv", "--first-items", first], env);
        assert_code(&o, 0);
        o
    };
    let cached = || walk(cache.path()).len();
    // What the exact schema gives, from a schema file (no cache involved).
    let dir = tempfile::tempdir().unwrap();
    let exact_file = dir.path().join("exact-orders.json");
    assert_code(&dynolake(&["schema", &src, "-o", exact_file.to_str().unwrap()], &[]), 0);
    let exact = |q: &str| {
        let o = dynolake(&["sql", &src, "-e", q, "--format", "csv", "--schema", exact_file.to_str().unwrap()], &[]);
        assert_code(&o, 0);
        stdout(&o)
    };

    // status and amount have one type throughout: the first 10 items' schema holds every value.
    let fits = "SELECT status, count(*), sum(amount) FROM orders GROUP BY status ORDER BY status";
    let o = run(fits, "10", &env);
    assert_eq!(stdout(&o), exact(fits));
    assert!(!stderr(&o).contains("running the query again"), "{}", stderr(&o));
    assert_eq!(cached(), 0, "nothing was inferred exactly");

    // payload is a string in the first 100 items and a map in later ones.
    let drifts = "SELECT count(payload), count(DISTINCT payload) FROM orders";
    let o = run(drifts, "100", &env);
    let err = stderr(&o);
    assert!(err.contains("values of payload did not fit") && err.contains("running the query again"), "{err}");
    assert_eq!(stdout(&o), exact(drifts));
    assert_eq!(cached(), 1, "the exact schema is cached");

    // The next run takes the schema from the cache: a renamed column in the cached file shows it.
    let file = walk(cache.path()).pop().unwrap();
    let text = std::fs::read_to_string(&file).unwrap().replace("\"column\": \"status\"", "\"column\": \"state\"");
    std::fs::write(&file, text).unwrap();
    let o = run("SELECT count(DISTINCT state) FROM orders", "10", &env);
    assert_eq!(stdout(&o).lines().nth(1), Some("5"), "{}", stdout(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));

    // Written to a file: aside first, renamed once checked; with a value that does not fit, run again.
    let fresh = tempfile::tempdir().unwrap();
    let fresh_env = [("DYNOLAKE_CACHE_DIR", fresh.path().display().to_string())];
    let file = dir.path().join("drift.csv");
    let o = dynolake(
        &["sql", &src, "-e", drifts, "--format", "csv", "--first-items", "100", "-o", file.to_str().unwrap()],
        &fresh_env,
    );
    assert_code(&o, 0);
    assert!(stderr(&o).contains("values of payload did not fit"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), exact(drifts));
    let fits_file = dir.path().join("fits.csv");
    let o = dynolake(
        &["sql", &src, "-e", fits, "--format", "csv", "--first-items", "10", "-o", fits_file.to_str().unwrap()],
        &fresh_env,
    );
    assert_code(&o, 0);
    assert_eq!(std::fs::read_to_string(&fits_file).unwrap(), exact(fits));
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.contains(".dynolake-")), "nothing left aside: {names:?}");

    // A column none of the first items has: planned again with the exact schema.
    let absent = "SELECT max(precise) FROM orders";
    let o = run(absent, "10", &[]);
    assert!(stderr(&o).contains("not among the first items' attributes"), "{}", stderr(&o));
    assert_eq!(stdout(&o), exact(absent));
}
