//! Which Parquet columns are written without a dictionary.
//!
//! parquet-rs starts every column chunk with a dictionary and falls back to
//! plain encoding once the dictionary outgrows its page limit. For a column
//! whose values rarely repeat (ids, timestamps, coordinates, amounts) that is
//! work for nothing: every value is hashed and interned until the fallback,
//! in every row group. In a small file — a `day(…)` partition of a few
//! thousand rows — the fallback never comes: the whole column is interned and
//! stored as a dictionary as large as the column, plus an index per row.
//!
//! So each run looks once at the first decoded batch with enough rows (every
//! sink of the run shares the [`DictionaryPlan`]) and models each leaf column
//! as draws from a domain of some number of equally likely values, estimated
//! from how many distinct values the batch holds (a column whose values all
//! differ has no bound). When a file is opened, a column is written plain if,
//! in a row group of the rows the file is expected to hold, its dictionary
//! would not pay — at least half as many distinct values as rows — or would
//! not fit the dictionary page limit (parquet-rs would fall back anyway). A
//! zip code (some 17,000 values) keeps its dictionary in a row group of a
//! million rows and is written plain in a partition of 3,000; an order id is
//! plain everywhere; a status keeps its dictionary everywhere.
//!
//! Columns with too few values in that batch, booleans, and every column of a
//! run that never saw a batch large enough (a small export) keep parquet-rs's
//! default. A column that looks more varied in that batch than it is later
//! loses only some compression, never a value.
//!
//! Measured on the 2M-item corpus (`perf` builds, four alternating rounds):
//! `--partition-by 'day(createdAt)'` 11.7 → 9.7 s median, 22 → 18.5 CPU-s,
//! 241 → 206 MB written; `--partition-by status` 5.0 → 4.7 s, 187 → 173 MB;
//! a plain conversion the same time, 171.7 → 171.0 MB. The dictionary
//! interner's share of the CPU: 7.7 % → 1.2 % (`day`), 9.6 % → 3.7 % (`status`).

use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayData, RecordBatch};
use arrow::datatypes::DataType;
use parquet::arrow::ArrowSchemaConverter;
use parquet::schema::types::ColumnPath;

/// Rows a batch needs for the run's plan to be decided from it.
pub const MIN_ROWS: usize = 4096;
/// Non-null values a column needs in that batch to be judged at all.
pub const MIN_VALUES: usize = 256;
/// The dictionary page limit every Parquet file is written with: a column
/// with more distinct values than fit in it gains little from a dictionary.
pub const DICTIONARY_PAGE_LIMIT: usize = 256 << 10;

/// The run's model of its columns, shared by every sink of a run (clones share it).
#[derive(Clone, Default, Debug)]
pub struct DictionaryPlan(Arc<OnceLock<Model>>);

/// What the deciding batch showed: the leaves judged for a dictionary, and
/// the nearly empty ones ([`super::sparse`]).
#[derive(Debug)]
struct Model {
    leaves: Vec<Leaf>,
    sparse: Vec<ColumnPath>,
}

/// What the deciding batch showed of one leaf column.
#[derive(Clone, Debug, PartialEq)]
pub struct Leaf {
    pub path: ColumnPath,
    /// Estimated number of distinct values the column draws from
    /// (`f64::INFINITY`: every value differed).
    pub domain: f64,
    /// Bytes a value takes in a dictionary (as Arrow holds it; byte arrays
    /// with their 4-byte length).
    pub bytes: f64,
}

impl DictionaryPlan {
    /// The columns to write plain in a file opened with rows like `sample`
    /// whose row groups are expected to hold `rows` rows. The run's model is
    /// made from `sample` if it is not made yet and `sample` is large enough;
    /// without a model, none.
    pub fn plain_columns(&self, sample: &RecordBatch, rows: usize) -> Vec<ColumnPath> {
        let Some(model) = self.model(sample) else { return Vec::new() };
        model.leaves.iter().filter(|l| l.plain_at(rows)).map(|l| l.path.clone()).collect()
    }

