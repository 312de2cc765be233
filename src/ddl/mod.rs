//! Athena and Glue table definitions, as pure functions of a schema.
//!
//! Two kinds of tables:
//! - over a dataset written by `convert` ([`dataset_table`], [`glue_table_input`],
//!   [`add_partitions`]): exact Parquet types, `PARTITIONED BY`, and partition
//!   projection so no crawler is needed;
//! - over a raw export ([`raw::raw_table`], [`raw::raw_view`], [`raw::ctas`]): the
//!   JSON SerDe table AWS documents, a view that unwraps the descriptors into the
//!   same columns `convert` writes, and CTAS statements that convert inside Athena.
//!
//! Identifiers are always quoted (backticks in DDL, double quotes in queries) and
//! made legal by the safe-name rule of [`crate::schema::names`]. The same input
//! gives byte-identical output.

pub mod raw;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::schema::{ColumnType, Field, Schema};
use crate::write::partition::{HIVE_NULL, PartitionSpec, Transform, escape};

/// `` `name` `` for Hive DDL.
pub fn tick(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `"name"` for Trino / Athena queries.
pub fn dq(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The Athena (Hive DDL) type of a column.
pub fn athena_type(t: &ColumnType) -> String {
    match t {
        ColumnType::String | ColumnType::Number | ColumnType::Json => "string".into(),
        ColumnType::Int64 => "bigint".into(),
        ColumnType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        ColumnType::Float64 => "double".into(),
        ColumnType::Boolean => "boolean".into(),
        ColumnType::Binary => "binary".into(),
        ColumnType::Timestamp(_) => "timestamp".into(),
        ColumnType::List(e) | ColumnType::Set(e) => format!("array<{}>", athena_type(e)),
        ColumnType::Map(v) => format!("map<string,{}>", athena_type(v)),
        ColumnType::Struct(fs) => {
            let members: Vec<String> =
                fs.iter().map(|f| format!("{}:{}", tick(&f.column), athena_type(&f.ty))).collect();
            format!("struct<{}>", members.join(","))
        }
    }
}

/// The Trino type of a column (for casts in views).
pub fn trino_type(t: &ColumnType) -> String {
    match t {
        ColumnType::String | ColumnType::Number | ColumnType::Json => "varchar".into(),
        ColumnType::Int64 => "bigint".into(),
        ColumnType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        ColumnType::Float64 => "double".into(),
        ColumnType::Boolean => "boolean".into(),
        ColumnType::Binary => "varbinary".into(),
        ColumnType::Timestamp(_) => "timestamp(3)".into(),
        ColumnType::List(e) | ColumnType::Set(e) => format!("array({})", trino_type(e)),
        ColumnType::Map(v) => format!("map(varchar, {})", trino_type(v)),
        ColumnType::Struct(fs) => {
            let members: Vec<String> = fs.iter().map(|f| format!("{} {}", dq(&f.column), trino_type(&f.ty))).collect();
            format!("row({})", members.join(", "))
        }
    }
}

fn comment(f: &Field) -> String {
    let mut c = format!("attribute {}", f.attribute);
    if let ColumnType::Set(_) = f.ty {
        c.push_str(", a set");
    }
    if let ColumnType::Number = f.ty {
        c.push_str(", exact decimal text");
    }
    if let ColumnType::Json = f.ty {
        c.push_str(", DynamoDB JSON");
    }
    // Glue keeps at most 255 characters of a comment.
    if c.len() > 255 {
        let mut end = 252;
        while !c.is_char_boundary(end) {
            end -= 1;
        }
        c.truncate(end);
        c.push_str("...");
    }
    c
}

/// What a dataset table needs.
pub struct DatasetTable<'a> {
    pub database: Option<&'a str>,
    pub table: &'a str,
    pub location: &'a str,
    pub schema: &'a Schema,
    pub partition_by: &'a [PartitionSpec],
    /// Every partition written: column → value (`None`: the Hive default partition).
    pub partitions: &'a [BTreeMap<String, Option<String>>],
    /// Partition projection (true) or explicit `ALTER TABLE … ADD PARTITION` (false).
    pub projection: bool,
}

impl DatasetTable<'_> {
    fn qualified(&self, quote: fn(&str) -> String) -> String {
        match self.database {
            Some(db) => format!("{}.{}", quote(db), quote(self.table)),
            None => quote(self.table),
        }
    }

    fn location(&self) -> String {
        format!("{}/", self.location.trim_end_matches('/'))
    }

    /// Columns of the files: identity partition columns live in the directories.
    fn columns(&self) -> Vec<(String, String, String)> {
        let moved: BTreeSet<&str> = self
            .partition_by
            .iter()
            .filter(|p| p.transform == Transform::Identity)
            .map(|p| p.source_column.as_str())
            .collect();
        let mut cols: Vec<(String, String, String)> = Vec::new();
        if self.schema.changes {
            let [op, time, seq, ttl] = crate::schema::CHANGE_COLUMNS;
            cols.extend([
                (
                    op.to_string(),
                    "string".into(),
                    "what the change did: insert, modify, remove (upsert: NEW_IMAGE view)".into(),
                ),
                (time.to_string(), "timestamp".into(), "when the change was written (UTC)".into()),
                (seq.to_string(), "string".into(), "Streams sequence number (digits)".into()),
                (ttl.to_string(), "boolean".into(), "a removal made by TTL".into()),
            ]);
        }
        cols.extend(
            self.schema
                .fields
                .iter()
                .filter(|f| !moved.contains(f.column.as_str()))
                .map(|f| (f.column.clone(), athena_type(&f.ty), comment(f))),
        );
        cols.push((
            self.schema.catch_all.clone(),
            "string".into(),
            "attributes the schema does not hold, as DynamoDB JSON".into(),
        ));
        cols
    }

    fn values_of(&self, p: &PartitionSpec) -> Vec<Option<String>> {
        let set: BTreeSet<Option<String>> = self.partitions.iter().map(|m| m.get(&p.name).cloned().flatten()).collect();
        set.into_iter().collect()
    }

    /// Partition projection table properties.
    fn projection_properties(&self) -> Vec<(String, String)> {
        let mut props = vec![("projection.enabled".to_string(), "true".to_string())];
        for p in self.partition_by {
            let values = self.values_of(p);
            let has_null = values.iter().any(Option::is_none);
            let key = |k: &str| format!("projection.{}.{k}", p.name);
            let date = match p.transform {
                Transform::Year => Some(("yyyy", "YEARS")),
                Transform::Month => Some(("yyyy-MM", "MONTHS")),
                Transform::Day => Some(("yyyy-MM-dd", "DAYS")),
                Transform::Hour => Some(("yyyy-MM-dd-HH", "HOURS")),
                Transform::Identity => None,
            };
            let present: Vec<&String> = values.iter().flatten().collect();
            match date {
                Some((format, unit)) if !has_null && !present.is_empty() => {
                    props.push((key("type"), "date".into()));
                    props.push((key("format"), format.into()));
                    props.push((key("range"), format!("{},{}", present[0], present[present.len() - 1])));
                    props.push((key("interval"), "1".into()));
                    props.push((key("interval.unit"), unit.into()));
                }
                _ => {
                    let listed: Vec<String> =
                        values.iter().map(|v| v.as_deref().map(escape).unwrap_or_else(|| HIVE_NULL.into())).collect();
                    if listed.is_empty() || listed.iter().any(|v| v.contains(',')) {
                        props.push((key("type"), "injected".into()));
                    } else {
                        props.push((key("type"), "enum".into()));
                        props.push((key("values"), listed.join(",")));
                    }
                }
            }
        }
        let template: Vec<String> = self.partition_by.iter().map(|p| format!("{}=${{{}}}", p.name, p.name)).collect();
        props.push(("storage.location.template".into(), format!("{}{}", self.location(), template.join("/"))));
        props
    }
}

