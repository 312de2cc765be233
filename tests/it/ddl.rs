//! `dynolake ddl`: golden text for the sample export and an export full of
//! awkward names, every statement parsed by an independent SQL parser, and
//! byte-identical output run after run.

use std::path::PathBuf;

use datafusion::sql::sqlparser::dialect::{Dialect, DuckDbDialect, SparkSqlDialect as HiveDialect};
use datafusion::sql::sqlparser::parser::Parser;
use dynolake::generate::GenerateOptions;

use crate::support::*;

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/ddl").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("no golden file {}: run once with UPDATE_SNAPSHOTS=1 and review it", path.display())
    });
    assert_eq!(actual, expected, "{name} differs from {}", path.display());
}

/// Split at `;` line ends (the generated text puts one statement per `;\n`).
fn statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if line.starts_with("--") {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if line.trim_end().ends_with(';') {
            out.push(cur.trim().trim_end_matches(';').to_string());
            cur.clear();
        }
    }
    assert!(cur.trim().is_empty(), "trailing text without `;`: {cur}");
    out
}

fn parses(dialect: &dyn Dialect, sql: &str) {
    if let Err(e) = Parser::parse_sql(dialect, sql) {
        panic!("does not parse ({e}):\n{sql}");
    }
}

/// Athena's query engine (Trino) spells collection types `row(name T, …)`,
/// `array(T)` and `map(K, V)`; sqlparser's DuckDB dialect has the same types as
/// `STRUCT(name T, …)`, `T[]` and `MAP(K, V)`, plus Trino's lambdas. Respell
/// just those type constructors (the value constructor `ROW(` is upper case and
/// left alone), then parse.
fn parses_trino(sql: &str) {
    let mut s = sql.replace("row(", "STRUCT(").replace("map(", "MAP(");
    while let Some(i) = s.find("array(") {
        let open = i + "array".len();
        let mut depth = 0;
        let mut close = open;
        for (j, c) in s[open..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        close = open + j;
                        break;
                    }
                }
                _ => {}
            }
        }
        s = format!("{}{}[]{}", &s[..i], &s[open + 1..close], &s[close + 1..]);
    }
    parses(&DuckDbDialect {}, &s);
}

fn ddl(args: &[&str]) -> String {
    let o = dynolake(&[&["ddl"], args].concat(), &[]);
    assert_code(&o, 0);
    let first = stdout(&o);
    let again = dynolake(&[&["ddl"], args].concat(), &[]);
    assert_eq!(stdout(&again), first, "the same input gives the same bytes");
    first
}

fn dataset(e: &TestExport, out: &std::path::Path, parts: &[&str]) -> PathBuf {
    let dest = out.join("orders");
    let mut args = vec!["convert", e.generated.full_export_dir.to_str().unwrap(), dest.to_str().unwrap(), "-q"];
    for p in parts {
        args.extend_from_slice(&["-p", p]);
    }
    assert_code(&dynolake(&args, &[]), 0);
    dest
}

#[test]
fn dataset_tables_for_athena_and_glue() {
    let e = export_with(GenerateOptions { items: 600, files: 2, seed: 11, ..Default::default() });
    let out = tempfile::tempdir().unwrap();
    let dest = dataset(&e, out.path(), &["status", "day(createdAt)"]);
    let d = dest.to_str().unwrap();
    let loc = ["--location", "s3://lake/orders", "--database", "analytics", "--table", "orders"];

    let projection = ddl(&[&[d][..], &loc].concat());
    golden("dataset_projection.sql", &projection);
    for s in statements(&projection) {
        parses(&HiveDialect {}, &s);
    }
    assert!(projection.contains("'projection.created_at_day.type'='date'"));
    assert!(projection.contains("'projection.status.type'='enum'"));

    let explicit = ddl(&[&[d][..], &loc, &["--partitions", "explicit"]].concat());
    golden("dataset_explicit.sql", &explicit);
    let stmts = statements(&explicit);
    assert!(stmts.len() >= 2);
    parses(&HiveDialect {}, &stmts[0]);
    for s in &stmts[1..] {
        assert!(s.starts_with("ALTER TABLE `analytics`.`orders` ADD IF NOT EXISTS PARTITION (`status`="), "{s}");
        parses(&HiveDialect {}, s);
    }

    let glue = ddl(&[&[d][..], &loc, &["--format", "glue"]].concat());
    golden("dataset_glue.json", &glue);
    let v: serde_json::Value = serde_json::from_str(&glue).unwrap();
    assert_eq!(v["PartitionKeys"][0]["Name"], "status");
    let cols = v["StorageDescriptor"]["Columns"].as_array().unwrap();
    // Consistent with the Athena DDL: the same columns, in the same order, of the same types.
    for c in cols {
        let line = format!("`{}` {} COMMENT", c["Name"].as_str().unwrap(), c["Type"].as_str().unwrap());
        assert!(projection.contains(&line), "{line}");
    }
}

