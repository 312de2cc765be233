//! Schemas: what columns an export becomes, and why.
//!
//! A [`Schema`] is a list of [`Field`]s, one per top-level attribute, each with
//! the attribute's original name, its safe output column name
//! ([`names`]), its [`ColumnType`], and the source types seen with their
//! counts, so drift is visible. It comes from [`infer`] (a pass over the
//! data) or from a schema file ([`file`](mod@file)) the user edited.

pub mod arrow;
pub mod file;
pub mod infer;
pub mod names;

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};

/// How a timestamp column reads its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampSource {
    /// ISO-8601 / RFC 3339 text (`S`), e.g. `2024-06-01T03:00:00.123Z`.
    Iso8601,
    /// Epoch seconds (`N`, fractions allowed).
    EpochSeconds,
    EpochMillis,
    EpochMicros,
}

/// The type of an output column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    /// Text: `S`, or a mix of scalars kept as text.
    String,
    /// `N` holding integers within i64.
    Int64,
    /// `N` at a fixed scale: Decimal128(precision, scale). Inference picks
    /// precision 18 when every value fits it (Parquet stores those as INT64,
    /// half the bytes of the 16-byte form, and every engine reads them faster),
    /// else 38. A schema file may ask for any precision from 1 to 38.
    Decimal {
        precision: u8,
        scale: u8,
    },
    /// `N` that fits no fixed-width type: its exact decimal text.
    Number,
    /// `N` as a double: lossy, only when a schema asks for it.
    Float64,
    Boolean,
    Binary,
    Timestamp(TimestampSource),
    /// The value's DynamoDB JSON text (`{"M":{…}}`): whatever it is, nothing is lost.
    Json,
    /// `L` whose elements unify.
    List(Box<ColumnType>),
    /// `SS`, `NS`, `BS`.
    Set(Box<ColumnType>),
    /// `M` whose keys are data: string keys to one value type.
    Map(Box<ColumnType>),
    /// `M` whose keys form a stable set.
    Struct(Vec<Field>),
}

/// One attribute (or nested map member) and the column it becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The attribute name in DynamoDB (case-sensitive, any characters).
    pub attribute: String,
    /// The output column name (see [`names`]).
    pub column: String,
    pub ty: ColumnType,
    pub nullable: bool,
    /// Source descriptors seen (`S`, `N`, …) and in how many values.
    pub seen: BTreeMap<String, u64>,
    /// Why the type is what it is, when that is not obvious.
    pub note: Option<String>,
}

impl Field {
    pub fn new(attribute: impl Into<String>, ty: ColumnType) -> Field {
        let attribute = attribute.into();
        Field { column: names::safe_name(&attribute), attribute, ty, nullable: true, seen: BTreeMap::new(), note: None }
    }
}

/// The catch-all column's default name.
pub const CATCH_ALL: &str = "_extra";

/// A table's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub table: Option<String>,
    pub fields: Vec<Field>,
    /// Items the schema was inferred from (0 when written by hand).
    pub items: u64,
    /// `exact` (every item read) or `sample:N`.
    pub inferred_from: Option<String>,
    /// Name of the catch-all column for attributes and values the schema
    /// cannot hold, as DynamoDB JSON text.
    pub catch_all: String,
    /// A change table (incremental exports, Streams records): the
    /// [`CHANGE_COLUMNS`] come first, then the row's attributes.
    pub changes: bool,
}

/// The columns a change table has before its attributes: what the change
/// did (`insert`, `modify`, `remove`; `upsert` where the export's view cannot
/// tell an insert from an update), when it was written (UTC, microseconds),
/// a Streams record's sequence number (digits; longer than 64 bits), and
/// whether DynamoDB's TTL made the removal. Attribute names that would take
/// these column names are renamed by inference.
pub const CHANGE_COLUMNS: [&str; 4] = ["_op", "_write_time", "_sequence", "_ttl_delete"];

impl Schema {
    pub fn new(fields: Vec<Field>) -> Schema {
        Schema { table: None, fields, items: 0, inferred_from: None, catch_all: CATCH_ALL.into(), changes: false }
    }

    /// Recompute safe column names where none was given, and check names are unique.
    pub fn validate(&self) -> Result<()> {
        validate_fields(&self.fields, "")?;
        if self.fields.iter().any(|f| f.column == self.catch_all) {
            return Err(Error::Schema(format!("column `{}` is the catch-all column's name", self.catch_all)));
        }
        if self.changes
            && let Some(f) = self.fields.iter().find(|f| CHANGE_COLUMNS.contains(&f.column.as_str()))
        {
            return Err(Error::Schema(format!(
                "column `{}` (attribute `{}`) takes the name of a change table's own column; rename it",
                f.column, f.attribute
            )));
        }
        Ok(())
    }
}

