//! Hive-style partitioning: `col=value/` directories.
//!
//! A partition spec is a column (`status`) or a time transform of a timestamp
//! or ISO-8601 string column: `year(createdAt)`, `month(…)`, `day(…)`,
//! `hour(…)`. Columns may be named by attribute (`createdAt`) or by output
//! column (`created_at`). Identity partition columns are not repeated inside
//! the files; a transform's directory is named `<column>_<transform>`
//! (`created_at_day=2024-05-03`) and its source column stays in the files.
//! Values are escaped as Hive and Athena expect; null or missing values go to
//! `__HIVE_DEFAULT_PARTITION__`.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::schema::{ColumnType, Schema};

pub const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// The longest `name=value` directory name written: local file systems take
/// 255 bytes per name. Longer values are refused with the item's file and line.
pub const MAX_SEGMENT: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    Identity,
    Year,
    Month,
    Day,
    Hour,
}

/// One partition level.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionSpec {
    /// The output column it reads.
    pub source_column: String,
    pub transform: Transform,
    /// The directory key (`status`, `created_at_day`).
    pub name: String,
    /// Athena type of the partition column (`string`, `bigint`, `boolean`).
    pub athena_type: String,
}

impl PartitionSpec {
    /// Parse `status` or `day(createdAt)` against a schema.
    pub fn parse(text: &str, schema: &Schema) -> Result<PartitionSpec> {
        let t = text.trim();
        let (transform, col) = match t.split_once('(') {
            Some((f, rest)) => {
                let col = rest.strip_suffix(')').ok_or_else(|| Error::Usage(format!("`{t}`: missing `)`")))?;
                let tr = match f.trim().to_ascii_lowercase().as_str() {
                    "year" => Transform::Year,
                    "month" => Transform::Month,
                    "day" => Transform::Day,
                    "hour" => Transform::Hour,
                    other => {
                        return Err(Error::Usage(format!(
                            "`{t}`: unknown transform `{other}`; use year(), month(), day() or hour()"
                        )));
                    }
                };
                (tr, col.trim())
            }
            None => (Transform::Identity, t),
        };
        let field = schema
            .fields
            .iter()
            .find(|f| f.attribute == col)
            .or_else(|| schema.fields.iter().find(|f| f.column == col))
            .ok_or_else(|| {
                let names: Vec<&str> = schema.fields.iter().map(|f| f.attribute.as_str()).collect();
                Error::Usage(format!(
                    "--partition-by `{t}`: no attribute or column `{col}`; there are: {}",
                    names.join(", ")
                ))
            })?;
        let athena_type = match (&field.ty, transform) {
            (ColumnType::String | ColumnType::Timestamp(_), Transform::Identity) => "string",
            (ColumnType::Int64, Transform::Identity) => "bigint",
            (ColumnType::Boolean, Transform::Identity) => "boolean",
            (ColumnType::Decimal { .. } | ColumnType::Number, Transform::Identity) => "string",
            (ColumnType::String | ColumnType::Timestamp(_), _) => "string",
            (ty, Transform::Identity) => {
                return Err(Error::Usage(format!("--partition-by `{t}`: a {ty} column cannot be a partition")));
            }
            (ty, _) => {
                return Err(Error::Usage(format!(
                    "--partition-by `{t}`: time transforms need a timestamp or ISO-8601 string column, `{col}` is {ty} \
                     (a schema file can declare it timestamp(epoch_s) or timestamp(epoch_ms))"
                )));
            }
        };
        let name = match transform {
            Transform::Identity => field.column.clone(),
            Transform::Year => format!("{}_year", field.column),
            Transform::Month => format!("{}_month", field.column),
            Transform::Day => format!("{}_day", field.column),
            Transform::Hour => format!("{}_hour", field.column),
        };
        Ok(PartitionSpec { source_column: field.column.clone(), transform, name, athena_type: athena_type.into() })
    }

    /// Each row's partition value as an index into the distinct values
    /// (`None`: null, empty or not derivable). Text columns are grouped by
    /// the borrowed text, without a string per row.
    pub fn codes(&self, batch: &RecordBatch) -> Result<(Vec<u32>, Vec<Option<String>>)> {
        let mut distinct: Vec<Option<String>> = Vec::new();
        let mut by_value: FxHashMap<Option<String>, u32> = FxHashMap::default();
        let mut intern = |v: Option<String>| -> u32 {
            let v = v.filter(|v| !v.is_empty());
            *by_value.entry(v).or_insert_with_key(|v| {
                distinct.push(v.clone());
                distinct.len() as u32 - 1
            })
        };
        let col = batch
            .column_by_name(&self.source_column)
            .ok_or_else(|| Error::Usage(format!("partition column `{}` is not in the data", self.source_column)))?;
        let codes = match col.data_type() {
            DataType::Utf8 => {
                let a = col.as_string::<i32>();
                let mut by_key: FxHashMap<Option<&str>, u32> = FxHashMap::default();
                (0..a.len())
                    .map(|i| {
                        let key = if a.is_null(i) { None } else { self.key_of_text(a.value(i)) };
                        // Keys differ where values may not (`T` or a space before the hour): interned by value.
                        match by_key.get(&key) {
                            Some(&c) => c,
                            None => {
                                let c = intern(key.and_then(|k| self.value_of_text(k)));
                                by_key.insert(key, c);
                                c
                            }
                        }
                    })
                    .collect()
            }
            _ => self.values(batch)?.into_iter().map(intern).collect(),
        };
        Ok((codes, distinct))
    }

