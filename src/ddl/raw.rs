//! Athena over a raw export: the JSON SerDe table, a view that unwraps the
//! type descriptors, and CTAS statements that convert inside Athena.
//!
//! The table follows AWS's documented shape, `Item struct<attr:struct<S:string>, …>`,
//! with one member per descriptor that occurs. Athena lower-cases column names
//! and the OpenX JSON SerDe matches JSON keys case-insensitively by default; when
//! two keys would collide (`URL`, `Url`) or a key is not a legal column name, the
//! table sets `case.insensitive=false` and maps every Hive name to its exact JSON
//! key with `mapping.*` properties (the mapping is by name, at every level).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{dq, lit, tick, trino_type};
use crate::schema::names::safe_name;
use crate::schema::{ColumnType, Field, Schema, TimestampSource};
use crate::write::partition::{PartitionSpec, Transform};

const SCALARS: [&str; 4] = ["S", "N", "B", "BOOL"];

/// Hive names for JSON keys, and whether `mapping.*` is needed.
pub struct RawNames {
    names: HashMap<String, String>,
    pub mapping: bool,
}

fn legal(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl RawNames {
    pub fn new(schema: &Schema) -> RawNames {
        RawNames::with_members(schema, &["Item"])
    }

    /// Names for a table whose lines hold `members` (`Item`; or `Metadata`, `Keys`, … for changes).
    pub fn with_members(schema: &Schema, members: &[&str]) -> RawNames {
        let mut keys: Vec<String> = members.iter().map(|m| m.to_string()).collect();
        keys.extend(["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"].map(String::from));
        fn collect(fields: &[Field], keys: &mut Vec<String>) {
            for f in fields {
                keys.push(f.attribute.clone());
                if let Some(inner) = f.ty.struct_fields() {
                    collect(inner, keys);
                }
            }
        }
        collect(&schema.fields, &mut keys);
        let mut seen = HashSet::new();
        keys.retain(|k| seen.insert(k.clone()));
        let mut lower: HashMap<String, usize> = HashMap::new();
        for k in &keys {
            *lower.entry(k.to_lowercase()).or_default() += 1;
        }
        let mapping = keys.iter().any(|k| !legal(&k.to_lowercase()) || lower[&k.to_lowercase()] > 1);
        let mut names = HashMap::new();
        let mut taken: HashSet<String> = HashSet::new();
        for k in &keys {
            let low = k.to_lowercase();
            let name = if legal(&low) && !taken.contains(&low) {
                low
            } else {
                let mut v = vec![safe_name(k)];
                crate::schema::names::dedupe(&mut v, &mut taken.clone());
                v.pop().unwrap()
            };
            taken.insert(name.clone());
            names.insert(k.clone(), name);
        }
        RawNames { names, mapping }
    }

    pub fn hive<'a>(&'a self, key: &'a str) -> &'a str {
        self.names.get(key).map(String::as_str).unwrap_or(key)
    }

    /// `WITH SERDEPROPERTIES (…)` when names need mapping (exact, case-sensitive keys), else nothing.
    pub fn serde_properties(&self) -> String {
        if !self.mapping {
            return String::new();
        }
        let mut props = vec![("case.insensitive".to_string(), "false".to_string())];
        props.extend(self.mappings());
        let props: Vec<String> = props.iter().map(|(k, v)| format!("  {}={}", lit(k), lit(v))).collect();
        format!("WITH SERDEPROPERTIES (\n{}\n)\n", props.join(",\n"))
    }

    /// `mapping.<hive>` = `<json key>` for every name that differs, sorted.
    pub fn mappings(&self) -> Vec<(String, String)> {
        let mut m: Vec<(String, String)> =
            self.names.iter().filter(|(k, v)| k != v).map(|(k, v)| (format!("mapping.{v}"), k.clone())).collect();
        m.sort();
        m
    }
}

/// The descriptors a column's values may carry, from what was seen, else from its type.
fn descriptors(f: Option<&Field>, ty: &ColumnType) -> Vec<String> {
    if let Some(f) = f {
        let seen: Vec<String> = f.seen.keys().filter(|k| *k != "NULL").cloned().collect();
        if !seen.is_empty() {
            return seen;
        }
    }
    let v: Vec<&str> = match ty {
        ColumnType::String => SCALARS.to_vec(),
        ColumnType::Int64 | ColumnType::Decimal { .. } | ColumnType::Number | ColumnType::Float64 => vec!["N"],
        ColumnType::Timestamp(TimestampSource::Iso8601) => vec!["S"],
        ColumnType::Timestamp(_) => vec!["N"],
        ColumnType::Boolean => vec!["BOOL"],
        ColumnType::Binary => vec!["B"],
        ColumnType::List(_) => vec!["L"],
        ColumnType::Set(e) => match e.as_ref() {
            ColumnType::String => vec!["SS"],
            ColumnType::Binary => vec!["BS"],
            _ => vec!["NS"],
        },
        ColumnType::Map(_) | ColumnType::Struct(_) => vec!["M"],
        ColumnType::Json => vec!["S", "N", "B", "BOOL", "M", "L", "SS", "NS", "BS"],
    };
    v.into_iter().map(String::from).collect()
}

/// The SerDe type of one attribute value: `struct<S:string, …>`.
fn raw_type(f: Option<&Field>, ty: &ColumnType, n: &RawNames) -> String {
    let members: Vec<String> = descriptors(f, ty)
        .iter()
        .map(|d| {
            let t = match d.as_str() {
                "S" | "N" | "B" => "string".to_string(),
                "BOOL" => "boolean".to_string(),
                "SS" | "NS" | "BS" => "array<string>".to_string(),
                "M" => match ty {
                    ColumnType::Struct(fs) => {
                        let inner: Vec<String> = fs
                            .iter()
                            .map(|c| format!("{}:{}", tick(n.hive(&c.attribute)), raw_type(Some(c), &c.ty, n)))
                            .collect();
                        format!("struct<{}>", inner.join(","))
                    }
                    ColumnType::Map(v) => format!("map<string,{}>", raw_type(None, v, n)),
                    _ => "string".to_string(),
                },
                "L" => match ty {
                    ColumnType::List(e) => format!("array<{}>", raw_type(None, e, n)),
                    _ => "string".to_string(),
                },
                _ => "string".to_string(),
            };
            format!("{}:{t}", tick(n.hive(d)))
        })
        .collect();
    format!("struct<{}>", members.join(","))
}

/// Where the data of a raw table lives, and what it covers.
pub struct RawSource<'a> {
    pub database: Option<&'a str>,
    pub table: &'a str,
    /// The export's data folder (`s3://…/AWSDynamoDB/<id>/data/`).
    pub data_location: &'a str,
    pub export_id: &'a str,
    pub schema: &'a Schema,
    /// The export is `outputFormat: ION` (Athena's Ion SerDe reads it).
    pub ion: bool,
}