impl Schema {
    /// The first difference in columns (names, types, order) between two
    /// schemas, ignoring what only describes the data (counts, notes,
    /// nullability); `None` when the same batches fit both.
    pub fn column_difference(&self, other: &Schema) -> Option<String> {
        fields_difference(&self.fields, &other.fields, "")
    }

    /// The same columns without statistics: what travels in each data file
    /// (a file holds part of the data; the commit record has the counts).
    pub fn columns_only(&self) -> Schema {
        fn strip(fields: &mut [Field]) {
            for f in fields {
                f.nullable = true;
                f.seen.clear();
                f.note = None;
                if let Some(inner) = f.ty.struct_fields_mut() {
                    strip(inner);
                }
            }
        }
        let mut s = Schema { items: 0, inferred_from: None, ..self.clone() };
        strip(&mut s.fields);
        s
    }
}

fn fields_difference(a: &[Field], b: &[Field], path: &str) -> Option<String> {
    for (i, fa) in a.iter().enumerate() {
        let Some(fb) = b.get(i) else {
            return Some(format!("attribute `{path}{}` is not in the other schema", fa.attribute));
        };
        if fa.attribute != fb.attribute || fa.column != fb.column {
            return Some(format!("attribute `{path}{}` is at the place of `{path}{}`", fb.attribute, fa.attribute));
        }
        if let Some(d) = type_difference(&fa.ty, &fb.ty, &format!("{path}{}", fa.attribute)) {
            return Some(d);
        }
    }
    b.get(a.len()).map(|f| format!("attribute `{path}{}` is new", f.attribute))
}

fn type_difference(a: &ColumnType, b: &ColumnType, path: &str) -> Option<String> {
    match (a, b) {
        (ColumnType::Struct(x), ColumnType::Struct(y)) => fields_difference(x, y, &format!("{path}.")),
        (ColumnType::List(x), ColumnType::List(y))
        | (ColumnType::Set(x), ColumnType::Set(y))
        | (ColumnType::Map(x), ColumnType::Map(y)) => type_difference(x, y, path),
        (x, y) if x == y => None,
        (x, y) => Some(format!("attribute `{path}` is {y}, not {x}")),
    }
}

fn validate_fields(fields: &[Field], path: &str) -> Result<()> {
    let mut attrs = std::collections::HashSet::new();
    let mut cols = std::collections::HashSet::new();
    for f in fields {
        if !attrs.insert(&f.attribute) {
            return Err(Error::Schema(format!("attribute `{path}{}` appears twice", f.attribute)));
        }
        if !cols.insert(&f.column) {
            return Err(Error::Schema(format!(
                "column name `{}` is used twice (at `{path}{}`)",
                f.column, f.attribute
            )));
        }
        if f.column.is_empty() {
            return Err(Error::Schema(format!("attribute `{path}{}` has an empty column name", f.attribute)));
        }
        if let Some(inner) = f.ty.struct_fields() {
            validate_fields(inner, &format!("{path}{}.", f.attribute))?;
        }
    }
    Ok(())
}

impl ColumnType {
    /// The fields of the (one) struct somewhere inside this type, if any.
    pub fn struct_fields(&self) -> Option<&Vec<Field>> {
        match self {
            ColumnType::Struct(f) => Some(f),
            ColumnType::List(t) | ColumnType::Set(t) | ColumnType::Map(t) => t.struct_fields(),
            _ => None,
        }
    }

    pub fn struct_fields_mut(&mut self) -> Option<&mut Vec<Field>> {
        match self {
            ColumnType::Struct(f) => Some(f),
            ColumnType::List(t) | ColumnType::Set(t) | ColumnType::Map(t) => t.struct_fields_mut(),
            _ => None,
        }
    }