    /// The partition value of every row (`None`: null or not derivable).
    pub fn values(&self, batch: &RecordBatch) -> Result<Vec<Option<String>>> {
        let col = batch
            .column_by_name(&self.source_column)
            .ok_or_else(|| Error::Usage(format!("partition column `{}` is not in the data", self.source_column)))?;
        let n = batch.num_rows();
        let mut out = Vec::with_capacity(n);
        match col.data_type() {
            DataType::Utf8 => {
                let a = col.as_string::<i32>();
                for i in 0..n {
                    out.push(if a.is_null(i) { None } else { self.value_of_text(a.value(i)) });
                }
            }
            DataType::Int64 => {
                let a = col.as_primitive::<Int64Type>();
                for i in 0..n {
                    out.push(if a.is_null(i) { None } else { Some(a.value(i).to_string()) });
                }
            }
            DataType::Boolean => {
                let a = col.as_boolean();
                for i in 0..n {
                    out.push(if a.is_null(i) { None } else { Some(a.value(i).to_string()) });
                }
            }
            DataType::Decimal128(_, _) => {
                for i in 0..n {
                    out.push(if col.is_null(i) {
                        None
                    } else {
                        Some(crate::write::text::decimal_text(
                            col.as_primitive::<arrow::datatypes::Decimal128Type>(),
                            i,
                        ))
                    });
                }
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                let a = col.as_primitive::<TimestampMicrosecondType>();
                for i in 0..n {
                    out.push(if a.is_null(i) {
                        None
                    } else {
                        chrono::DateTime::from_timestamp_micros(a.value(i)).map(|t| {
                            let iso = t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
                            self.value_of_text(&iso).unwrap_or(iso)
                        })
                    });
                }
            }
            other => return Err(Error::Usage(format!("cannot partition by a column of type {other}"))),
        }
        Ok(out)
    }

    /// The part of a text value its partition value is made of: all of it,
    /// or the ISO-8601 prefix a transform keeps (`None`: not derivable).
    fn key_of_text<'a>(&self, s: &'a str) -> Option<&'a str> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| b.get(r.clone()).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
        let date_ok =
            digits(0..4) && b.get(4) == Some(&b'-') && digits(5..7) && b.get(7) == Some(&b'-') && digits(8..10);
        // Every cut is right after an ASCII digit: a char boundary.
        let len = match self.transform {
            Transform::Identity => s.len(),
            Transform::Year if digits(0..4) => 4,
            Transform::Month if date_ok || (digits(0..4) && b.get(4) == Some(&b'-') && digits(5..7)) => 7,
            Transform::Day if date_ok => 10,
            Transform::Hour if date_ok && matches!(b.get(10), Some(b'T' | b' ')) && digits(11..13) => 13,
            _ => return None,
        };
        Some(&s[..len])
    }

    /// The value from text: as is, or the ISO-8601 prefix a transform keeps.
    fn value_of_text(&self, s: &str) -> Option<String> {
        let key = self.key_of_text(s)?;
        Some(match self.transform {
            Transform::Hour => format!("{}-{}", &key[..10], &key[11..13]),
            _ => key.to_string(),
        })
    }
}

/// Escape a partition value the way Hive does (`/` → `%2F`, …).
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        let needs = (c as u32) < 0x20
            || matches!(
                c,
                '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '\u{7f}' | '{' | '[' | ']' | '^'
            );
        if needs {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Undo [`escape`].
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory of one partition: `status=PAID/created_at_day=2024-05-03`.
pub fn dir_of(specs: &[PartitionSpec], values: &[Option<&str>]) -> String {
    specs
        .iter()
        .zip(values)
        .map(|(s, v)| {
            format!(
                "{}={}",
                s.name,
                v.map(|v| if v.is_empty() { HIVE_NULL.to_string() } else { escape(v) })
                    .unwrap_or_else(|| HIVE_NULL.into())
            )
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips() {
        for v in ["a/b", "x=y", "50%", "plain", "Coeur d'Alene", "tab\there", "é"] {
            assert_eq!(unescape(&escape(v)), v);
        }
        assert_eq!(escape("a/b:c"), "a%2Fb%3Ac");
        assert_eq!(escape("San José"), "San José");
    }

    #[test]
    fn rows_are_grouped_by_partition_value_not_by_text() {
        use std::sync::Arc;
        let spec = |transform| PartitionSpec {
            source_column: "t".into(),
            transform,
            name: "t_x".into(),
            athena_type: "string".into(),
        };
        let col = arrow::array::StringArray::from(vec![
            Some("2024-05-03T14:00:00Z"),
            Some("2024-05-03 14:59"),
            Some("2024-05-03T15:00:00Z"),
            None,
            Some(""),
            Some("not a date"),
            Some("2024-05"),
        ]);
        let batch = RecordBatch::try_from_iter([("t", Arc::new(col) as arrow::array::ArrayRef)]).unwrap();
        let (codes, distinct) = spec(Transform::Hour).codes(&batch).unwrap();
        assert_eq!(codes, vec![0, 0, 1, 2, 2, 2, 2]);
        assert_eq!(distinct, vec![Some("2024-05-03-14".into()), Some("2024-05-03-15".into()), None]);
        let (codes, distinct) = spec(Transform::Month).codes(&batch).unwrap();
        assert_eq!(codes, vec![0, 0, 0, 1, 1, 1, 0]);
        assert_eq!(distinct, vec![Some("2024-05".into()), None]);
        let (codes, distinct) = spec(Transform::Identity).codes(&batch).unwrap();
        assert_eq!(codes, vec![0, 1, 2, 3, 3, 4, 5]);
        assert_eq!(distinct[3], None, "null and empty are one partition");
    }
}