/// `CREATE EXTERNAL TABLE` for a dataset written by `convert`.
pub fn dataset_table(d: &DatasetTable) -> String {
    let mut s = format!("CREATE EXTERNAL TABLE IF NOT EXISTS {} (\n", d.qualified(tick));
    let cols = d.columns();
    for (i, (name, ty, c)) in cols.iter().enumerate() {
        let sep = if i + 1 < cols.len() { "," } else { "" };
        s.push_str(&format!("  {} {} COMMENT {}{sep}\n", tick(name), ty, lit(c)));
    }
    s.push(')');
    if !d.partition_by.is_empty() {
        let parts: Vec<String> =
            d.partition_by.iter().map(|p| format!("{} {}", tick(&p.name), p.athena_type)).collect();
        s.push_str(&format!("\nPARTITIONED BY ({})", parts.join(", ")));
    }
    s.push_str("\nSTORED AS PARQUET");
    s.push_str(&format!("\nLOCATION {}", lit(&d.location())));
    let mut props = vec![("classification".to_string(), "parquet".to_string())];
    if d.projection && !d.partition_by.is_empty() {
        props.extend(d.projection_properties());
    }
    let props: Vec<String> = props.iter().map(|(k, v)| format!("  {}={}", lit(k), lit(v))).collect();
    s.push_str(&format!("\nTBLPROPERTIES (\n{}\n);\n", props.join(",\n")));
    s
}