fn qualified(db: Option<&str>, t: &str, q: fn(&str) -> String) -> String {
    match db {
        Some(d) => format!("{}.{}", q(d), q(t)),
        None => q(t),
    }
}

/// The JSON SerDe table over a full export's data files (the Ion SerDe
/// table for an ION export).
pub fn raw_table(src: &RawSource) -> String {
    if src.ion {
        return ion_raw_table(src);
    }
    let n = RawNames::new(src.schema);
    let members: Vec<String> = src
        .schema
        .fields
        .iter()
        .map(|f| format!("    {}:{}", tick(n.hive(&f.attribute)), raw_type(Some(f), &f.ty, &n)))
        .collect();
    let mut s = format!(
        "-- The raw data files of export {} (a full export: its own data folder, no other export).\n",
        src.export_id
    );
    s.push_str(&format!("CREATE EXTERNAL TABLE IF NOT EXISTS {} (\n", qualified(src.database, src.table, tick)));
    s.push_str(&format!("  {} struct<\n{}\n  >\n)\n", tick(n.hive("Item")), members.join(",\n")));
    s.push_str("ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\n");
    s.push_str(&n.serde_properties());
    s.push_str(&format!("LOCATION {}\n", lit(&format!("{}/", src.data_location.trim_end_matches('/')))));
    s.push_str("TBLPROPERTIES ('classification'='json', 'compressionType'='gzip');\n");
    s
}

