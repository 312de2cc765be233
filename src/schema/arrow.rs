//! From a [`Schema`] to an Arrow schema.
//!
//! Every field carries its DynamoDB identity in Arrow field metadata, which
//! the Parquet writer stores with the file:
//! `dynolake.attribute` (the original name), `dynolake.type` (the schema-file
//! type, e.g. `set<string>`, `number`, `json`), so later steps (DDL, JSON output,
//! SQL) can tell a set from a list and exact number text from a plain string.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field as ArrowField, Fields, Schema as ArrowSchema, TimeUnit};

use super::{ColumnType, Field, Schema};

pub const META_ATTRIBUTE: &str = "dynolake.attribute";
pub const META_TYPE: &str = "dynolake.type";

/// Lists and sets use Parquet's standard element name.
pub const LIST_ELEMENT: &str = "element";

impl Schema {
    /// The Arrow schema of decoded batches: one column per field, then the catch-all.
    pub fn arrow_schema(&self) -> Arc<ArrowSchema> {
        let mut fields: Vec<ArrowField> = match self.changes {
            true => change_fields(),
            false => Vec::new(),
        };
        fields.extend(self.fields.iter().map(arrow_field));
        let mut meta = HashMap::new();
        meta.insert(META_TYPE.to_string(), "catch-all".to_string());
        fields.push(ArrowField::new(&self.catch_all, DataType::Utf8, true).with_metadata(meta));
        Arc::new(ArrowSchema::new(fields))
    }
}

/// The Arrow fields of [`super::CHANGE_COLUMNS`].
pub fn change_fields() -> Vec<ArrowField> {
    let [op, time, seq, ttl] = super::CHANGE_COLUMNS;
    let tagged = |f: ArrowField| {
        let meta = HashMap::from([(META_TYPE.to_string(), "change".to_string())]);
        f.with_metadata(meta)
    };
    vec![
        tagged(ArrowField::new(op, DataType::Utf8, false)),
        tagged(ArrowField::new(time, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true)),
        tagged(ArrowField::new(seq, DataType::Utf8, true)),
        tagged(ArrowField::new(ttl, DataType::Boolean, false)),
    ]
}

pub fn arrow_field(f: &Field) -> ArrowField {
    let mut meta = HashMap::new();
    meta.insert(META_ATTRIBUTE.to_string(), f.attribute.clone());
    meta.insert(META_TYPE.to_string(), f.ty.to_string());
    // Always nullable in Arrow: a schema file is applied to other exports too,
    // where any attribute may be absent. `nullable` in the schema file records
    // what inference saw.
    ArrowField::new(&f.column, data_type(&f.ty), true).with_metadata(meta)
}

pub fn data_type(t: &ColumnType) -> DataType {
    match t {
        ColumnType::String | ColumnType::Number | ColumnType::Json => DataType::Utf8,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale as i8),
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Binary => DataType::Binary,
        ColumnType::Timestamp(_) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::List(e) | ColumnType::Set(e) => {
            let mut meta = HashMap::new();
            meta.insert(META_TYPE.to_string(), e.to_string());
            DataType::List(Arc::new(ArrowField::new(LIST_ELEMENT, data_type(e), true).with_metadata(meta)))
        }
        ColumnType::Map(v) => {
            let entries = Fields::from(vec![
                ArrowField::new("key", DataType::Utf8, false),
                ArrowField::new("value", data_type(v), true),
            ]);
            DataType::Map(Arc::new(ArrowField::new("key_value", DataType::Struct(entries), false)), false)
        }
        ColumnType::Struct(fields) => DataType::Struct(fields.iter().map(arrow_field).collect()),
    }
}
