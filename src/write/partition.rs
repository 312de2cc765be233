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

use crate::error::{Error, Result};
use crate::schema::{ColumnType, Schema};

pub const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

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

    /// The value from text: as is, or the ISO-8601 prefix a transform keeps.
    fn value_of_text(&self, s: &str) -> Option<String> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| b.get(r.clone()).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
        let date_ok =
            digits(0..4) && b.get(4) == Some(&b'-') && digits(5..7) && b.get(7) == Some(&b'-') && digits(8..10);
        match self.transform {
            Transform::Identity => Some(s.to_string()),
            Transform::Year if digits(0..4) => Some(s[..4].to_string()),
            Transform::Month if date_ok || (digits(0..4) && b.get(4) == Some(&b'-') && digits(5..7)) => {
                Some(s[..7].to_string())
            }
            Transform::Day if date_ok => Some(s[..10].to_string()),
            Transform::Hour if date_ok && matches!(b.get(10), Some(b'T' | b' ')) && digits(11..13) => {
                Some(format!("{}-{}", &s[..10], &s[11..13]))
            }
            _ => None,
        }
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
}
