//! Which Parquet columns are written without compression.
//!
//! DynamoDB items are schemaless: an export often has attributes that few
//! items hold, and each becomes a column that is almost all nulls. A codec
//! saves next to nothing on such a column's pages (definition levels and a
//! few values: 0.12 % of a plain conversion's bytes for the corpus's 50 such
//! columns in files of a million rows) and costs on every column chunk: parquet-rs makes a zstd
//! compressor and decompressor for each column writer (each probes the CPU
//! with `cpuid`, which traps on a virtual machine), and every page pays a
//! frame. A `day(…)` partitioning of the benchmark corpus writes 762 files in
//! which 50 of the ~80 leaf columns are nearly empty.
//!
//! A leaf is *sparse* when its values take less than [`BYTES_PER_ROW`] a row
//! as Parquet stores them plain (fixed-width values at their width, byte
//! arrays with their 4-byte length, booleans counted as a byte). A column is
//! written uncompressed when it is sparse in the run's deciding batch (the
//! one [`super::dictionary`] models the run from: thousands of rows) and in
//! the file's first rows too — so an attribute that appears only in some
//! days' partitions keeps its compression there. A column that fills up
//! later in a file loses only compression, never a value.
//!
//! Measured (2M-item corpus, `perf` builds, three alternating rounds):
//! `--partition-by 'day(createdAt)'` 7.31–7.99 s against 7.76–8.99 s, CPU
//! 13.0–14.0 against 14.2–14.7 user-s, 205.3 against 206.1 MB written; a
//! plain conversion the same time, 171.18 against 170.97 MB.

use arrow::array::{ArrayData, RecordBatch};
use arrow::datatypes::DataType;
use parquet::arrow::ArrowSchemaConverter;
use parquet::schema::types::ColumnPath;

use super::dictionary::arrow_leaves;

/// Below this many bytes of values a row, a column is sparse.
pub const BYTES_PER_ROW: usize = 1;

/// The sparse leaves of `batch`, as Parquet names them (none for an empty
/// batch, or one whose leaves cannot be matched to Parquet's).
pub fn sparse_leaves(batch: &RecordBatch) -> Vec<ColumnPath> {
    let n = batch.num_rows();
    let Ok(descr) = ArrowSchemaConverter::new().convert(batch.schema_ref()) else { return Vec::new() };
    let mut leaves = Vec::new();
    for c in batch.columns() {
        arrow_leaves(c.to_data(), &mut leaves);
    }
    if n == 0 || leaves.len() != descr.num_columns() {
        return Vec::new();
    }
    leaves
        .iter()
        .zip(descr.columns())
        .filter(|(data, _)| plain_bytes(data) < n * BYTES_PER_ROW)
        .map(|(_, col)| col.path().clone())
        .collect()
}

/// Bytes a leaf's non-null values take in Parquet's plain encoding (booleans
/// counted as a byte: a column of them is only sparse when they are absent).
fn plain_bytes(data: &ArrayData) -> usize {
    let values = data.len() - data.null_count();
    match data.data_type() {
        DataType::Utf8 | DataType::Binary => {
            let o = data.buffer::<i32>(0);
            4 * values + (o[data.len()] - o[0]) as usize
        }
        DataType::LargeUtf8 | DataType::LargeBinary => {
            let o = data.buffer::<i64>(0);
            4 * values + (o[data.len()] - o[0]) as usize
        }
        t => values * t.primitive_width().unwrap_or(1),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BooleanArray, Int64Array, ListBuilder, StringArray, StringBuilder, StructArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::write::dictionary::DictionaryPlan;

    fn names(v: Vec<ColumnPath>) -> Vec<String> {
        v.into_iter().map(|p| p.string()).collect()
    }

    #[test]
    fn columns_with_less_than_a_byte_a_row_are_the_sparse_ones() {
        let n = 5000;
        // One value in 500 rows, short: sparse. One in 20 of 30 bytes: not.
        let rare: StringArray = (0..n).map(|i| (i % 500 == 0).then_some("abc")).collect();
        let some: StringArray = (0..n).map(|i| (i % 20 == 0).then(|| "x".repeat(30))).collect();
        let empty: StringArray = (0..n).map(|_| Some("")).collect(); // 4 bytes a row as Parquet stores it
        // Absent from the first 4,000 rows, then in every row.
        let late = Int64Array::from((0..n as i64).map(|i| (i >= 4000).then_some(i)).collect::<Vec<_>>());
        let none = Int64Array::from(vec![None::<i64>; n]);
        let dense = Int64Array::from((0..n as i64).collect::<Vec<_>>());
        let flags = BooleanArray::from((0..n).map(|i| Some(i % 2 == 0)).collect::<Vec<_>>());
        // A struct with a dense member and one that is never there.
        let inner = StructArray::from(vec![
            (Arc::new(Field::new("a", DataType::Int64, true)), Arc::new(dense.clone()) as ArrayRef),
            (Arc::new(Field::new("b", DataType::Int64, true)), Arc::new(none.clone()) as ArrayRef),
        ]);
        // A list whose rare elements are long enough to count.
        let mut lb = ListBuilder::new(StringBuilder::new());
        for i in 0..n {
            if i % 100 == 0 {
                lb.values().append_value("y".repeat(200));
            }
            lb.append(true);
        }
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("rare", Arc::new(rare)),
            ("some", Arc::new(some)),
            ("empty", Arc::new(empty)),
            ("late", Arc::new(late)),
            ("none", Arc::new(none)),
            ("dense", Arc::new(dense)),
            ("flags", Arc::new(flags)),
            ("s", Arc::new(inner)),
            ("l", Arc::new(lb.finish())),
        ];
        let schema = Arc::new(Schema::new(
            cols.iter().map(|(k, a)| Field::new(*k, a.data_type().clone(), true)).collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(schema, cols.into_iter().map(|(_, a)| a).collect()).unwrap();
        assert_eq!(names(sparse_leaves(&batch.slice(0, 4096))), ["rare", "late", "none", "s.b"]);
        assert_eq!(names(sparse_leaves(&batch.slice(4000, 1000))), ["rare", "none", "s.b"]);
        assert!(sparse_leaves(&batch.slice(0, 0)).is_empty());

        // The run decides from its first large batch; each file's first rows may veto.
        let plan = DictionaryPlan::default();
        assert!(plan.uncompressed_columns(&batch.slice(0, 100)).is_empty(), "no model from 100 rows");
        assert_eq!(names(plan.uncompressed_columns(&batch.slice(0, 4096))), ["rare", "late", "none", "s.b"]);
        assert_eq!(names(plan.uncompressed_columns(&batch.slice(0, 100))), ["rare", "late", "none", "s.b"]);
        assert_eq!(names(plan.uncompressed_columns(&batch.slice(4000, 20))), ["rare", "none", "s.b"]);
        // `some` is sparse in these 20 rows, but not in the run: compressed.
        assert!(sparse_leaves(&batch.slice(1, 19)).iter().any(|p| p.string() == "some"));
        assert!(!names(plan.uncompressed_columns(&batch.slice(1, 19))).contains(&"some".to_string()));
    }
}