/// A Trino expression that unwraps the descriptor struct `base` into `ty`.
fn unwrap_expr(ty: &ColumnType, base: &str, descs: &[String], n: &RawNames, depth: usize) -> String {
    let m = |d: &str| format!("{base}.{}", dq(n.hive(d)));
    let has = |d: &str| descs.iter().any(|x| x == d);
    match ty {
        ColumnType::String => {
            let parts: Vec<String> = descs
                .iter()
                .filter_map(|d| match d.as_str() {
                    "S" | "N" | "B" => Some(m(d)),
                    "BOOL" => Some(format!("CAST({} AS varchar)", m(d))),
                    _ => None,
                })
                .collect();
            match parts.len() {
                0 => "CAST(NULL AS varchar)".into(),
                1 => parts[0].clone(),
                _ => format!("coalesce({})", parts.join(", ")),
            }
        }
        ColumnType::Int64 => format!("CAST({} AS bigint)", m("N")),
        ColumnType::Decimal { precision, scale } => format!("CAST({} AS decimal({precision},{scale}))", m("N")),
        ColumnType::Number => m("N"),
        ColumnType::Float64 => format!("CAST({} AS double)", m("N")),
        ColumnType::Boolean => m("BOOL"),
        ColumnType::Binary => format!("from_base64({})", m("B")),
        ColumnType::Timestamp(TimestampSource::Iso8601) => {
            format!("CAST(from_iso8601_timestamp({}) AS timestamp(3))", m("S"))
        }
        ColumnType::Timestamp(src) => {
            let div = match src {
                TimestampSource::EpochSeconds => "1",
                TimestampSource::EpochMillis => "1000",
                _ => "1000000",
            };
            format!("CAST(from_unixtime(CAST({} AS double) / {div}) AS timestamp(3))", m("N"))
        }
        ColumnType::Json => format!("json_format(CAST({base} AS json))"),
        ColumnType::Set(e) => {
            let x = format!("x{depth}");
            match e.as_ref() {
                ColumnType::String => m("SS"),
                ColumnType::Binary => format!("transform({}, {x} -> from_base64({x}))", m("BS")),
                other => format!("transform({}, {x} -> CAST({x} AS {}))", m("NS"), trino_type(other)),
            }
        }
        ColumnType::List(e) if has("L") || descs.is_empty() => {
            let x = format!("x{depth}");
            let inner = unwrap_expr(e, &x, &descriptors(None, e), n, depth + 1);
            format!("transform({}, {x} -> ({inner}))", m("L"))
        }
        ColumnType::Map(v) => {
            let (k, x) = (format!("k{depth}"), format!("v{depth}"));
            let inner = unwrap_expr(v, &x, &descriptors(None, v), n, depth + 1);
            format!("transform_values({}, ({k}, {x}) -> ({inner}))", m("M"))
        }
        ColumnType::Struct(fs) => {
            let mm = m("M");
            let members: Vec<String> = fs
                .iter()
                .map(|f| {
                    unwrap_expr(
                        &f.ty,
                        &format!("{mm}.{}", dq(n.hive(&f.attribute))),
                        &descriptors(Some(f), &f.ty),
                        n,
                        depth + 1,
                    )
                })
                .collect();
            format!("CASE WHEN {mm} IS NULL THEN NULL ELSE CAST(ROW({}) AS {}) END", members.join(", "), trino_type(ty))
        }
        ColumnType::List(_) => "NULL".into(),
    }
}

/// A view over the raw table with the columns and types `convert` writes.
pub fn raw_view(src: &RawSource, view: &str) -> String {
    if src.ion {
        return ion_raw_view(src, view);
    }
    let n = RawNames::new(src.schema);
    let item = dq(n.hive("Item"));
    let cols: Vec<String> = src
        .schema
        .fields
        .iter()
        .map(|f| {
            let base = format!("{item}.{}", dq(n.hive(&f.attribute)));
            format!("  {} AS {}", unwrap_expr(&f.ty, &base, &descriptors(Some(f), &f.ty), &n, 0), dq(&f.column))
        })
        .collect();
    format!(
        "-- Clean columns over {}: descriptors unwrapped, numbers cast exactly.\nCREATE OR REPLACE VIEW {} AS\nSELECT\n{}\nFROM {};\n",
        qualified(src.database, src.table, dq),
        qualified(src.database, view, dq),
        cols.join(",\n"),
        qualified(src.database, src.table, dq)
    )
}

/// The type an ION export's value is read as by the Ion SerDe, where it is
/// not the column's own: Ion has no timestamp the export uses (ISO-8601
/// strings stay strings, epochs are decimals) and no JSON (a mixed value is
/// read as its Ion text).
fn ion_read_type(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Timestamp(TimestampSource::Iso8601) => "string".into(),
        ColumnType::Timestamp(_) => "decimal(38,6)".into(),
        other => super::athena_type(other),
    }
}