    /// The columns to write uncompressed in a file whose first rows are
    /// `sample`: nearly empty in the run's deciding batch and in `sample`
    /// too (see [`super::sparse`]). Without a model, none.
    pub fn uncompressed_columns(&self, sample: &RecordBatch) -> Vec<ColumnPath> {
        let Some(model) = self.model(sample) else { return Vec::new() };
        let here = super::sparse::sparse_leaves(sample);
        model.sparse.iter().filter(|p| here.contains(p)).cloned().collect()
    }

    fn model(&self, sample: &RecordBatch) -> Option<&Model> {
        match self.0.get() {
            Some(m) => Some(m),
            None if sample.num_rows() >= MIN_ROWS => Some(
                self.0.get_or_init(|| Model { leaves: judge(sample), sparse: super::sparse::sparse_leaves(sample) }),
            ),
            None => None,
        }
    }
}

impl Leaf {
    /// Whether a dictionary would not pay in a row group of `rows` rows.
    pub fn plain_at(&self, rows: usize) -> bool {
        let rows = rows.max(1) as f64;
        let distinct = expected_distinct(self.domain, rows);
        distinct * 2.0 >= rows || distinct * self.bytes >= DICTIONARY_PAGE_LIMIT as f64
    }
}

/// Distinct values among `rows` draws from `domain` equally likely values.
fn expected_distinct(domain: f64, rows: f64) -> f64 {
    match domain.is_finite() {
        true => domain * -(-rows / domain).exp_m1(),
        false => rows,
    }
}

/// The domain that `distinct` values among `n` draws point to: the `K` with
/// `expected_distinct(K, n) == distinct` (infinite when every value differed).
fn estimate_domain(n: usize, distinct: usize) -> f64 {
    if distinct >= n {
        return f64::INFINITY;
    }
    let (n, d) = (n as f64, distinct as f64);
    // expected_distinct grows with K, from below d (K = d) towards n: bisect on a log scale.
    let (mut lo, mut hi) = (d, d * 2.0);
    while expected_distinct(hi, n) < d {
        hi *= 2.0;
        if hi > 1e15 {
            return f64::INFINITY;
        }
    }
    for _ in 0..64 {
        let mid = (lo * hi).sqrt();
        match expected_distinct(mid, n) < d {
            true => lo = mid,
            false => hi = mid,
        }
    }
    hi
}

/// Every leaf column of `batch` with enough values, as Parquet names it.
/// Empty if the batch's leaves cannot be matched to Parquet's.
pub fn judge(batch: &RecordBatch) -> Vec<Leaf> {
    let Ok(descr) = ArrowSchemaConverter::new().convert(batch.schema_ref()) else { return Vec::new() };
    let mut leaves = Vec::new();
    for c in batch.columns() {
        arrow_leaves(c.to_data(), &mut leaves);
    }
    if leaves.len() != descr.num_columns() {
        return Vec::new();
    }
    leaves
        .iter()
        .zip(descr.columns())
        .filter_map(|(data, col)| {
            let (n, distinct, bytes) = count_distinct(data)?;
            Some(Leaf { path: col.path().clone(), domain: estimate_domain(n, distinct), bytes })
        })
        .collect()
}

/// The leaf arrays under `data`, depth first: the order of Parquet's leaf columns.
pub(super) fn arrow_leaves(data: ArrayData, out: &mut Vec<ArrayData>) {
    match data.data_type() {
        DataType::Struct(_)
        | DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(_, _)
        | DataType::Map(_, _) => {
            for child in data.child_data() {
                arrow_leaves(child.clone(), out);
            }
        }
        _ => out.push(data),
    }
}

