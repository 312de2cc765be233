//! Rows to leave out while decoding, by their key: how `merge` drops the base
//! rows that changes replace or remove before they cost a copy.
//!
//! A key is the bytes of its columns' values, one after another: text and
//! binary as a 4-byte length then the bytes, numbers and times as their
//! fixed-width little-endian bits. The same bytes come from a decoder's
//! builders ([`SkipKeys::holds`]) and from Arrow arrays ([`key_of`]), so keys
//! read from the changes (Arrow) match rows as the base decodes them. Keys are
//! DynamoDB's scalar types (`S`, `N`, `B`); other column types cannot be keys.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use rustc_hash::FxHashSet;

use super::builder::Builder;

/// Whether a column of type `t` can be part of a key.
pub fn can_be_key(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::Binary
            | DataType::Int64
            | DataType::Decimal128(..)
            | DataType::Float64
            | DataType::Boolean
            | DataType::Timestamp(TimeUnit::Microsecond, _)
    )
}

/// Append the key bytes of row `r` of `col` (a type [`can_be_key`] accepts)
/// to `out`; false when the value is null (a null equals no key).
pub fn key_of(col: &dyn Array, r: usize, out: &mut Vec<u8>) -> bool {
    if col.is_null(r) {
        return false;
    }
    match col.data_type() {
        DataType::Utf8 => bytes(col.as_string::<i32>().value(r).as_bytes(), out),
        DataType::Binary => bytes(col.as_binary::<i32>().value(r), out),
        DataType::Int64 => out.extend_from_slice(&col.as_primitive::<Int64Type>().value(r).to_le_bytes()),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            out.extend_from_slice(&col.as_primitive::<TimestampMicrosecondType>().value(r).to_le_bytes())
        }
        DataType::Decimal128(..) => out.extend_from_slice(&col.as_primitive::<Decimal128Type>().value(r).to_le_bytes()),
        DataType::Float64 => out.extend_from_slice(&col.as_primitive::<Float64Type>().value(r).to_bits().to_le_bytes()),
        DataType::Boolean => out.push(col.as_boolean().value(r) as u8),
        t => unreachable!("a key column of type {t} (checked by can_be_key)"),
    }
    true
}

fn bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// The key bytes of row `r` of a builder, as [`key_of`] gives them for the array it becomes.
fn builder_key(b: &Builder, r: usize, out: &mut Vec<u8>) -> bool {
    if b.len() <= r {
        return false; // absent: padded with nulls later
    }
    match b {
        Builder::Text { offsets, data, valid, .. } | Builder::Binary { offsets, data, valid } => {
            valid[r] && {
                bytes(&data[offsets[r] as usize..offsets[r + 1] as usize], out);
                true
            }
        }
        Builder::Int64 { values, valid } | Builder::Timestamp { values, valid, .. } => {
            valid[r] && {
                out.extend_from_slice(&values[r].to_le_bytes());
                true
            }
        }
        Builder::Decimal { values, valid, .. } => {
            valid[r] && {
                out.extend_from_slice(&values[r].to_le_bytes());
                true
            }
        }
        Builder::Float64 { values, valid } => {
            valid[r] && {
                out.extend_from_slice(&values[r].to_bits().to_le_bytes());
                true
            }
        }
        Builder::Boolean { values, valid } => {
            valid[r] && {
                out.push(values[r] as u8);
                true
            }
        }
        Builder::List { .. } | Builder::Struct { .. } | Builder::Map { .. } => false,
    }
}

/// Keys whose rows a decoder leaves out (see [`super::DecodeOptions::skip`]).
#[derive(Default)]
pub struct SkipKeys {
    /// The key columns (indices of the schema's fields).
    pub columns: Vec<usize>,
    pub set: FxHashSet<Box<[u8]>>,
}

impl std::fmt::Debug for SkipKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SkipKeys({} keys of columns {:?})", self.set.len(), self.columns)
    }
}

impl SkipKeys {
    /// Whether row `r` of `columns` (a decoder's builders) has one of the keys; `buf` is scratch.
    pub(super) fn holds(&self, columns: &[Builder], r: usize, buf: &mut Vec<u8>) -> bool {
        buf.clear();
        self.columns.iter().all(|&c| builder_key(&columns[c], r, buf)) && self.set.contains(buf.as_slice())
    }
}