/// Athena's Ion SerDe over an ION export's data files: one column per
/// attribute, taken from the item by a path extractor (exact, case-sensitive
/// attribute names; the column names are `convert`'s), typed as `convert`
/// types it. Ion values carry their own types, so there are no descriptor
/// structs to unwrap; decimals are read into the declared numeric type and a
/// value that does not fit fails the query (`ion.fail_on_overflow`) instead
/// of being cut.
fn ion_raw_table(src: &RawSource) -> String {
    let cols: Vec<String> =
        src.schema.fields.iter().map(|f| format!("  {} {}", tick(&f.column), ion_read_type(&f.ty))).collect();
    let mut props = vec![
        ("ion.encoding".to_string(), "TEXT".to_string()),
        ("ion.fail_on_overflow".to_string(), "true".to_string()),
        ("ion.path_extractor.case_sensitive".to_string(), "true".to_string()),
    ];
    for f in &src.schema.fields {
        let mut name = String::new();
        crate::ddb::value::write_ion_field_name(&f.attribute, &mut name);
        props.push((format!("ion.{}.path_extractor", f.column), format!("(Item {name})")));
    }
    let props: Vec<String> = props.iter().map(|(k, v)| format!("  {}={}", lit(k), lit(v))).collect();
    let mut s = format!(
        "-- The raw data files of export {} (a full ION export: Amazon Ion text, one item per line).\n",
        src.export_id
    );
    s.push_str(&format!("CREATE EXTERNAL TABLE IF NOT EXISTS {} (\n", qualified(src.database, src.table, tick)));
    s.push_str(&cols.join(",\n"));
    s.push_str("\n)\nROW FORMAT SERDE 'com.amazon.ionhiveserde.IonHiveSerDe'\n");
    s.push_str(&format!("WITH SERDEPROPERTIES (\n{}\n)\n", props.join(",\n")));
    s.push_str("STORED AS INPUTFORMAT 'com.amazon.ionhiveserde.formats.IonInputFormat'\n");
    s.push_str("OUTPUTFORMAT 'com.amazon.ionhiveserde.formats.IonOutputFormat'\n");
    s.push_str(&format!("LOCATION {};\n", lit(&format!("{}/", src.data_location.trim_end_matches('/')))));
    s
}

/// The view over the Ion table: the same columns and types as over a
/// DYNAMODB_JSON export; only timestamps need converting.
fn ion_raw_view(src: &RawSource, view: &str) -> String {
    let cols: Vec<String> = src
        .schema
        .fields
        .iter()
        .map(|f| {
            let c = dq(&f.column);
            let e = match &f.ty {
                ColumnType::Timestamp(TimestampSource::Iso8601) => {
                    format!("CAST(from_iso8601_timestamp({c}) AS timestamp(3))")
                }
                ColumnType::Timestamp(t) => {
                    let div = match t {
                        TimestampSource::EpochSeconds => "1",
                        TimestampSource::EpochMillis => "1000",
                        _ => "1000000",
                    };
                    format!("CAST(from_unixtime(CAST({c} AS double) / {div}) AS timestamp(3))")
                }
                _ => c.clone(),
            };
            format!("  {e} AS {c}")
        })
        .collect();
    format!(
        "-- Clean columns over {}: the same columns and types as `convert` writes.\nCREATE OR REPLACE VIEW {} AS\nSELECT\n{}\nFROM {};\n",
        qualified(src.database, src.table, dq),
        qualified(src.database, view, dq),
        cols.join(",\n"),
        qualified(src.database, src.table, dq)
    )
}

/// The expression of a partition column over the view's columns.
fn partition_expr(p: &PartitionSpec, schema: &Schema) -> String {
    let col = dq(&p.source_column);
    let is_ts = schema.fields.iter().any(|f| f.column == p.source_column && matches!(f.ty, ColumnType::Timestamp(_)));
    match (p.transform, is_ts) {
        (Transform::Identity, _) => col,
        (Transform::Year, true) => format!("date_format({col}, '%Y')"),
        (Transform::Month, true) => format!("date_format({col}, '%Y-%m')"),
        (Transform::Day, true) => format!("date_format({col}, '%Y-%m-%d')"),
        (Transform::Hour, true) => format!("date_format({col}, '%Y-%m-%d-%H')"),
        (Transform::Year, false) => format!("substr({col}, 1, 4)"),
        (Transform::Month, false) => format!("substr({col}, 1, 7)"),
        (Transform::Day, false) => format!("substr({col}, 1, 10)"),
        (Transform::Hour, false) => format!("concat(substr({col}, 1, 10), '-', substr({col}, 12, 2))"),
    }
}

