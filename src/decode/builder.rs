//! Column buffers that can be rolled back.
//!
//! Arrow's builders cannot undo an append, but decoding must: when a value
//! deep inside an attribute turns out not to fit the schema, the whole
//! attribute goes to the catch-all column, and when a line is malformed, the
//! whole item goes to the rejects. So each column is a plain buffer with a
//! `truncate(rows)`, turned into an Arrow array at `finish`.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Decimal128Array, Float64Array, Int64Array, ListArray, MapArray, StringArray,
    StructArray, TimestampMicrosecondArray,
};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, FieldRef, Fields};

use crate::schema::arrow::data_type;
use crate::schema::{ColumnType, TimestampSource};

/// What a text column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// `S`, or scalars kept as text.
    String,
    /// `N` as exact decimal text.
    Number,
    /// Any value as DynamoDB JSON.
    Json,
}

/// A column's buffers, filled row by row.
///
/// `repr(C)` with `valid` first in every variant puts the validity at one
/// offset whatever the variant, so `len()` (asked per value, to pad absent
/// members and catch repeated ones) is one load instead of a jump on the tag.
#[derive(Debug)]
#[repr(C)]
pub enum Builder {
    Text {
        valid: Vec<bool>,
        kind: TextKind,
        offsets: Vec<i32>,
        data: Vec<u8>,
    },
    Binary {
        valid: Vec<bool>,
        offsets: Vec<i32>,
        data: Vec<u8>,
    },
    Int64 {
        valid: Vec<bool>,
        values: Vec<i64>,
    },
    Decimal {
        valid: Vec<bool>,
        precision: u8,
        scale: u8,
        values: Vec<i128>,
    },
    Float64 {
        valid: Vec<bool>,
        values: Vec<f64>,
    },
    Boolean {
        valid: Vec<bool>,
        values: Vec<bool>,
    },
    Timestamp {
        valid: Vec<bool>,
        source: TimestampSource,
        values: Vec<i64>,
    },
    List {
        valid: Vec<bool>,
        set: bool,
        field: FieldRef,
        offsets: Vec<i32>,
        child: Box<Builder>,
    },
    Struct {
        valid: Vec<bool>,
        fields: Fields,
        children: Vec<Builder>,
        /// Attribute names of the members, in order.
        names: Vec<Box<[u8]>>,
        /// Which names a cursor may check in place (`syntax::plain_name`).
        plain: Vec<bool>,
        lookup: HashMap<Box<[u8]>, usize>,
    },
    Map {
        valid: Vec<bool>,
        field: FieldRef,
        offsets: Vec<i32>,
        keys: Box<Builder>,
        values: Box<Builder>,
    },
}

impl Builder {
    pub fn new(t: &ColumnType) -> Builder {
        let text = |kind| Builder::Text { kind, offsets: vec![0], data: Vec::new(), valid: Vec::new() };
        match t {
            ColumnType::String => text(TextKind::String),
            ColumnType::Number => text(TextKind::Number),
            ColumnType::Json => text(TextKind::Json),
            ColumnType::Binary => Builder::Binary { offsets: vec![0], data: Vec::new(), valid: Vec::new() },
            ColumnType::Int64 => Builder::Int64 { values: Vec::new(), valid: Vec::new() },
            ColumnType::Decimal { precision, scale } => {
                Builder::Decimal { precision: *precision, scale: *scale, values: Vec::new(), valid: Vec::new() }
            }
            ColumnType::Float64 => Builder::Float64 { values: Vec::new(), valid: Vec::new() },
            ColumnType::Boolean => Builder::Boolean { values: Vec::new(), valid: Vec::new() },
            ColumnType::Timestamp(source) => {
                Builder::Timestamp { source: *source, values: Vec::new(), valid: Vec::new() }
            }
            ColumnType::List(e) | ColumnType::Set(e) => {
                let DataType::List(field) = data_type(t) else { unreachable!("lists map to List") };
                Builder::List {
                    set: matches!(t, ColumnType::Set(_)),
                    field,
                    offsets: vec![0],
                    child: Box::new(Builder::new(e)),
                    valid: Vec::new(),
                }
            }
            ColumnType::Struct(fs) => {
                let DataType::Struct(fields) = data_type(t) else { unreachable!("structs map to Struct") };
                Builder::Struct {
                    fields,
                    children: fs.iter().map(|f| Builder::new(&f.ty)).collect(),
                    names: fs.iter().map(|f| f.attribute.as_bytes().into()).collect(),
                    plain: fs.iter().map(|f| super::syntax::plain_name(f.attribute.as_bytes())).collect(),
                    lookup: fs.iter().enumerate().map(|(i, f)| (f.attribute.as_bytes().into(), i)).collect(),
                    valid: Vec::new(),
                }
            }
            ColumnType::Map(v) => {
                let DataType::Map(field, _) = data_type(t) else { unreachable!("maps map to Map") };
                Builder::Map {
                    field,
                    offsets: vec![0],
                    keys: Box::new(text(TextKind::String)),
                    values: Box::new(Builder::new(v)),
                    valid: Vec::new(),
                }
            }
        }
    }

