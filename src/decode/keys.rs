//! Rows to leave out while decoding, by their key: how `merge` drops the base
//! rows that changes replace or remove before they cost a copy.
//!
//! A key is the bytes of its columns' values, one after another: text and
//! binary as a 4-byte length then the bytes, numbers and times as their
//! fixed-width little-endian bits. The same bytes come from a decoder's
//! builders (`SkipKeys::holds`) and from Arrow arrays ([`key_of`]), so keys
//! read from the changes (Arrow) match rows as the base decodes them. Keys are
//! DynamoDB's scalar types (`S`, `N`, `B`); other column types cannot be keys.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use std::hash::BuildHasher;

use rustc_hash::{FxBuildHasher, FxHashSet};

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
    columns: Vec<usize>,
    set: FxHashSet<Box<[u8]>>,
    /// A bit per slot of the keys' hashes, set where a key falls: most rows'
    /// keys did not change, and these 16 bits a key (a few hundred KiB) answer
    /// them from cache, where the set's probe reaches for a key's bytes on the
    /// heap (a profile of merge's base scan: 0.5 CPU-s of 14 in the lookup,
    /// most of it waiting on memory). About 6 % of the unchanged keys still
    /// go on to the set.
    filter: Vec<u64>,
    shift: u32,
}

impl std::fmt::Debug for SkipKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SkipKeys({} keys of columns {:?})", self.set.len(), self.columns)
    }
}

impl SkipKeys {
    /// The rows whose `columns` (indices of the schema's fields) hold one of
    /// `keys` (as [`key_of`] writes them).
    pub fn new(columns: Vec<usize>, keys: impl IntoIterator<Item = Box<[u8]>>) -> SkipKeys {
        let set: FxHashSet<Box<[u8]>> = keys.into_iter().collect();
        let bits = (set.len() * 16).next_power_of_two().max(64);
        let shift = 64 - bits.trailing_zeros();
        let mut filter = vec![0u64; bits / 64];
        for k in &set {
            let slot = slot(k, shift);
            filter[slot / 64] |= 1 << (slot % 64);
        }
        SkipKeys { columns, set, filter, shift }
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Whether `key` (as [`key_of`] writes it) is one of the keys.
    pub fn contains(&self, key: &[u8]) -> bool {
        let slot = slot(key, self.shift);
        self.filter[slot / 64] & (1 << (slot % 64)) != 0 && self.set.contains(key)
    }

    /// Whether row `r` of `columns` (a decoder's builders) has one of the keys; `buf` is scratch.
    pub(super) fn holds(&self, columns: &[Builder], r: usize, buf: &mut Vec<u8>) -> bool {
        buf.clear();
        self.columns.iter().all(|&c| builder_key(&columns[c], r, buf)) && self.contains(buf)
    }
}

/// The filter's slot of `key`: the top bits of its hash, mixed (Fx's low
/// bits are its better ones).
fn slot(key: &[u8], shift: u32) -> usize {
    let h = FxBuildHasher.hash_one(key);
    ((h ^ (h >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> shift) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter only ever turns away keys the set does not hold, and it
    /// turns away most of them (else it would not be worth its lookup).
    #[test]
    fn the_filter_answers_no_only_for_keys_not_held() {
        let key = |i: u32| {
            let mut k = Vec::new();
            bytes(format!("ORDER#{i:09}").as_bytes(), &mut k);
            k
        };
        let skip = SkipKeys::new(vec![0], (0..100_000).step_by(20).map(|i| key(i).into_boxed_slice()));
        assert_eq!(skip.len(), 5_000);
        let (mut held, mut passed) = (0, 0);
        for i in 0..100_000 {
            let k = key(i);
            let slot = slot(&k, skip.shift);
            let through = skip.filter[slot / 64] & (1 << (slot % 64)) != 0;
            assert_eq!(skip.contains(&k), i % 20 == 0, "key {i}");
            held += usize::from(i % 20 == 0);
            passed += usize::from(through && i % 20 != 0);
            assert!(through || i % 20 != 0, "the filter turned away held key {i}");
        }
        assert_eq!(held, 5_000);
        assert!(passed < 95_000 / 10, "{passed} of 95,000 unheld keys passed the filter");
    }
}