/// `ALTER TABLE … ADD IF NOT EXISTS PARTITION` for every partition written, one
/// statement each (each one a plain statement any Hive-dialect parser accepts).
pub fn add_partitions(d: &DatasetTable) -> String {
    let mut dirs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in d.partitions {
        let mut spec = Vec::new();
        let mut path = Vec::new();
        for p in d.partition_by {
            let v = m.get(&p.name).cloned().flatten();
            let shown = v.clone().unwrap_or_else(|| HIVE_NULL.into());
            spec.push(format!("{}={}", tick(&p.name), lit(&shown)));
            path.push(format!("{}={}", p.name, v.as_deref().map(escape).unwrap_or_else(|| HIVE_NULL.into())));
        }
        dirs.insert(path.join("/"), spec);
    }
    let mut out = String::new();
    for (path, spec) in dirs {
        out.push_str(&format!(
            "ALTER TABLE {} ADD IF NOT EXISTS PARTITION ({}) LOCATION {};\n",
            d.qualified(tick),
            spec.join(", "),
            lit(&format!("{}{path}/", d.location()))
        ));
    }
    out
}

/// A Glue `TableInput` (for `aws glue create-table --table-input file://…`).
pub fn glue_table_input(d: &DatasetTable) -> Value {
    let columns: Vec<Value> =
        d.columns().into_iter().map(|(n, t, c)| json!({"Name": n, "Type": t, "Comment": c})).collect();
    let keys: Vec<Value> = d.partition_by.iter().map(|p| json!({"Name": p.name, "Type": p.athena_type})).collect();
    let mut params = serde_json::Map::new();
    params.insert("classification".into(), "parquet".into());
    params.insert("EXTERNAL".into(), "TRUE".into());
    if d.projection && !d.partition_by.is_empty() {
        for (k, v) in d.projection_properties() {
            params.insert(k, v.into());
        }
    }
    json!({
        "Name": d.table,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": params,
        "PartitionKeys": keys,
        "StorageDescriptor": {
            "Columns": columns,
            "Location": d.location(),
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {
                "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                "Parameters": {"serialization.format": "1"}
            }
        }
    })
}

/// A Delta Lake table (what `merge --format delta` writes).
pub struct DeltaTable<'a> {
    pub database: Option<&'a str>,
    pub table: &'a str,
    pub location: &'a str,
    /// The log's newest version, for the comment.
    pub version: u64,
}

/// Athena reads a Delta table from its log: no columns or partitions are
/// declared (Athena takes them from the log, so the table follows later
/// commits and schema changes by itself).
pub fn delta_table(d: &DeltaTable) -> String {
    let name = match d.database {
        Some(db) => format!("{}.{}", tick(db), tick(d.table)),
        None => tick(d.table),
    };
    format!(
        "-- A Delta Lake table (log version {}): Athena reads its columns and files from _delta_log/.\n\
         CREATE EXTERNAL TABLE {name}\nLOCATION {}\nTBLPROPERTIES ('table_type'='DELTA');\n",
        d.version,
        lit(&format!("{}/", d.location.trim_end_matches('/')))
    )
}

/// The Glue `TableInput` of a Delta table (as Athena's `CREATE EXTERNAL TABLE` above registers it).
pub fn delta_glue_table_input(d: &DeltaTable) -> Value {
    json!({
        "Name": d.table,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"table_type": "DELTA", "EXTERNAL": "TRUE"},
        "StorageDescriptor": {"Location": format!("{}/", d.location.trim_end_matches('/'))}
    })
}