/// Athena writes at most this many partitions per CTAS or INSERT.
pub const ATHENA_MAX_PARTITIONS: usize = 100;

/// CTAS into partitioned Parquet, then `INSERT INTO` batches of at most 100
/// partitions each. `values` holds every distinct partition tuple (from a pass over the data).
pub fn ctas(
    src: &RawSource,
    view: &str,
    target: &str,
    location: &str,
    partition_by: &[PartitionSpec],
    values: &[Vec<Option<String>>],
) -> String {
    let moved: Vec<&str> =
        partition_by.iter().filter(|p| p.transform == Transform::Identity).map(|p| p.source_column.as_str()).collect();
    let mut cols: Vec<String> =
        src.schema.fields.iter().filter(|f| !moved.contains(&f.column.as_str())).map(|f| dq(&f.column)).collect();
    for p in partition_by {
        let e = partition_expr(p, src.schema);
        cols.push(if p.transform == Transform::Identity { e } else { format!("{e} AS {}", dq(&p.name)) });
    }
    let select = format!("SELECT {}\nFROM {}", cols.join(", "), qualified(src.database, view, dq));
    let target_q = qualified(src.database, target, dq);
    let names: Vec<String> = partition_by.iter().map(|p| lit(&p.name)).collect();
    let mut with = vec![
        "format = 'PARQUET'".to_string(),
        "write_compression = 'ZSTD'".to_string(),
        format!("external_location = {}", lit(&format!("{}/", location.trim_end_matches('/')))),
    ];
    if !partition_by.is_empty() {
        with.push(format!("partitioned_by = ARRAY[{}]", names.join(", ")));
    }
    let mut sorted: Vec<&Vec<Option<String>>> = values.iter().collect();
    sorted.sort();
    sorted.dedup();
    let batches: Vec<Vec<&Vec<Option<String>>>> = if partition_by.is_empty() || sorted.is_empty() {
        vec![Vec::new()]
    } else {
        sorted.chunks(ATHENA_MAX_PARTITIONS).map(|c| c.to_vec()).collect()
    };
    let mut out = format!(
        "-- {} partition(s): a CTAS, then {} INSERT INTO batch(es) of at most {ATHENA_MAX_PARTITIONS} partitions (Athena's limit).\n",
        sorted.len(),
        batches.len().saturating_sub(1)
    );
    for (i, batch) in batches.iter().enumerate() {
        let filter = if batch.is_empty() {
            String::new()
        } else {
            format!("\nWHERE {}", predicate(partition_by, src.schema, batch))
        };
        if i == 0 {
            out.push_str(&format!("CREATE TABLE {target_q}\nWITH ({})\nAS {select}{filter};\n", with.join(", ")));
        } else {
            out.push_str(&format!("INSERT INTO {target_q}\n{select}{filter};\n"));
        }
    }
    out
}

fn predicate(partition_by: &[PartitionSpec], schema: &Schema, batch: &[&Vec<Option<String>>]) -> String {
    let exprs: Vec<String> = partition_by.iter().map(|p| partition_expr(p, schema)).collect();
    let cond = |e: &str, v: &Option<String>| match v {
        Some(v) => format!("{e} = {}", lit(v)),
        None => format!("{e} IS NULL"),
    };
    if exprs.len() == 1 {
        type Tuples<'a, 'b> = Vec<&'a &'b Vec<Option<String>>>;
        let (nulls, vals): (Tuples, Tuples) = batch.iter().partition(|t| t[0].is_none());
        let mut parts = Vec::new();
        if !vals.is_empty() {
            let list: Vec<String> = vals.iter().map(|t| lit(t[0].as_deref().unwrap())).collect();
            parts.push(format!("{} IN ({})", exprs[0], list.join(", ")));
        }
        if !nulls.is_empty() {
            parts.push(format!("{} IS NULL", exprs[0]));
        }
        return parts.join(" OR ");
    }
    let ors: Vec<String> = batch
        .iter()
        .map(|t| {
            let ands: Vec<String> = exprs.iter().zip(t.iter()).map(|(e, v)| cond(e, v)).collect();
            format!("({})", ands.join(" AND "))
        })
        .collect();
    ors.join("\n   OR ")
}