    fn valid(&self) -> &Vec<bool> {
        match self {
            Builder::Text { valid, .. }
            | Builder::Binary { valid, .. }
            | Builder::Int64 { valid, .. }
            | Builder::Decimal { valid, .. }
            | Builder::Float64 { valid, .. }
            | Builder::Boolean { valid, .. }
            | Builder::Timestamp { valid, .. }
            | Builder::List { valid, .. }
            | Builder::Struct { valid, .. }
            | Builder::Map { valid, .. } => valid,
        }
    }

    /// A column of single values (not a list, struct, map or JSON column).
    #[inline]
    pub fn is_scalar(&self) -> bool {
        !matches!(
            self,
            Builder::List { .. }
                | Builder::Struct { .. }
                | Builder::Map { .. }
                | Builder::Text { kind: TextKind::Json, .. }
        )
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.valid().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append a null.
    pub fn push_null(&mut self) {
        match self {
            Builder::Text { offsets, valid, .. } | Builder::Binary { offsets, valid, .. } => {
                offsets.push(*offsets.last().unwrap());
                valid.push(false);
            }
            Builder::Int64 { values, valid } | Builder::Timestamp { values, valid, .. } => {
                values.push(0);
                valid.push(false);
            }
            Builder::Decimal { values, valid, .. } => {
                values.push(0);
                valid.push(false);
            }
            Builder::Float64 { values, valid } => {
                values.push(0.0);
                valid.push(false);
            }
            Builder::Boolean { values, valid } => {
                values.push(false);
                valid.push(false);
            }
            Builder::List { offsets, valid, .. } | Builder::Map { offsets, valid, .. } => {
                offsets.push(*offsets.last().unwrap());
                valid.push(false);
            }
            Builder::Struct { children, valid, .. } => {
                for c in children {
                    c.push_null();
                }
                valid.push(false);
            }
        }
    }

    /// Append `n` nulls (in bulk for the common shapes).
    #[inline]
    pub fn push_nulls(&mut self, n: usize) {
        // Usually none: most attributes are in most items.
        if n > 0 {
            self.pad_nulls(n);
        }
    }

    fn pad_nulls(&mut self, n: usize) {
        match self {
            Builder::Text { offsets, valid, .. } | Builder::Binary { offsets, valid, .. } => {
                let last = *offsets.last().unwrap();
                offsets.resize(offsets.len() + n, last);
                valid.resize(valid.len() + n, false);
            }
            Builder::Int64 { values, valid } | Builder::Timestamp { values, valid, .. } => {
                values.resize(values.len() + n, 0);
                valid.resize(valid.len() + n, false);
            }
            Builder::Decimal { values, valid, .. } => {
                values.resize(values.len() + n, 0);
                valid.resize(valid.len() + n, false);
            }
            Builder::Float64 { values, valid } => {
                values.resize(values.len() + n, 0.0);
                valid.resize(valid.len() + n, false);
            }
            Builder::Boolean { values, valid } => {
                values.resize(values.len() + n, false);
                valid.resize(valid.len() + n, false);
            }
            Builder::List { offsets, valid, .. } | Builder::Map { offsets, valid, .. } => {
                let last = *offsets.last().unwrap();
                offsets.resize(offsets.len() + n, last);
                valid.resize(valid.len() + n, false);
            }
            Builder::Struct { children, valid, .. } => {
                for c in children {
                    c.pad_nulls(n);
                }
                valid.resize(valid.len() + n, false);
            }
        }
    }

    /// Drop everything after the first `rows` rows, including what a nested
    /// value cut short left in the children (a list's first elements, a
    /// struct's first members) even when its own row was never added.
    pub fn truncate(&mut self, rows: usize) {
        let rows = rows.min(self.len());
        match self {
            Builder::Text { offsets, data, valid, .. } | Builder::Binary { offsets, data, valid } => {
                data.truncate(offsets[rows] as usize);
                offsets.truncate(rows + 1);
                valid.truncate(rows);
            }
            Builder::Int64 { values, valid } | Builder::Timestamp { values, valid, .. } => {
                values.truncate(rows);
                valid.truncate(rows);
            }
            Builder::Decimal { values, valid, .. } => {
                values.truncate(rows);
                valid.truncate(rows);
            }
            Builder::Float64 { values, valid } => {
                values.truncate(rows);
                valid.truncate(rows);
            }
            Builder::Boolean { values, valid } => {
                values.truncate(rows);
                valid.truncate(rows);
            }
            Builder::List { offsets, child, valid, .. } => {
                child.truncate(offsets[rows] as usize);
                offsets.truncate(rows + 1);
                valid.truncate(rows);
            }
            Builder::Map { offsets, keys, values, valid, .. } => {
                keys.truncate(offsets[rows] as usize);
                values.truncate(offsets[rows] as usize);
                offsets.truncate(rows + 1);
                valid.truncate(rows);
            }
            Builder::Struct { children, valid, .. } => {
                for c in children {
                    c.truncate(rows);
                }
                valid.truncate(rows);
            }
        }
    }

    /// Roughly how many bytes are buffered (for flushing by size).
    pub fn byte_size(&self) -> usize {
        match self {
            Builder::Text { data, offsets, .. } | Builder::Binary { data, offsets, .. } => {
                data.len() + offsets.len() * 4
            }
            Builder::Int64 { values, .. } | Builder::Timestamp { values, .. } => values.len() * 8,
            Builder::Decimal { values, .. } => values.len() * 16,
            Builder::Float64 { values, .. } => values.len() * 8,
            Builder::Boolean { values, .. } => values.len(),
            Builder::List { child, offsets, .. } => child.byte_size() + offsets.len() * 4,
            Builder::Map { keys, values, offsets, .. } => keys.byte_size() + values.byte_size() + offsets.len() * 4,
            Builder::Struct { children, .. } => children.iter().map(Builder::byte_size).sum(),
        }
    }

    /// Turn the buffered rows into an Arrow array and start afresh.
    pub fn finish(&mut self) -> ArrayRef {
        /// The buffer, leaving an empty one with the same capacity: the next
        /// batch is usually as big, and growing by doubling costs copies.
        fn take<T>(v: &mut Vec<T>) -> Vec<T> {
            let cap = v.len();
            std::mem::replace(v, Vec::with_capacity(cap))
        }
        fn nulls(valid: &mut Vec<bool>) -> Option<NullBuffer> {
            let v = take(valid);
            if v.iter().all(|b| *b) { None } else { Some(NullBuffer::new(pack_bools(&v))) }
        }
        fn offsets(o: &mut Vec<i32>) -> OffsetBuffer<i32> {
            let mut next = Vec::with_capacity(o.len());
            next.push(0);
            let v = std::mem::replace(o, next);
            debug_assert!(v.first() == Some(&0) && v.windows(2).all(|w| w[0] <= w[1]));
            // SAFETY: offsets are pushed monotonically from 0 by construction
            // (and truncation keeps a prefix), which is what this checks.
            unsafe { OffsetBuffer::new_unchecked(ScalarBuffer::from(v)) }
        }
        match self {
            Builder::Text { offsets: o, data, valid, .. } => {
                let n = nulls(valid);
                let data = Buffer::from_vec(take(data));
                let o = offsets(o);
                // SAFETY: every byte comes from a line checked to be UTF-8, from
                // a JSON unescape that writes UTF-8, or from ASCII we write.
                debug_assert!(std::str::from_utf8(data.as_slice()).is_ok());
                Arc::new(unsafe { StringArray::new_unchecked(o, data, n) })
            }
            Builder::Binary { offsets: o, data, valid } => {
                let n = nulls(valid);
                Arc::new(BinaryArray::new(offsets(o), Buffer::from_vec(take(data)), n))
            }
            Builder::Int64 { values, valid } => {
                let n = nulls(valid);
                Arc::new(Int64Array::new(take(values).into(), n))
            }
            Builder::Decimal { precision, scale, values, valid } => {
                let n = nulls(valid);
                let a = Decimal128Array::new(take(values).into(), n)
                    .with_precision_and_scale(*precision, *scale as i8)
                    .expect("schema types have 1 <= precision <= 38 and scale <= precision");
                Arc::new(a)
            }
            Builder::Float64 { values, valid } => {
                let n = nulls(valid);
                Arc::new(Float64Array::new(take(values).into(), n))
            }
            Builder::Boolean { values, valid } => {
                let n = nulls(valid);
                let v = take(values);
                Arc::new(BooleanArray::new(pack_bools(&v), n))
            }
            Builder::Timestamp { values, valid, .. } => {
                let n = nulls(valid);
                Arc::new(TimestampMicrosecondArray::new(take(values).into(), n).with_timezone("UTC"))
            }
            Builder::List { field, offsets: o, child, valid, .. } => {
                let n = nulls(valid);
                Arc::new(ListArray::new(field.clone(), offsets(o), child.finish(), n))
            }
            Builder::Struct { fields, children, valid, .. } => {
                let len = valid.len();
                let n = nulls(valid);
                let arrays: Vec<ArrayRef> = children.iter_mut().map(Builder::finish).collect();
                if fields.is_empty() {
                    return Arc::new(StructArray::new_empty_fields(len, n));
                }
                Arc::new(StructArray::new(fields.clone(), arrays, n))
            }
            Builder::Map { field, offsets: o, keys, values, valid } => {
                let n = nulls(valid);
                let DataType::Struct(entry_fields) = field.data_type() else { unreachable!("map entries are structs") };
                let entries = StructArray::new(entry_fields.clone(), vec![keys.finish(), values.finish()], None);
                Arc::new(MapArray::new(field.clone(), offsets(o), entries, n, false))
            }
        }
    }
}

/// Append `s` to `data`. Most values are short (ids, codes, names, numbers'
/// text), and a call to `memcpy` for each cost more than the copy: up to 32
/// bytes are moved here as two overlapping loads and stores.
#[inline(always)]
pub(crate) fn append(data: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n > 32 {
        data.extend_from_slice(s);
        return;
    }
    data.reserve(n);
    let len = data.len();
    // SAFETY: `reserve` made room for `n` more bytes; every load below reads
    // inside `s` and every store writes inside `data[len..len + n]` (the two
    // halves overlap when `n` is not a power of two), so all `n` bytes are
    // initialised before `set_len`.
    unsafe {
        let (src, dst) = (s.as_ptr(), data.as_mut_ptr().add(len));
        match n {
            16..=32 => {
                let (a, b) = (src.cast::<u128>().read_unaligned(), src.add(n - 16).cast::<u128>().read_unaligned());
                dst.cast::<u128>().write_unaligned(a);
                dst.add(n - 16).cast::<u128>().write_unaligned(b);
            }
            8..=15 => {
                let (a, b) = (src.cast::<u64>().read_unaligned(), src.add(n - 8).cast::<u64>().read_unaligned());
                dst.cast::<u64>().write_unaligned(a);
                dst.add(n - 8).cast::<u64>().write_unaligned(b);
            }
            4..=7 => {
                let (a, b) = (src.cast::<u32>().read_unaligned(), src.add(n - 4).cast::<u32>().read_unaligned());
                dst.cast::<u32>().write_unaligned(a);
                dst.add(n - 4).cast::<u32>().write_unaligned(b);
            }
            1..=3 => {
                *dst = *src;
                *dst.add(n / 2) = *src.add(n / 2);
                *dst.add(n - 1) = *src.add(n - 1);
            }
            _ => {}
        }
        data.set_len(len + n);
    }
}

/// Bytes of `true`/`false` as Arrow's bitmap (bit `i` of byte `i / 8`,
/// least significant first), eight at a time: the eight bytes (each 0 or 1)
/// read as a little-endian word and multiplied by Σ 2^(7k), k = 1..8, put
/// byte `i`'s bit at bit 56 + i, with no two partial products on the same
/// bit (so no carries), and the top byte is the eight bits in order.
/// `BooleanBuffer::from(&[bool])` sets them one by one.
pub(crate) fn pack_bools(v: &[bool]) -> BooleanBuffer {
    const SPREAD: u64 = 0x0102_0408_1020_4080;
    let mut bytes = Vec::with_capacity(v.len().div_ceil(8));
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(std::array::from_fn(|i| u8::from(c[i])));
        bytes.push((w.wrapping_mul(SPREAD) >> 56) as u8);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        bytes.push(rest.iter().enumerate().fold(0u8, |acc, (i, &b)| acc | (u8::from(b) << i)));
    }
    BooleanBuffer::new(Buffer::from_vec(bytes), 0, v.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::Rng;

    #[test]
    fn append_copies_every_length() {
        // Every length up to and past the word moves, into buffers with and
        // without room, at every alignment of the source.
        let src: Vec<u8> = (0..80u8).map(|i| i.wrapping_mul(37).wrapping_add(1)).collect();
        for start in 0..8 {
            for n in 0..=40 {
                for cap in [0, n, n + 3, 64] {
                    let mut data = Vec::with_capacity(cap);
                    data.extend_from_slice(b"ab");
                    append(&mut data, &src[start..start + n]);
                    let mut want = b"ab".to_vec();
                    want.extend_from_slice(&src[start..start + n]);
                    assert_eq!(data, want, "start {start}, length {n}, capacity {cap}");
                }
            }
        }
    }

    #[test]
    fn nulls_in_bulk_are_nulls_one_by_one() {
        use crate::schema::{ColumnType, Field};
        let field = Field::new;
        let types = [
            ColumnType::String,
            ColumnType::Binary,
            ColumnType::Int64,
            ColumnType::Decimal { precision: 18, scale: 2 },
            ColumnType::Float64,
            ColumnType::Boolean,
            ColumnType::List(Box::new(ColumnType::Int64)),
            ColumnType::Map(Box::new(ColumnType::String)),
            ColumnType::Struct(vec![
                field("a", ColumnType::Float64),
                field("b", ColumnType::Struct(vec![field("c", ColumnType::String)])),
            ]),
        ];
        for t in &types {
            let (mut bulk, mut single) = (Builder::new(t), Builder::new(t));
            bulk.push_nulls(5);
            for _ in 0..5 {
                single.push_null();
            }
            assert_eq!(bulk.len(), 5, "{t:?}");
            assert_eq!(bulk.finish().to_data(), single.finish().to_data(), "{t:?}");
        }
    }

    #[test]
    fn packed_bools_are_arrows_bitmap() {
        let mut rng = Rng::new(7);
        for len in (0..70).chain([1000, 16_384, 16_389]) {
            for density in [0, 1, 2, 3] {
                let v: Vec<bool> = (0..len)
                    .map(|_| match density {
                        0 => false,
                        3 => true,
                        d => rng.below(4) < d as u64,
                    })
                    .collect();
                let packed = pack_bools(&v);
                assert_eq!(packed, BooleanBuffer::from(&v[..]), "length {len}, density {density}");
                assert_eq!(packed.iter().collect::<Vec<_>>(), v);
            }
        }
    }
}
