//! Schema files: the editable JSON form of a [`Schema`] (see `schemas/README.md`).
//!
//! ```json
//! {
//!   "format": "dynolake-schema/1",
//!   "table": "Orders",
//!   "catch_all": "_extra",
//!   "columns": [
//!     {"attribute": "orderId", "column": "order_id", "type": "string", "seen": {"S": 1000}},
//!     {"attribute": "lines", "column": "lines", "type": "list<struct>", "fields": [ … ]}
//!   ]
//! }
//! ```
//!
//! A type holds at most one `struct`, whose members are listed in `fields`.
//! Output is deterministic: the same schema always prints the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ColumnType, Field, Schema, names};
use crate::error::{Error, Result};

pub const FORMAT: &str = "dynolake-schema/1";

#[derive(Serialize, Deserialize)]
struct SchemaFile {
    format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    table: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inferred_from: Option<String>,
    #[serde(default)]
    items: u64,
    #[serde(default = "default_catch_all")]
    catch_all: String,
    /// `true` for a change table (see [`super::CHANGE_COLUMNS`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    changes: bool,
    columns: Vec<FieldFile>,
}

fn default_catch_all() -> String {
    super::CATCH_ALL.to_string()
}

fn yes() -> bool {
    true
}

#[derive(Serialize, Deserialize)]
struct FieldFile {
    attribute: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    column: Option<String>,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default = "yes")]
    nullable: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    seen: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fields: Option<Vec<FieldFile>>,
}

impl Schema {
    /// The schema file text (pretty JSON, one trailing newline).
    pub fn to_file_string(&self) -> String {
        let file = SchemaFile {
            format: FORMAT.into(),
            table: self.table.clone(),
            inferred_from: self.inferred_from.clone(),
            items: self.items,
            catch_all: self.catch_all.clone(),
            changes: self.changes,
            columns: self.fields.iter().map(to_file).collect(),
        };
        let mut s = serde_json::to_string_pretty(&file).expect("schema serializes");
        s.push('\n');
        s
    }

    /// Parse a schema file. Missing column names are derived with the safe-name rule.
    pub fn from_file_str(name: &str, text: &str) -> Result<Schema> {
        let file: SchemaFile =
            serde_json::from_str(text).map_err(|e| Error::Schema(format!("{name}: not a schema file: {e}")))?;
        if file.format != FORMAT {
            return Err(Error::Schema(format!("{name}: format `{}` is not `{FORMAT}`", file.format)));
        }
        let fields = from_files(file.columns).map_err(|e| Error::Schema(format!("{name}: {e}")))?;
        let schema = Schema {
            table: file.table,
            fields,
            items: file.items,
            inferred_from: file.inferred_from,
            catch_all: file.catch_all,
            changes: file.changes,
        };
        schema.validate().map_err(|e| Error::Schema(format!("{name}: {e}")))?;
        Ok(schema)
    }

    pub fn load(path: &std::path::Path) -> Result<Schema> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display().to_string(), e))?;
        Schema::from_file_str(&path.display().to_string(), &text)
    }
}

fn to_file(f: &Field) -> FieldFile {
    FieldFile {
        attribute: f.attribute.clone(),
        column: Some(f.column.clone()),
        ty: f.ty.to_string(),
        nullable: f.nullable,
        seen: f.seen.clone(),
        note: f.note.clone(),
        fields: f.ty.struct_fields().map(|fs| fs.iter().map(to_file).collect()),
    }
}

fn from_files(files: Vec<FieldFile>) -> Result<Vec<Field>> {
    let mut out = Vec::with_capacity(files.len());
    let mut unnamed = Vec::new();
    for (i, f) in files.into_iter().enumerate() {
        let inner = f.fields.map(from_files).transpose()?;
        let ty = ColumnType::parse(&f.ty, inner).map_err(|e| match e {
            Error::Schema(m) => Error::Schema(format!("attribute `{}`: {m}", f.attribute)),
            other => other,
        })?;
        if f.column.is_none() {
            unnamed.push(i);
        }
        out.push(Field {
            column: f.column.unwrap_or_else(|| names::safe_name(&f.attribute)),
            attribute: f.attribute,
            ty,
            nullable: f.nullable,
            seen: f.seen,
            note: f.note,
        });
    }
    // Derived names must not collide with the ones the user wrote.
    if !unnamed.is_empty() {
        let mut taken: std::collections::HashSet<String> =
            out.iter().enumerate().filter(|(i, _)| !unnamed.contains(i)).map(|(_, f)| f.column.clone()).collect();
        let mut derived: Vec<String> = unnamed.iter().map(|&i| out[i].column.clone()).collect();
        names::dedupe(&mut derived, &mut taken);
        for (&i, n) in unnamed.iter().zip(derived) {
            out[i].column = n;
        }
    }
    Ok(out)
}