/// Distinct partition tuples, as SQL over the decoded export would compute them
/// (used with dynolake's own SQL engine to count partitions before a CTAS).
pub fn distinct_partitions_sql(table: &str, partition_by: &[PartitionSpec], schema: &Schema) -> String {
    let exprs: Vec<String> = partition_by
        .iter()
        .map(|p| {
            let col = dq(&p.source_column);
            let is_ts =
                schema.fields.iter().any(|f| f.column == p.source_column && matches!(f.ty, ColumnType::Timestamp(_)));
            let e = match (p.transform, is_ts) {
                (Transform::Identity, _) => format!("CAST({col} AS VARCHAR)"),
                (t, true) => {
                    let f = match t {
                        Transform::Year => "%Y",
                        Transform::Month => "%Y-%m",
                        Transform::Day => "%Y-%m-%d",
                        _ => "%Y-%m-%d-%H",
                    };
                    format!("to_char({col}, '{f}')")
                }
                (Transform::Year, false) => format!("substr({col}, 1, 4)"),
                (Transform::Month, false) => format!("substr({col}, 1, 7)"),
                (Transform::Day, false) => format!("substr({col}, 1, 10)"),
                (Transform::Hour, false) => format!("concat(substr({col}, 1, 10), '-', substr({col}, 12, 2))"),
            };
            format!("{e} AS {}", dq(&p.name))
        })
        .collect();
    format!("SELECT DISTINCT {} FROM {}", exprs.join(", "), dq(table))
}

/// Group partition tuples by value for display (used by the CLI's summary).
pub fn count_by_first(values: &[Vec<Option<String>>]) -> BTreeMap<Option<String>, usize> {
    let mut m = BTreeMap::new();
    for v in values {
        *m.entry(v.first().cloned().flatten()).or_default() += 1;
    }
    m
}

/// What `ddl --merge-into` needs: the full export's raw table and view (see
/// [`raw_table`]), the Iceberg table, and each incremental export's files.
pub struct MergeInto<'a> {
    pub full: RawSource<'a>,
    /// The clean view over the full export.
    pub view: &'a str,
    pub iceberg_table: &'a str,
    pub iceberg_location: &'a str,
    /// The raw table over the shared `AWSDynamoDB/data/` folder.
    pub changes_table: &'a str,
    pub changes_location: &'a str,
    /// Key attributes (DynamoDB names), in the schema.
    pub key: &'a [String],
    /// Each incremental export in window order: its id, window, and data files as `s3://` URIs.
    pub exports: Vec<(String, String, Vec<String>)>,
}