    /// Parse the schema file's type syntax; `struct` takes `fields`.
    pub fn parse(s: &str, fields: Option<Vec<Field>>) -> Result<ColumnType> {
        let s = s.trim();
        let lower = s.to_ascii_lowercase();
        let inner = |prefix: &str| {
            lower
                .strip_prefix(prefix)
                .and_then(|r| r.strip_suffix('>'))
                .map(|r| &s[prefix.len()..prefix.len() + r.len()])
        };
        if let Some(t) = inner("list<") {
            return Ok(ColumnType::List(Box::new(ColumnType::parse(t, fields)?)));
        }
        if let Some(t) = inner("set<") {
            return Ok(ColumnType::Set(Box::new(ColumnType::parse(t, fields)?)));
        }
        if let Some(t) = inner("map<") {
            let t = t.trim().strip_prefix("string,").unwrap_or(t);
            return Ok(ColumnType::Map(Box::new(ColumnType::parse(t, fields)?)));
        }
        if let Some(r) = lower.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')')) {
            let bad = || Error::Schema(format!("`{s}`: expected decimal(P,S) with 1 <= P <= 38 and 0 <= S <= P"));
            let (p, sc) = r.split_once(',').ok_or_else(bad)?;
            let precision: u8 = p.trim().parse().map_err(|_| bad())?;
            let scale: u8 = sc.trim().parse().map_err(|_| bad())?;
            if !(1..=38).contains(&precision) || scale > precision {
                return Err(bad());
            }
            return Ok(ColumnType::Decimal { precision, scale });
        }
        Ok(match lower.as_str() {
            "string" => ColumnType::String,
            "bigint" | "int64" => ColumnType::Int64,
            "number" => ColumnType::Number,
            "double" | "float64" => ColumnType::Float64,
            "boolean" => ColumnType::Boolean,
            "binary" => ColumnType::Binary,
            "json" => ColumnType::Json,
            "timestamp" | "timestamp(iso8601)" => ColumnType::Timestamp(TimestampSource::Iso8601),
            "timestamp(epoch_s)" => ColumnType::Timestamp(TimestampSource::EpochSeconds),
            "timestamp(epoch_ms)" => ColumnType::Timestamp(TimestampSource::EpochMillis),
            "timestamp(epoch_us)" => ColumnType::Timestamp(TimestampSource::EpochMicros),
            "struct" => ColumnType::Struct(fields.ok_or_else(|| Error::Schema(format!("type `{s}` needs `fields`")))?),
            _ => {
                return Err(Error::Schema(format!(
                    "unknown type `{s}`; expected string, bigint, decimal(P,S), number, double, boolean, binary, \
                     timestamp, timestamp(epoch_s|epoch_ms|epoch_us), json, list<T>, set<T>, map<T> or struct"
                )));
            }
        })
    }
}

/// The schema file's type syntax; a struct prints as `struct` (its fields are listed apart).
impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::String => f.write_str("string"),
            ColumnType::Int64 => f.write_str("bigint"),
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            ColumnType::Number => f.write_str("number"),
            ColumnType::Float64 => f.write_str("double"),
            ColumnType::Boolean => f.write_str("boolean"),
            ColumnType::Binary => f.write_str("binary"),
            ColumnType::Timestamp(TimestampSource::Iso8601) => f.write_str("timestamp"),
            ColumnType::Timestamp(TimestampSource::EpochSeconds) => f.write_str("timestamp(epoch_s)"),
            ColumnType::Timestamp(TimestampSource::EpochMillis) => f.write_str("timestamp(epoch_ms)"),
            ColumnType::Timestamp(TimestampSource::EpochMicros) => f.write_str("timestamp(epoch_us)"),
            ColumnType::Json => f.write_str("json"),
            ColumnType::List(t) => write!(f, "list<{t}>"),
            ColumnType::Set(t) => write!(f, "set<{t}>"),
            ColumnType::Map(t) => write!(f, "map<string,{t}>"),
            ColumnType::Struct(_) => f.write_str("struct"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_syntax_round_trips() {
        for s in [
            "string",
            "bigint",
            "decimal(38,2)",
            "decimal(18,6)",
            "decimal(5,0)",
            "number",
            "double",
            "boolean",
            "binary",
            "timestamp",
            "timestamp(epoch_ms)",
            "json",
            "list<set<decimal(38,0)>>",
            "map<string,list<string>>",
        ] {
            assert_eq!(ColumnType::parse(s, None).unwrap().to_string(), s);
        }
        assert!(ColumnType::parse("struct", None).is_err());
        assert!(ColumnType::parse("float", None).is_err());
        for bad in ["decimal(38,40)", "decimal(39,2)", "decimal(0,0)", "decimal(4,5)", "decimal(38)", "decimal(x,2)"] {
            assert!(ColumnType::parse(bad, None).is_err(), "{bad}");
        }
    }
}