/// A leaf's non-null values, how many differ, and their mean size in a
/// dictionary; `None` below [`MIN_VALUES`] values, for booleans, and for
/// types other than byte arrays and fixed-width values.
fn count_distinct(data: &ArrayData) -> Option<(usize, usize, f64)> {
    let valid = |i: usize| data.nulls().is_none_or(|n| n.is_valid(i));
    let len = data.len();
    let (values, length_prefix): (Vec<&[u8]>, usize) = match data.data_type() {
        DataType::Utf8 | DataType::Binary => {
            let (offsets, bytes) = (data.buffer::<i32>(0), data.buffers()[1].as_slice());
            let v = (0..len).filter(|&i| valid(i));
            (v.map(|i| &bytes[offsets[i] as usize..offsets[i + 1] as usize]).collect(), 4)
        }
        DataType::LargeUtf8 | DataType::LargeBinary => {
            let (offsets, bytes) = (data.buffer::<i64>(0), data.buffers()[1].as_slice());
            let v = (0..len).filter(|&i| valid(i));
            (v.map(|i| &bytes[offsets[i] as usize..offsets[i + 1] as usize]).collect(), 4)
        }
        DataType::Boolean => return None,
        t => {
            let w = t.primitive_width()?;
            let bytes = &data.buffers()[0].as_slice()[data.offset() * w..];
            ((0..len).filter(|&i| valid(i)).map(|i| &bytes[i * w..(i + 1) * w]).collect(), 0)
        }
    };
    if values.len() < MIN_VALUES {
        return None;
    }
    let total: usize = values.iter().map(|v| v.len() + length_prefix).sum();
    let mut seen: rustc_hash::FxHashSet<&[u8]> = Default::default();
    seen.reserve(values.len());
    seen.extend(values.iter().copied());
    Some((values.len(), seen.len(), total as f64 / values.len() as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        ArrayRef, BooleanArray, Decimal128Array, Int64Array, Int64Builder, ListBuilder, StringArray, StringBuilder,
        StructBuilder,
    };
    use arrow::datatypes::{Field, Fields, Schema};

    fn path(p: &str) -> ColumnPath {
        ColumnPath::new(p.split('.').map(String::from).collect())
    }

    /// A pseudo-random draw in `0..k` (deterministic).
    fn draw(i: usize, k: usize) -> usize {
        let x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 32) as usize % k
    }

    /// `n` rows: a unique id, a status of five values, a unique decimal, a
    /// flag, a column set on one row in fifty (unique, but too few values to
    /// judge), a zip drawn from 3,000 values, and a list of structs: a
    /// unique SKU and a small quantity.
    fn batch(n: usize) -> RecordBatch {
        let id: StringArray = (0..n).map(|i| Some(format!("order-{i:08}"))).collect();
        let status: StringArray = (0..n).map(|i| Some(["PAID", "NEW", "SHIPPED", "LOST", "HELD"][i % 5])).collect();
        let amount = Decimal128Array::from((0..n).map(|i| i as i128 * 7 + 1).collect::<Vec<_>>())
            .with_precision_and_scale(18, 2)
            .unwrap();
        let flag: BooleanArray = (0..n).map(|i| Some(i % 3 == 0)).collect();
        let sparse: StringArray = (0..n).map(|i| (i % 50 == 0).then(|| format!("s{i}"))).collect();
        let zip: StringArray = (0..n).map(|i| Some(format!("{:05}", draw(i, 3000)))).collect();
        let mut lines = ListBuilder::new(StructBuilder::from_fields(
            Fields::from(vec![Field::new("sku", DataType::Utf8, true), Field::new("qty", DataType::Int64, true)]),
            0,
        ));
        for i in 0..n {
            for j in 0..2 {
                let s = lines.values();
                s.field_builder::<StringBuilder>(0).unwrap().append_value(format!("SKU-{i}-{j}"));
                s.field_builder::<Int64Builder>(1).unwrap().append_value((i % 4) as i64);
                s.append(true);
            }
            lines.append(true);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(id),
            Arc::new(status),
            Arc::new(amount),
            Arc::new(flag),
            Arc::new(sparse),
            Arc::new(zip),
            Arc::new(lines.finish()),
        ];
        let names = ["id", "status", "amount", "flag", "sparse", "zip", "lines"];
        let fields: Vec<Field> =
            cols.iter().zip(names).map(|(c, n)| Field::new(n, c.data_type().clone(), true)).collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    }

    fn plain(b: &RecordBatch, rows: usize) -> Vec<ColumnPath> {
        DictionaryPlan::default().plain_columns(b, rows)
    }

    #[test]
    fn columns_whose_values_rarely_repeat_are_written_plain() {
        let b = batch(8000);
        let unique = vec![path("id"), path("amount"), path("lines.list.item.sku")];
        // A big row group: the zip's 3,000 values repeat; in 2,000 rows most would differ.
        assert_eq!(plain(&b, 1 << 20), unique);
        assert_eq!(plain(&b, 2000), vec![path("id"), path("amount"), path("zip"), path("lines.list.item.sku")]);
        // 20 rows: five statuses still repeat; four quantities too.
        assert_eq!(plain(&b, 20), vec![path("id"), path("amount"), path("zip"), path("lines.list.item.sku")]);
    }

    /// The domain a column draws from is estimated from its distinct values.
    #[test]
    fn the_domain_is_estimated_from_a_sample() {
        for (k, n) in [(20_000, 16_384), (3000, 8000), (100_000, 16_384), (50, 5000)] {
            let distinct: std::collections::HashSet<usize> = (0..n).map(|i| draw(i, k)).collect();
            let est = estimate_domain(n, distinct.len());
            assert!((est - k as f64).abs() < 0.1 * k as f64, "domain {k}, {n} draws: estimated {est}");
        }
        assert_eq!(estimate_domain(1000, 1000), f64::INFINITY);
    }

    /// A column of many values with long spellings is plain even where they
    /// would repeat: its dictionary would not fit the page limit.
    #[test]
    fn a_dictionary_past_the_page_limit_is_not_attempted() {
        let n = 16_384;
        let long: StringArray = (0..n).map(|i| Some(format!("{:040}", draw(i, 40_000)))).collect();
        let short = Int64Array::from((0..n).map(|i| draw(i, 40_000) as i64).collect::<Vec<_>>());
        let b =
            RecordBatch::try_from_iter([("long", Arc::new(long) as ArrayRef), ("short", Arc::new(short) as ArrayRef)])
                .unwrap();
        let leaves = judge(&b);
        // A million rows: 40,000 distinct values, a few percent of the rows, but 40,000 × 44
        // bytes is past 256 KiB; 40,000 × 8 is too.
        assert!(leaves.iter().all(|l| l.plain_at(1 << 20)), "{leaves:?}");
        // 10,000 draws from 1,000 four-byte values: 32 KiB, and they repeat.
        let few = Int64Array::from((0..n).map(|i| draw(i, 1000) as i64).collect::<Vec<_>>());
        let b = RecordBatch::try_from_iter([("few", Arc::new(few) as ArrayRef)]).unwrap();
        assert!(!judge(&b)[0].plain_at(1 << 20));
    }

    /// A slice is judged on its own rows (offsets into shared buffers are honoured).
    #[test]
    fn a_slice_is_judged_on_its_rows() {
        let b = batch(16_000);
        assert_eq!(plain(&b.slice(8000, 8000), 1 << 20), plain(&batch(8000), 1 << 20));
        let ids: Int64Array = (0..2000i64).map(|i| Some(i % 2)).chain((0..2000i64).map(Some)).collect();
        let b = RecordBatch::try_from_iter([("a", Arc::new(ids) as ArrayRef)]).unwrap();
        assert!(!judge(&b.slice(0, 2000))[0].plain_at(1000));
        assert!(judge(&b.slice(2000, 2000))[0].plain_at(1000));
    }

    /// The run decides once, from the first batch with enough rows; smaller
    /// batches before it get the default and do not decide.
    #[test]
    fn the_model_is_made_once_from_a_large_enough_batch() {
        let plan = DictionaryPlan::default();
        let shared = plan.clone();
        assert!(plan.plain_columns(&batch(MIN_ROWS - 1), 1 << 20).is_empty());
        assert_eq!(shared.plain_columns(&batch(MIN_ROWS), 1 << 20).len(), 3);
        // Made: a later batch, whatever it holds, gets the same model.
        assert_eq!(plan.plain_columns(&batch(10), 1 << 20).len(), 3);
    }
}