#[test]
fn raw_export_table_view_and_ctas() {
    let e = export_with(GenerateOptions { items: 600, files: 2, seed: 11, ..Default::default() });
    let args = [
        e.generated.full_export_dir.to_str().unwrap(),
        "--database",
        "raw",
        "--location",
        "s3://exports/AWSDynamoDB/x/data/",
        "--ctas",
        "--ctas-location",
        "s3://lake/orders_ctas/",
        "-p",
        "status",
        "-p",
        "day(createdAt)",
    ];
    let text = ddl(&args);
    golden("raw_ctas.sql", &text);
    let stmts = statements(&text);
    parses(&HiveDialect {}, &stmts[0]);
    assert!(stmts[0].contains("ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'"));
    for s in &stmts[1..] {
        parses_trino(s);
    }
    // More than 100 partitions: a CTAS, then INSERT INTO batches of at most 100.
    let ctas = stmts.iter().filter(|s| s.starts_with("CREATE TABLE")).count();
    let inserts = stmts.iter().filter(|s| s.starts_with("INSERT INTO")).count();
    assert_eq!(ctas, 1);
    assert!(inserts >= 1, "{text}");
    for s in stmts.iter().filter(|s| s.starts_with("CREATE TABLE") || s.starts_with("INSERT INTO")) {
        let tuples = s.matches(" AND ").count();
        assert!(tuples > 0 && tuples <= 100, "at most 100 partitions per statement, got {tuples}");
    }
}

#[test]
fn awkward_names_are_quoted_mapped_and_collision_free() {
    let e = export_with(GenerateOptions { items: 300, files: 1, seed: 5, awkward_names: true, ..Default::default() });
    // A 64 KB attribute name too.
    let f = biggest_data_file(&e.generated.full_export_dir);
    let long = "n".repeat(65_000);
    let mut lines = read_lines(&f);
    lines.push_str(&format!("{{\"Item\":{{\"orderId\":{{\"S\":\"long\"}},\"{long}\":{{\"S\":\"x\"}}}}}}\n"));
    rewrite_data_file(&e.generated.full_export_dir, &f, &lines);

    let raw = ddl(&[
        e.generated.full_export_dir.to_str().unwrap(),
        "--database",
        "raw",
        "--location",
        "s3://x/AWSDynamoDB/y/data/",
    ]);
    let stmts = statements(&raw);
    parses(&HiveDialect {}, &stmts[0]);
    parses_trino(&stmts[1]);
    assert!(raw.contains("'case.insensitive'='false'"));
    assert!(raw.contains("'mapping.url'='URL'") || raw.contains("'mapping.url_2'='URL'"));
    assert!(raw.contains("'mapping.item_price'='item.price'"));
    assert!(raw.contains("'mapping.ship_to_city'='ship-to city'"));
    let without_long = raw.replace(&long, "LONG");
    golden("raw_awkward.sql", &without_long);

    let out = tempfile::tempdir().unwrap();
    let dest = dataset(&e, out.path(), &[]);
    let t = ddl(&[dest.to_str().unwrap(), "--location", "s3://lake/awkward", "--table", "select"]);
    parses(&HiveDialect {}, &statements(&t)[0]);
    for col in ["`url`", "`url_2`", "`item_price`", "`ship_to_city`", "`gr_e`", "`select`", "`_9lives`", "`a_b`"] {
        assert!(t.contains(col), "{col} in\n{t}");
    }
    assert!(t.lines().all(|l| l.len() < 1000), "names are cut to 255 bytes");
    golden("dataset_awkward.sql", &t);
}

/// `--merge-into`: the Iceberg table from the full export, then one MERGE per
/// incremental export that reads exactly the files its manifest lists.
#[test]
fn merge_into_statements_read_only_each_exports_files() {
    let e = export_with(GenerateOptions { items: 300, incremental: true, ..Default::default() });
    let inc_id = e.generated.incremental_export_id.clone().unwrap();
    let root = e.generated.root.display().to_string();
    let out = ddl(&[&root, "--merge-into", "s3://lake/orders_current", "--database", "db"]);
    let stmts = statements(&out);
    assert!(out.contains("TBLPROPERTIES ('table_type'='ICEBERG');"), "{out}");
    assert!(out.contains("LOCATION 's3://lake/orders_current/'"), "{out}");
    let merges: Vec<&String> = stmts.iter().filter(|s| s.contains("MERGE INTO")).collect();
    assert_eq!(merges.len(), 1, "one MERGE per incremental export");
    assert!(out.contains(&format!("Incremental export {inc_id}")), "{out}");
    // The `$path` list is the manifest's files, as S3 URIs, and nothing else.
    let manifest =
        std::fs::read_to_string(e.generated.root.join("AWSDynamoDB").join(&inc_id).join("manifest-files.json"))
            .unwrap();
    let mut want: Vec<String> = manifest
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| format!("'s3://example-bucket/{}'", v["dataFileS3Key"].as_str().unwrap()))
        .collect();
    want.sort();
    let m = merges[0];
    let list = &m[m.find("\"$path\" IN (").unwrap() + 12..];
    let list = &list[..list.find(')').unwrap()];
    let mut got: Vec<String> = list.split(", ").map(str::to_string).collect();
    got.sort();
    assert_eq!(got, want);
    for clause in [
        "WHEN MATCHED AND s.\"_removed\" THEN DELETE",
        "WHEN MATCHED THEN UPDATE SET",
        "WHEN NOT MATCHED AND NOT s.\"_removed\" THEN INSERT",
    ] {
        assert!(m.contains(clause), "{clause}: {m}");
    }
    parses_trino(m);
    let changes = stmts.iter().find(|s| s.contains("orders_changes_raw") && s.contains("CREATE EXTERNAL")).unwrap();
    parses(&HiveDialect {}, changes);
    // The Iceberg table has convert's columns.
    let create = stmts.iter().find(|s| s.contains("CREATE TABLE")).unwrap();
    assert!(create.contains("`amount` decimal(18,2)") && create.contains("`scores` array<decimal(18,2)>"), "{create}");
}