/// Athena statements that keep an Iceberg table current inside Athena: the
/// table created from the full export, then per incremental export one
/// `MERGE INTO` from the raw change table restricted to that export's
/// manifest-listed files (`"$path" IN (…)`): the latest change per key
/// (write time) deletes, updates or inserts. Same columns and types as `convert`.
pub fn merge_into(m: &MergeInto) -> String {
    let schema = m.full.schema;
    let db = m.full.database;
    let mut out = String::from("-- 1. The full export: its raw table and a view with the columns convert writes.\n");
    out.push_str(&raw_table(&m.full));
    out.push('\n');
    out.push_str(&raw_view(&m.full, m.view));
    let iceberg = qualified(db, m.iceberg_table, dq);
    let cols: Vec<String> = schema.fields.iter().map(|f| dq(&f.column)).collect();
    let defs: Vec<String> =
        schema.fields.iter().map(|f| format!("  {} {}", tick(&f.column), super::athena_type(&f.ty))).collect();
    out.push_str(&format!(
        "\n-- 2. The Iceberg table, filled from the full export.\nCREATE TABLE {} (\n{}\n)\nLOCATION {}\nTBLPROPERTIES ('table_type'='ICEBERG');\n\nINSERT INTO {iceberg}\nSELECT {} FROM {};\n",
        qualified(db, m.iceberg_table, tick),
        defs.join(",\n"),
        lit(&format!("{}/", m.iceberg_location.trim_end_matches('/'))),
        cols.join(", "),
        qualified(db, m.view, dq),
    ));
    if m.exports.is_empty() {
        return out;
    }
    // The change records: one table over the shared data folder.
    let n = RawNames::with_members(schema, &["Metadata", "WriteTimestampMicros", "Keys", "NewImage", "OldImage"]);
    let image: Vec<String> = schema
        .fields
        .iter()
        .map(|f| format!("{}:{}", tick(n.hive(&f.attribute)), raw_type(Some(f), &f.ty, &n)))
        .collect();
    let key_fields: Vec<&Field> =
        m.key.iter().filter_map(|k| schema.fields.iter().find(|f| &f.attribute == k)).collect();
    let keys: Vec<String> =
        key_fields.iter().map(|f| format!("{}:{}", tick(n.hive(&f.attribute)), raw_type(Some(f), &f.ty, &n))).collect();
    let image = format!("struct<{}>", image.join(","));
    out.push_str(&format!(
        "\n-- 3. The change records of the incremental exports: their data folder is shared, so each MERGE\n--    below reads only the files its export's manifest lists.\nCREATE EXTERNAL TABLE IF NOT EXISTS {} (\n  {} struct<{}:struct<{}:string>>,\n  {} struct<{}>,\n  {} {image},\n  {} {image}\n)\nROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\n",
        qualified(db, m.changes_table, tick),
        tick(n.hive("Metadata")),
        tick(n.hive("WriteTimestampMicros")),
        tick(n.hive("N")),
        tick(n.hive("Keys")),
        keys.join(","),
        tick(n.hive("NewImage")),
        tick(n.hive("OldImage")),
    ));
    out.push_str(&n.serde_properties());
    out.push_str(&format!(
        "LOCATION {}\nTBLPROPERTIES ('classification'='json', 'compressionType'='gzip');\n",
        lit(&format!("{}/", m.changes_location.trim_end_matches('/')))
    ));
    // The MERGE of one export.
    let new = dq(n.hive("NewImage"));
    let keys_img = dq(n.hive("Keys"));
    let unwrap = |f: &Field, img: &str| {
        let base = format!("{img}.{}", dq(n.hive(&f.attribute)));
        unwrap_expr(&f.ty, &base, &descriptors(Some(f), &f.ty), &n, 0)
    };
    let selected: Vec<String> =
        schema.fields.iter().map(|f| format!("{} AS {}", unwrap(f, &new), dq(&f.column))).collect();
    let key_exprs: Vec<String> = key_fields.iter().map(|f| unwrap(f, &keys_img)).collect();
    let key_cols: Vec<String> = key_fields.iter().map(|f| dq(&format!("_key_{}", f.column))).collect();
    let time = format!(
        "CAST({}.{}.{} AS bigint)",
        dq(n.hive("Metadata")),
        dq(n.hive("WriteTimestampMicros")),
        dq(n.hive("N"))
    );
    let on: Vec<String> =
        key_fields.iter().zip(&key_cols).map(|(f, k)| format!("t.{} = s.{k}", dq(&f.column))).collect();
    let sets: Vec<String> = cols.iter().map(|c| format!("{c} = s.{c}")).collect();
    let values: Vec<String> = cols.iter().map(|c| format!("s.{c}")).collect();
    let mut select = selected.clone();
    select.extend(key_exprs.iter().zip(&key_cols).map(|(e, k)| format!("{e} AS {k}")));
    let select = select.join(",\n    ");
    let removed = format!("{new} IS NULL");
    for (i, (id, window, files)) in m.exports.iter().enumerate() {
        let paths: Vec<String> = files.iter().map(|f| lit(f)).collect();
        out.push_str(&format!(
            "\n-- {}. Incremental export {id} ({window}), in window order: the latest change per key.\nMERGE INTO {iceberg} t\nUSING (\n  SELECT {},\n    {} AS \"_removed\"\n  FROM (\n    SELECT *, row_number() OVER (PARTITION BY {} ORDER BY {time} DESC) AS \"_rank\"\n    FROM {}\n    WHERE \"$path\" IN ({})\n  )\n  WHERE \"_rank\" = 1\n) s\nON {}\nWHEN MATCHED AND s.\"_removed\" THEN DELETE\nWHEN MATCHED THEN UPDATE SET {}\nWHEN NOT MATCHED AND NOT s.\"_removed\" THEN INSERT ({}) VALUES ({});\n",
            i + 4,
            select,
            removed,
            key_exprs.join(", "),
            qualified(db, m.changes_table, dq),
            paths.join(", "),
            on.join(" AND "),
            sets.join(", "),
            cols.join(", "),
            values.join(", "),
        ));
    }
    out
}
