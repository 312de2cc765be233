//! The decoder: exactness (a property test against an independent reading
//! with serde_dynamo), chunk boundaries, limits and error messages.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Decimal128Type, Field, Float64Type, Int64Type, TimestampMicrosecondType};
use dynolake::decode::{DecodeOptions, Envelope, Inferrer, ItemDecoder};
use dynolake::schema::Schema;
use dynolake::schema::infer::InferOptions;
use proptest::prelude::*;
use serde_dynamo::AttributeValue as AV;

/// Infer exactly, then decode, the given lines fed in chunks of `chunk` bytes.
fn infer_and_decode(data: &[u8], chunk: usize, opts: DecodeOptions) -> (Schema, Vec<RecordBatch>, ItemDecoder) {
    let io = InferOptions::default();
    let mut inf = Inferrer::new(&io, opts.envelope);
    inf.start_file(0, "test.json");
    for c in data.chunks(chunk.max(1)) {
        inf.feed(c).unwrap();
    }
    inf.finish_file().unwrap();
    let schema = inf.stats.schema(&io);
    let (batches, dec) = decode_with(&schema, data, chunk, opts);
    (schema, batches, dec)
}

fn decode_with(schema: &Schema, data: &[u8], chunk: usize, opts: DecodeOptions) -> (Vec<RecordBatch>, ItemDecoder) {
    let mut dec = ItemDecoder::new(schema, opts);
    dec.start_file(0, "test.json");
    let mut out = Vec::new();
    for c in data.chunks(chunk.max(1)) {
        let mut off = 0;
        while off < c.len() {
            off += dec.decode(&c[off..]).unwrap();
            if dec.is_full() {
                out.extend(dec.flush().unwrap());
            }
        }
    }
    dec.finish_file().unwrap();
    out.extend(dec.flush().unwrap());
    (out, dec)
}

/// Decode with `schema` while gathering inference statistics: the schema they call for.
fn schema_while_decoding(schema: &Schema, data: &[u8], chunk: usize) -> (Schema, ItemDecoder) {
    let (_, mut dec) = decode_with(schema, data, chunk, DecodeOptions { collect_stats: true, ..Default::default() });
    let s = dec.take_table_stats().unwrap().schema(&InferOptions::default());
    (s, dec)
}

/// The schema inferred from the first `n` items only.
fn schema_of_first(data: &[u8], n: u64) -> Schema {
    let io = InferOptions::default();
    let mut inf = Inferrer::new(&io, Envelope::Item);
    inf.lines = Some(0..n);
    inf.start_file(0, "test.json");
    inf.feed(data).unwrap();
    inf.finish_file().unwrap();
    inf.stats.schema(&io)
}

pub fn concat(batches: &[RecordBatch]) -> RecordBatch {
    arrow::compute::concat_batches(&batches[0].schema(), batches).unwrap()
}

// ---------- an independent reading of numbers: (negative, digits, exponent) ----------

pub fn norm_number(s: &str) -> (bool, String, i64) {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (mant, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i64>().unwrap()),
        None => (s, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let mut digits = format!("{int}{frac}");
    let mut exp = exp - frac.len() as i64;
    let lead = digits.len() - digits.trim_start_matches('0').len();
    digits.drain(..lead);
    while digits.ends_with('0') {
        digits.pop();
        exp += 1;
    }
    if digits.is_empty() {
        return (false, String::new(), 0);
    }
    (neg, digits, exp)
}

fn decimal_to_norm(v: i128, scale: i8) -> (bool, String, i64) {
    let (_, digits, exp) = norm_number(&format!("{}E-{scale}", v.unsigned_abs()));
    (v < 0, digits, exp)
}

// ---------- comparing an Arrow value with the source value ----------

fn meta(f: &Field) -> &str {
    f.metadata().get("dynolake.type").map(String::as_str).unwrap_or("")
}

/// Compare row `i` of `a` (typed by `f`) with `src` (None: attribute absent).
pub fn check(a: &dyn Array, f: &Field, i: usize, src: Option<&AV>, path: &str) {
    let src = match src {
        None | Some(AV::Null(_)) => {
            assert!(a.is_null(i), "{path}: expected null, got a value");
            return;
        }
        Some(v) => v,
    };
    assert!(!a.is_null(i), "{path}: expected {src:?}, got null");
    match (a.data_type(), src) {
        (DataType::Utf8, v) if meta(f) == "json" => {
            let got: AV = serde_json::from_str(a.as_string::<i32>().value(i)).unwrap();
            same_value(&got, v, path);
        }
        (DataType::Utf8, AV::S(s)) => assert_eq!(a.as_string::<i32>().value(i), s, "{path}"),
        (DataType::Utf8, AV::N(n)) => assert_eq!(a.as_string::<i32>().value(i), n, "{path}"),
        (DataType::Utf8, AV::Bool(b)) => assert_eq!(a.as_string::<i32>().value(i), b.to_string(), "{path}"),
        (DataType::Utf8, AV::B(b)) => {
            use base64::Engine;
            assert_eq!(a.as_string::<i32>().value(i), base64::engine::general_purpose::STANDARD.encode(b), "{path}")
        }
        (DataType::Int64, AV::N(n)) => {
            assert_eq!(norm_number(&a.as_primitive::<Int64Type>().value(i).to_string()), norm_number(n), "{path}")
        }
        (DataType::Decimal128(_, s), AV::N(n)) => {
            let v = a.as_primitive::<Decimal128Type>().value(i);
            assert_eq!(decimal_to_norm(v, *s), norm_number(n), "{path}: {v} at scale {s} vs {n}")
        }
        (DataType::Float64, AV::N(n)) => {
            assert_eq!(a.as_primitive::<Float64Type>().value(i), n.parse::<f64>().unwrap(), "{path}")
        }
        (DataType::Boolean, AV::Bool(b)) => assert_eq!(a.as_boolean().value(i), *b, "{path}"),
        (DataType::Binary, AV::B(b)) => assert_eq!(a.as_binary::<i32>().value(i), b.as_slice(), "{path}"),
        (DataType::Timestamp(_, _), AV::S(_)) => {
            let _ = a.as_primitive::<TimestampMicrosecondType>().value(i);
        }
        (DataType::List(child), AV::L(items)) => {
            let l = a.as_list::<i32>();
            let vals = l.value(i);
            assert_eq!(vals.len(), items.len(), "{path}: list length");
            for (k, item) in items.iter().enumerate() {
                check(vals.as_ref(), child, k, Some(item), &format!("{path}[{k}]"));
            }
        }
        (DataType::List(child), AV::Ss(_) | AV::Ns(_) | AV::Bs(_)) => {
            assert!(meta(f).starts_with("set<"), "{path}: a set lands in a set column");
            let vals = a.as_list::<i32>().value(i);
            let mut got: Vec<String> = (0..vals.len()).map(|k| scalar_text(vals.as_ref(), child, k)).collect();
            let mut want: Vec<String> = match src {
                AV::Ss(v) => v.clone(),
                AV::Ns(v) => v.iter().map(|n| format!("{:?}", norm_number(n))).collect(),
                AV::Bs(v) => v.iter().map(|b| format!("{b:?}")).collect(),
                _ => unreachable!(),
            };
            got.sort();
            want.sort();
            assert_eq!(got, want, "{path}: set members");
        }
        (DataType::Struct(fields), AV::M(m)) => {
            let s = a.as_struct();
            for (cf, col) in fields.iter().zip(s.columns()) {
                let attr = cf.metadata().get("dynolake.attribute").unwrap();
                check(col.as_ref(), cf, i, m.get(attr), &format!("{path}.{attr}"));
            }
            for k in m.keys() {
                assert!(fields.iter().any(|cf| cf.metadata()["dynolake.attribute"] == *k), "{path}: member {k} lost");
            }
        }
        (DataType::Map(entry, _), AV::M(m)) => {
            let DataType::Struct(ef) = entry.data_type() else { unreachable!() };
            let entries = a.as_map().value(i);
            let keys = entries.column(0).as_string::<i32>();
            assert_eq!(entries.len(), m.len(), "{path}: map size");
            for k in 0..entries.len() {
                let key = keys.value(k);
                check(entries.column(1).as_ref(), &ef[1], k, m.get(key), &format!("{path}{{{key}}}"));
            }
        }
        (dt, v) => panic!("{path}: a {dt} column cannot hold {v:?}"),
    }
}

fn scalar_text(a: &dyn Array, f: &Field, k: usize) -> String {
    match a.data_type() {
        DataType::Utf8 if meta(f) == "number" => format!("{:?}", norm_number(a.as_string::<i32>().value(k))),
        DataType::Utf8 => a.as_string::<i32>().value(k).to_string(),
        DataType::Int64 => format!("{:?}", norm_number(&a.as_primitive::<Int64Type>().value(k).to_string())),
        DataType::Decimal128(_, s) => format!("{:?}", decimal_to_norm(a.as_primitive::<Decimal128Type>().value(k), *s)),
        DataType::Binary => format!("{:?}", a.as_binary::<i32>().value(k).to_vec()),
        dt => panic!("set of {dt}"),
    }
}

/// Values equal, numbers as exact decimals, sets as sets.
fn same_value(a: &AV, b: &AV, path: &str) {
    match (a, b) {
        (AV::N(x), AV::N(y)) => assert_eq!(norm_number(x), norm_number(y), "{path}"),
        (AV::Ns(x), AV::Ns(y)) => {
            let mut x: Vec<_> = x.iter().map(|n| norm_number(n)).collect();
            let mut y: Vec<_> = y.iter().map(|n| norm_number(n)).collect();
            x.sort();
            y.sort();
            assert_eq!(x, y, "{path}")
        }
        (AV::Ss(x), AV::Ss(y)) => assert_eq!(sorted(x), sorted(y), "{path}"),
        (AV::Bs(x), AV::Bs(y)) => assert_eq!(sorted(x), sorted(y), "{path}"),
        (AV::L(x), AV::L(y)) => {
            assert_eq!(x.len(), y.len(), "{path}");
            for (k, (p, q)) in x.iter().zip(y).enumerate() {
                same_value(p, q, &format!("{path}[{k}]"));
            }
        }
        (AV::M(x), AV::M(y)) => {
            assert_eq!(sorted(&x.keys().collect::<Vec<_>>()), sorted(&y.keys().collect::<Vec<_>>()), "{path}");
            for (k, v) in x {
                same_value(v, &y[k], &format!("{path}.{k}"));
            }
        }
        (x, y) => assert_eq!(x, y, "{path}"),
    }
}

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

pub fn check_batch(batch: &RecordBatch, items: &[HashMap<String, AV>]) {
    assert_eq!(batch.num_rows(), items.len());
    let schema = batch.schema();
    let extra = batch.column_by_name("_extra").unwrap();
    for (row, item) in items.iter().enumerate() {
        assert!(extra.is_null(row), "row {row}: exact inference leaves nothing for _extra");
        for (f, col) in schema.fields().iter().zip(batch.columns()) {
            let Some(attr) = f.metadata().get("dynolake.attribute") else { continue };
            check(col.as_ref(), f, row, item.get(attr), &format!("row {row} {attr}"));
        }
        for k in item.keys() {
            assert!(
                schema.fields().iter().any(|f| f.metadata().get("dynolake.attribute") == Some(k)),
                "attribute {k} lost"
            );
        }
    }
}

// ---------- random items ----------

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        (any::<i32>(), 0u32..6).prop_map(|(v, s)| {
            let d = (v as i64).unsigned_abs().to_string();
            let s = s as usize;
            let body = if s == 0 {
                d
            } else if d.len() > s {
                format!("{}.{}", &d[..d.len() - s], &d[d.len() - s..])
            } else {
                format!("0.{}{d}", "0".repeat(s - d.len()))
            };
            if v < 0 { format!("-{body}") } else { body }
        }),
        prop::sample::select(vec![
            "0",
            "-0.0",
            "1E+125",
            "-1E-130",
            "12345678901234567890123456789012345678",
            "-0.00000000000000000000000000000000000001",
            "9223372036854775808",
            "-9223372036854775808",
            "1.5E3",
            "7e-2",
            "1234567890123456.78",
            "-12345678901234567.89",
        ])
        .prop_map(str::to_string),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,8}",
        "\\PC{0,12}",
        Just("quote \" backslash \\ tab \t newline \n".to_string()),
        Just("emoji 🎁 and ümlaut".to_string()),
    ]
}

fn scalar() -> impl Strategy<Value = AV> {
    prop_oneof![
        4 => text().prop_map(AV::S),
        4 => number().prop_map(AV::N),
        1 => prop::collection::vec(any::<u8>(), 0..20).prop_map(AV::B),
        1 => any::<bool>().prop_map(AV::Bool),
        1 => Just(AV::Null(true)),
        1 => prop::collection::btree_set("[a-z]{1,6}", 1..4).prop_map(|s| AV::Ss(s.into_iter().collect())),
        1 => prop::collection::btree_set(any::<i32>(), 1..4).prop_map(|s| AV::Ns(s.into_iter().map(|v| v.to_string()).collect())),
        1 => prop::collection::btree_set(prop::collection::vec(any::<u8>(), 1..6), 1..3).prop_map(|s| AV::Bs(s.into_iter().collect())),
    ]
}

fn value() -> impl Strategy<Value = AV> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(AV::L),
            prop::collection::hash_map("[a-c]{1,2}", inner, 0..4).prop_map(AV::M),
        ]
    })
}

pub fn item() -> impl Strategy<Value = HashMap<String, AV>> {
    prop::collection::hash_map(
        prop::sample::select(vec!["pk", "amount", "tags", "doc", "Note", "note", "x.y", "list"])
            .prop_map(str::to_string),
        value(),
        1..6,
    )
}

fn lines(items: &[HashMap<String, AV>]) -> Vec<u8> {
    let mut out = Vec::new();
    for it in items {
        out.extend_from_slice(b"{\"Item\":");
        out.extend_from_slice(serde_json::to_string(it).unwrap().as_bytes());
        out.extend_from_slice(b"}\n");
    }
    out
}

/// A member's place is its earliest position, whichever list element or file
/// holds it and whichever is read first: inference and the statistics
/// gathered while decoding agree (a later element holding `aa` first used to
/// put it after `cb` in one and before it in the other).
#[test]
fn member_order_is_the_earliest_position_in_any_element() {
    let data = br#"{"Item":{"doc":{"L":[{"M":{"cb":{"N":"1"},"aa":{"N":"2"}}},{"M":{"aa":{"N":"3"},"ba":{"S":"x"}}}]}}}
"#;
    let (exact, _, _) = infer_and_decode(data, data.len(), DecodeOptions::default());
    let doc = exact.fields.iter().find(|f| f.attribute == "doc").unwrap();
    let dynolake::schema::ColumnType::List(elem) = &doc.ty else { panic!("{:?}", doc.ty) };
    let dynolake::schema::ColumnType::Struct(members) = elem.as_ref() else { panic!("{elem:?}") };
    let names: Vec<&str> = members.iter().map(|m| m.attribute.as_str()).collect();
    assert_eq!(names, ["aa", "cb", "ba"], "ties at the same position go by name");
    let (again, _) = schema_while_decoding(&exact, data, 7);
    assert_eq!(again, exact);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_value_survives_decoding(items in prop::collection::vec(item(), 1..40)) {
        let data = lines(&items);
        let (_schema, batches, dec) = infer_and_decode(&data, data.len(), DecodeOptions { batch_size: 7, ..Default::default() });
        prop_assert_eq!(dec.stats().rejected, 0);
        check_batch(&concat(&batches), &items);
    }

    /// The statistics gathered while decoding are the inference walk's: with
    /// the exact schema they give it back, counts and notes included; with a
    /// schema of the first items, whenever every value fit, they give the
    /// exact schema too (which is what lets `convert` read once).
    #[test]
    fn decoding_gathers_the_statistics_of_inference(items in prop::collection::vec(item(), 1..40), first in 1u64..40) {
        let data = lines(&items);
        let (exact, _, _) = infer_and_decode(&data, data.len(), DecodeOptions::default());
        let (again, dec) = schema_while_decoding(&exact, &data, 13);
        prop_assert_eq!(dec.stats().extra_values, 0);
        prop_assert_eq!(&again, &exact);
        let guess = schema_of_first(&data, first);
        let (from_stats, dec) = schema_while_decoding(&guess, &data, data.len());
        if dec.stats().extra_values == 0 {
            prop_assert_eq!(&from_stats, &exact);
        }
    }
}

// ---------- chunk boundaries ----------

fn sample_lines() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let g = dynolake::generate::generate(
        dir.path(),
        &dynolake::generate::GenerateOptions {
            items: 300,
            files: 1,
            empty_files: 0,
            awkward_names: true,
            ..Default::default()
        },
    )
    .unwrap();
    let f = crate::support::walk(&g.full_export_dir.join("data")).pop().unwrap();
    let mut out = Vec::new();
    use std::io::Read;
    flate2::read::MultiGzDecoder::new(std::fs::File::open(f).unwrap()).read_to_end(&mut out).unwrap();
    out
}

#[test]
fn chunk_boundaries_do_not_matter() {
    let data = sample_lines();
    let opts = || DecodeOptions { batch_size: 64, ..Default::default() };
    let (schema, whole, _) = infer_and_decode(&data, data.len(), opts());
    let whole = concat(&whole);
    assert_eq!(whole.num_rows(), 300);
    for chunk in [1, 2, 3, 7, 64, 4096] {
        let (s2, _, _) = infer_and_decode(&data, chunk, opts());
        assert_eq!(s2, schema, "inference at chunk size {chunk}");
        let (b, _) = decode_with(&schema, &data, chunk, opts());
        assert_eq!(concat(&b), whole, "decoding at chunk size {chunk}");
    }
    // Without the final newline too.
    let trimmed = &data[..data.len() - 1];
    let (b, _) = decode_with(&schema, trimmed, 5, opts());
    assert_eq!(concat(&b), whole);
}

/// Names are guessed and checked in place (the order of the last item);
/// a name spelled with escapes, blanks around it, a name that only starts like
/// the guess, or one whose spelling needs escapes at all, must decode exactly as
/// the plain spelling does, at the top level and inside maps.
#[test]
fn member_names_decode_the_same_however_they_are_spelled() {
    let plain = concat!(
        r#"{"Item":{"ab":{"S":"1"},"a\"b":{"N":"2"},"c\\d":{"S":"3"},"m":{"M":{"k":{"S":"x"},"kk":{"N":"1"},"q\"":{"S":"y"}}}}}"#,
        "\n",
        r#"{"Item":{"ab":{"S":"4"},"a\"b":{"N":"5"},"c\\d":{"S":"6"},"m":{"M":{"k":{"S":"z"},"kk":{"N":"2"},"q\"":{"S":"w"}}}}}"#,
        "\n",
        r#"{"Item":{"abc":{"S":"7"},"ab":{"S":"8"},"m":{"M":{"kk":{"N":"3"},"k":{"S":"v"}}}}}"#,
        "\n",
    );
    // The same items: names escaped, blanks between the tokens, members in another order.
    let spelled = concat!(
        r#"{"Item":{"\u0061b":{"S":"1"},"a\u0022b":{"N":"2"},"c\u005cd":{"S":"3"},"m":{"M":{"\u006b":{"S":"x"},"kk":{"N":"1"},"q\"":{"S":"y"}}}}}"#,
        "\n",
        r#"{"Item": {"ab" :{"S":"4"}, "a\"b":{"N":"5"},"c\\d" : {"S":"6"},"m":{"M":{ "k":{"S":"z"},"k\u006b":{"N":"2"},"q\u0022":{"S":"w"}}}}}"#,
        "\n",
        r#"{"Item":{"ab":{"S":"8"},"abc":{"S":"7"},"m":{"M":{"k":{"S":"v"},"kk":{"N":"3"}}}}}"#,
        "\n",
    );
    let opts = || DecodeOptions { batch_size: 64, ..Default::default() };
    let (schema, want, _) = infer_and_decode(plain.as_bytes(), plain.len(), opts());
    let want = concat(&want);
    assert_eq!(want.num_rows(), 3);
    let (got, mut dec) = decode_with(&schema, spelled.as_bytes(), spelled.len(), opts());
    let rejects = dec.take_rejects();
    assert!(rejects.is_empty(), "{rejects:?}");
    assert_eq!(concat(&got), want);
    // A name only guessed is still checked: two members that read as one name are refused.
    let twice = concat!(r#"{"Item":{"ab":{"S":"1"},"\u0061b":{"S":"2"}}}"#, "\n");
    let (got, mut dec) = decode_with(&schema, twice.as_bytes(), twice.len(), opts());
    assert_eq!(got.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    assert_eq!(dec.take_rejects().len(), 1);
}

#[test]
fn statistics_gathered_while_decoding_match_inference_on_generated_items() {
    let data = sample_lines();
    let (exact, _, _) = infer_and_decode(&data, data.len(), DecodeOptions::default());
    let (again, dec) = schema_while_decoding(&exact, &data, 7);
    assert_eq!(dec.stats().extra_values, 0);
    assert_eq!(again, exact);
    // A schema of the first items: when everything fit, the statistics still give the exact schema.
    let mut checked = 0;
    for first in [1, 5, 20, 100, 299] {
        let guess = schema_of_first(&data, first);
        let (from_stats, dec) = schema_while_decoding(&guess, &data, 4096);
        if dec.stats().extra_values == 0 {
            assert_eq!(from_stats, exact, "first {first}");
            checked += 1;
        } else {
            assert!(guess.column_difference(&exact).is_some(), "values went to _extra with the exact schema");
        }
    }
    assert!(checked > 0);
}

#[test]
fn a_value_cut_short_leaves_nothing_behind() {
    // The schema of the first line; the second line's list and map fail halfway through.
    let data = br#"{"Item":{"k":{"L":[{"N":"1"}]},"s":{"M":{"a":{"N":"1"}}}}}
{"Item":{"k":{"L":[{"N":"2"},{"S":"x"}]},"s":{"M":{"a":{"N":"2"},"z":{"N":"9"}}}}}
{"Item":{"k":{"L":[{"N":"3"}]},"s":{"M":{"a":{"N":"3"}}}}}
"#;
    let schema = schema_of_first(data, 1);
    let (b, dec) = decode_with(&schema, data, data.len(), DecodeOptions::default());
    assert_eq!(dec.stats().extra_values, 2);
    let b = concat(&b);
    let k = b.column_by_name("k").unwrap().as_list::<i32>();
    assert!(k.is_null(1));
    assert_eq!(k.value(2).as_primitive::<Int64Type>().values().to_vec(), vec![3]);
    let s = b.column_by_name("s").unwrap().as_struct();
    assert!(s.is_null(1));
    assert_eq!(s.column_by_name("a").unwrap().as_primitive::<Int64Type>().value(2), 3);
    let extra = b.column_by_name("_extra").unwrap().as_string::<i32>();
    assert!(extra.value(1).contains(r#""x""#) && extra.value(1).contains(r#""z""#));
}

#[test]
fn sets_with_a_repeated_member_are_rejected() {
    let many: Vec<String> = (0..20).map(|i| format!("\"m{i}\"")).collect();
    let mut repeated = many.clone();
    repeated[19] = "\"m3\"".into();
    let data = format!(
        r#"{{"Item":{{"s":{{"SS":["a","b"]}},"n":{{"NS":["1.5","2"]}}}}}}
{{"Item":{{"s":{{"SS":["a","a"]}}}}}}
{{"Item":{{"n":{{"NS":["1","1.0"]}}}}}}
{{"Item":{{"s":{{"SS":[{}]}}}}}}
{{"Item":{{"s":{{"SS":[{}]}}}}}}
"#,
        many.join(","),
        repeated.join(",")
    );
    let schema = schema_of_first(data.as_bytes(), 1);
    let (b, mut dec) = decode_with(&schema, data.as_bytes(), data.len(), DecodeOptions::default());
    let lines: Vec<u64> = dec.take_rejects().iter().map(|r| r.position.line).collect();
    assert_eq!(lines, vec![2, 3, 5]);
    assert_eq!(concat(&b).num_rows(), 2);
}

#[test]
fn a_line_of_several_megabytes_decodes() {
    let big = "x".repeat(3 << 20);
    let data = format!(
        "{{\"Item\":{{\"pk\":{{\"S\":\"a\"}},\"blob\":{{\"S\":\"{big}\"}}}}}}\n{{\"Item\":{{\"pk\":{{\"S\":\"b\"}}}}}}\n"
    );
    for chunk in [1000, 65536, data.len()] {
        let (_, b, _) = infer_and_decode(data.as_bytes(), chunk, DecodeOptions::default());
        let b = concat(&b);
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.column_by_name("blob").unwrap().as_string::<i32>().value(0).len(), 3 << 20);
    }
}

// ---------- the lattice and the exact number paths ----------

#[test]
fn numbers_come_out_exact() {
    let data = br#"{"Item":{"i":{"N":"9223372036854775807"},"d":{"N":"12345678901234567890123456789012345678"},"t":{"N":"1E+125"},"z":{"N":"-0.0"}}}
{"Item":{"i":{"N":"-9223372036854775808"},"d":{"N":"0.5"},"t":{"N":"-1E-130"},"z":{"N":"0"}}}
"#;
    let (schema, b, _) = infer_and_decode(data, data.len(), DecodeOptions::default());
    let ty = |a: &str| schema.fields.iter().find(|f| f.attribute == a).unwrap().ty.to_string();
    assert_eq!(ty("i"), "bigint");
    assert_eq!(ty("d"), "number", "38 integer digits and one fractional digit do not fit decimal(38,1)");
    assert_eq!(ty("t"), "number");
    assert_eq!(ty("z"), "bigint");
    let b = concat(&b);
    let i = b.column_by_name("i").unwrap().as_primitive::<Int64Type>();
    assert_eq!((i.value(0), i.value(1)), (i64::MAX, i64::MIN));
    let d = b.column_by_name("d").unwrap().as_string::<i32>();
    assert_eq!(d.value(0), "12345678901234567890123456789012345678");
    let t = b.column_by_name("t").unwrap().as_string::<i32>();
    assert_eq!((t.value(0), t.value(1)), ("1E+125", "-1E-130"));
}

#[test]
fn thirty_eight_digits_at_one_scale_are_decimal() {
    let data = br#"{"Item":{"d":{"N":"1234567890123456789012345678901234567.8"}}}
{"Item":{"d":{"N":"-0.1"}}}
"#;
    let (schema, b, _) = infer_and_decode(data, data.len(), DecodeOptions::default());
    assert_eq!(schema.fields[0].ty.to_string(), "decimal(38,1)");
    let a = concat(&b);
    let d = a.column(0).as_primitive::<Decimal128Type>();
    assert_eq!(d.value(0), 12345678901234567890123456789012345678);
    assert_eq!(d.value(1), -1);
}

#[test]
fn eighteen_digits_at_one_scale_are_a_narrow_decimal() {
    let narrow = br#"{"Item":{"d":{"N":"1234567890123456.78"}}}
{"Item":{"d":{"N":"-0.5"}}}
"#;
    let (schema, b, _) = infer_and_decode(narrow, narrow.len(), DecodeOptions::default());
    assert_eq!(schema.fields[0].ty.to_string(), "decimal(18,2)");
    let d = concat(&b);
    let d = d.column(0).as_primitive::<Decimal128Type>();
    assert_eq!((d.precision(), d.value(0), d.value(1)), (18, 123456789012345678, -50));
    // One digit more anywhere and the column is the wide one.
    let wide = [&narrow[..], br#"{"Item":{"d":{"N":"12345678901234567.8"}}}"#, b"\n"].concat();
    let (schema, b, dec) = infer_and_decode(&wide, wide.len(), DecodeOptions::default());
    assert_eq!(schema.fields[0].ty.to_string(), "decimal(38,2)");
    assert_eq!(dec.stats().extra_values, 0);
    assert_eq!(concat(&b).column(0).as_primitive::<Decimal128Type>().value(2), 1234567890123456780);
    // A schema that asks for the narrow type sends what does not fit to the catch-all, counted.
    let narrow_schema = schema_of(narrow);
    let (b, dec) = decode_with(&narrow_schema, &wide, 7, DecodeOptions::default());
    let b = concat(&b);
    assert!(b.column(0).is_null(2));
    let extra = b.column_by_name("_extra").unwrap().as_string::<i32>();
    assert_eq!(extra.value(2), r#"{"d":{"N":"12345678901234567.8"}}"#);
    assert_eq!(dec.stats().extra_values, 1);
}

#[test]
fn nesting_deeper_than_32_levels_is_an_error_not_a_crash() {
    let mut v = String::from(r#"{"S":"leaf"}"#);
    for _ in 0..40 {
        v = format!(r#"{{"L":[{v}]}}"#);
    }
    let data = format!("{{\"Item\":{{\"pk\":{{\"S\":\"a\"}}}}}}\n{{\"Item\":{{\"deep\":{v}}}}}\n");
    let (_, b, mut dec) = infer_and_decode(data.as_bytes(), 17, DecodeOptions::default());
    assert_eq!(concat(&b).num_rows(), 1);
    let r = dec.take_rejects();
    assert_eq!(r.len(), 1);
    assert!(r[0].reason.contains("32 levels"), "{}", r[0].reason);
    assert_eq!(r[0].position.line, 2);
}

// ---------- errors name the file, the line and the attribute path ----------

fn schema_of(data: &[u8]) -> Schema {
    infer_and_decode(data, data.len(), DecodeOptions::default()).0
}

#[test]
fn errors_name_file_line_and_path() {
    let good = br#"{"Item":{"pk":{"S":"a"},"lines":{"L":[{"M":{"price":{"N":"1.5"}}}]}}}
"#;
    let schema = schema_of(good);
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{"Item":{"pk":{"S":"a"},"lines":{"L":[{"M":{"price":{"N":"1.5"}}},{"M":{"price":{"N":"abc"}}}]}}}"#,
            "lines[1].price",
            "malformed number",
        ),
        (r#"{"Item":{"pk":{"X":"a"}}}"#, "pk", "unknown type descriptor `X`"),
        (r#"{"Item":{"pk":{"S":"a"},"b":{"B":"!!!"}}}"#, "b", "bad base64"),
        (r#"{"Item":{"pk":{"SS":["a","a"]}}}"#, "pk", "duplicate"),
        (r#"{"Item":{"pk":{"S":"a"}"#, "", "invalid JSON"),
        (r#"{"Other":{}}"#, "", "no `Item`"),
    ];
    for (line, path, msg) in cases {
        let data = format!("{}{line}\n", std::str::from_utf8(good).unwrap());
        // Non-strict: the bad item is rejected and kept.
        let (b, mut dec) = decode_with(&schema, data.as_bytes(), 3, DecodeOptions::default());
        assert_eq!(concat(&b).num_rows(), 1, "{line}");
        let r = dec.take_rejects();
        assert_eq!(r.len(), 1, "{line}");
        assert_eq!(r[0].position.file, "test.json");
        assert_eq!(r[0].position.line, 2);
        assert_eq!(r[0].position.path, *path, "{line}");
        assert!(r[0].reason.contains(msg), "{line}: {}", r[0].reason);
        assert_eq!(r[0].line, *line);
        // Strict: an error with the same position.
        let mut dec = ItemDecoder::new(&schema, DecodeOptions { strict: true, ..Default::default() });
        dec.start_file(0, "test.json");
        let err = dec.decode(data.as_bytes()).and_then(|_| dec.finish_file()).unwrap_err().to_string();
        assert!(err.starts_with(&"test.json:2".to_string()), "{err}");
        assert!(err.contains(msg), "{err}");
    }
}

#[test]
fn values_that_do_not_fit_go_to_the_catch_all_and_are_counted() {
    let schema = Schema::from_file_str(
        "s",
        r#"{"format":"dynolake-schema/1","columns":[
            {"attribute":"pk","type":"string"},
            {"attribute":"n","type":"bigint"},
            {"attribute":"m","type":"struct","fields":[{"attribute":"a","type":"bigint"}]}]}"#,
    )
    .unwrap();
    let data = br#"{"Item":{"pk":{"S":"1"},"n":{"N":"5"},"m":{"M":{"a":{"N":"1"}}}}}
{"Item":{"pk":{"S":"2"},"n":{"N":"5.5"},"m":{"M":{"a":{"S":"x"}}},"other":{"SS":["q"]}}}
"#;
    let (b, dec) = decode_with(&schema, data, 4, DecodeOptions::default());
    let b = concat(&b);
    assert_eq!(b.num_rows(), 2);
    assert!(b.column_by_name("n").unwrap().is_null(1));
    assert!(b.column_by_name("m").unwrap().is_null(1));
    let extra = b.column_by_name("_extra").unwrap().as_string::<i32>();
    assert!(extra.is_null(0));
    let v: serde_json::Value = serde_json::from_str(extra.value(1)).unwrap();
    assert_eq!(v["n"], serde_json::json!({"N":"5.5"}));
    assert_eq!(v["m"], serde_json::json!({"M":{"a":{"S":"x"}}}));
    assert_eq!(v["other"], serde_json::json!({"SS":["q"]}));
    assert_eq!(dec.stats().extra_values, 3);
    assert_eq!(dec.stats().extra_by_attribute["n"], 1);
    // --strict turns the first into an error naming the path.
    let mut dec = ItemDecoder::new(&schema, DecodeOptions { strict: true, ..Default::default() });
    dec.start_file(0, "f");
    let err = dec.decode(data).unwrap_err().to_string();
    assert!(err.contains("f:2 at `n`") && err.contains("does not fit bigint"), "{err}");
}

#[test]
fn a_projection_decodes_only_what_it_names() {
    let data = sample_lines();
    let schema = schema_of(&data);
    let amount = schema.fields.iter().position(|f| f.attribute == "amount").unwrap();
    let status = schema.fields.iter().position(|f| f.attribute == "status").unwrap();
    let (b, _) = decode_with(
        &schema,
        &data,
        1000,
        DecodeOptions { projection: Some(vec![status, amount]), ..Default::default() },
    );
    let b = concat(&b);
    assert_eq!(b.num_columns(), 2);
    assert_eq!(b.schema().field(0).name(), "status");
    let (full, _) = decode_with(&schema, &data, data.len(), DecodeOptions::default());
    let full = concat(&full);
    assert_eq!(b.column(1), full.column_by_name("amount").unwrap());
}

/// `stop_when_found` (how a sink finds a line's partition): the projected
/// columns are the full decode's, a line is read only as far as they are (a
/// fault after them goes unseen, and is the whole decode's to report), and a
/// line missing one of them is read to its end (a fault there is seen).
#[test]
fn a_projection_that_stops_when_found_reads_only_as_far_as_it_needs() {
    let data = sample_lines();
    let schema = schema_of(&data);
    let status = schema.fields.iter().position(|f| f.attribute == "status").unwrap();
    let opts = DecodeOptions { projection: Some(vec![status]), stop_when_found: true, ..Default::default() };
    let (b, dec) = decode_with(&schema, &data, 1000, opts.clone());
    assert_eq!(dec.stats().rejected, 0);
    let (full, _) = decode_with(&schema, &data, data.len(), DecodeOptions::default());
    assert_eq!(concat(&b).column(0), concat(&full).column_by_name("status").unwrap());

    let lines = br#"{"Item":{"status":{"S":"PAID"},"amount":{"N":"12abc"}}}
{"Item":{"status":{"S":"NEW"},"amount":[}}
{"Item":{"amount":{"N":"3"}}}
{"Item":{"amount":{"N":"3"},"x":[}}
"#;
    let (b, mut dec) = decode_with(&schema, lines, 7, opts);
    let b = concat(&b);
    let got: Vec<Option<&str>> = b.column(0).as_string::<i32>().iter().collect();
    assert_eq!(got, [Some("PAID"), Some("NEW"), None], "faults after the status go unseen; the last line has none");
    let rejects = dec.take_rejects();
    assert_eq!(rejects.iter().map(|r| (r.position.line, r.position.path.as_str())).collect::<Vec<_>>(), [(4, "x")]);
    // The whole decode sees every fault.
    let (_, mut full) = decode_with(&schema, lines, 7, DecodeOptions::default());
    assert_eq!(full.take_rejects().len(), 3);
}

#[test]
fn images_of_change_records_decode_through_the_same_code() {
    let data = br#"{"Metadata":{"WriteTimestampMicros":{"N":"1"}},"Keys":{"pk":{"S":"1"}},"NewImage":{"pk":{"S":"1"},"v":{"N":"2"}},"OldImage":{"pk":{"S":"1"},"v":{"N":"1"}}}
"#;
    let (_, b, _) = infer_and_decode(data, 7, DecodeOptions { envelope: Envelope::NewImage, ..Default::default() });
    let b = concat(&b);
    assert_eq!(b.column_by_name("v").unwrap().as_primitive::<Int64Type>().value(0), 2);
    let (_, b, _) = infer_and_decode(data, 7, DecodeOptions { envelope: Envelope::OldImage, ..Default::default() });
    assert_eq!(concat(&b).column_by_name("v").unwrap().as_primitive::<Int64Type>().value(0), 1);
}

/// Rows whose key is in `DecodeOptions::skip` are left out as they are
/// decoded (merge's base), still counted as items; a row whose key attribute
/// is absent is kept (a null key equals no key). Keys of every scalar type,
/// chosen from the arrays the same lines decode to (how merge takes them from
/// the changes), across batches and chunk boundaries.
#[test]
fn rows_with_skipped_keys_are_left_out_as_they_are_decoded() {
    use dynolake::decode::keys::{SkipKeys, key_of};
    let mut data = String::new();
    for i in 0..500 {
        let pk = if i % 50 == 7 { String::new() } else { format!(r#""pk":{{"S":"k{}"}},"#, i % 40) };
        data.push_str(&format!(
            r#"{{"Item":{{{pk}"n":{{"N":"{}"}},"d":{{"N":"{}.25"}},"b":{{"B":"{}"}},"t":{{"S":"2024-01-0{}T00:00:00Z"}},"v":{{"L":[{{"S":"{i}"}}]}}}}}}"#,
            i / 40,
            i % 7,
            ["AAE=", "AQI=", "/w=="][i % 3],
            1 + i % 9,
        ));
        data.push('\n');
    }
    let data = data.as_bytes();
    let (schema, all, _) = infer_and_decode(data, data.len(), DecodeOptions::default());
    let all = concat(&all);
    let names = ["pk", "n", "d", "b", "t"];
    let columns: Vec<usize> =
        names.iter().map(|n| schema.fields.iter().position(|f| f.attribute == *n).unwrap()).collect();
    let key = |b: &RecordBatch, r: usize| {
        let mut k = Vec::new();
        columns.iter().all(|&c| key_of(b.column(c), r, &mut k)).then_some(k)
    };
    // Every third row's key is "changed".
    let changed: std::collections::HashSet<Vec<u8>> =
        (0..all.num_rows()).step_by(3).filter_map(|r| key(&all, r)).collect();
    let skip = SkipKeys::new(columns.clone(), changed.iter().map(|k| k.clone().into_boxed_slice()));
    assert!(skip.len() > 100, "{} keys", skip.len());
    let want: Vec<usize> =
        (0..all.num_rows()).filter(|&r| key(&all, r).is_none_or(|k| !changed.contains(&k))).collect();
    assert!(want.len() < all.num_rows() && want.iter().any(|&r| key(&all, r).is_none()));
    let opts = DecodeOptions { skip: Some(std::sync::Arc::new(skip)), batch_size: 64, ..Default::default() };
    let (got, dec) = decode_with(&schema, data, 333, opts);
    let got = concat(&got);
    let idx = arrow::array::UInt32Array::from_iter_values(want.iter().map(|&r| r as u32));
    assert_eq!(got, arrow::compute::take_record_batch(&all, &idx).unwrap());
    assert_eq!(dec.stats().items, 500, "skipped rows are still items decoded");
}

/// A line that is not UTF-8 is rejected naming its line and the byte where
/// the bad sequence starts, by inference and by the decoder alike, wherever
/// in the line it is (inside the first 64-byte block or far past it); the
/// other lines decode.
#[test]
fn a_line_that_is_not_utf8_is_rejected_at_its_byte() {
    for (pad, bad) in [(0usize, &b"\xff"[..]), (3, b"\xc3("), (70, b"\xe2\x82"), (200, b"\xf0\x28\x8c\xbc")] {
        let good = format!("{{\"Item\":{{\"pk\":{{\"S\":\"a{}\"}}}}}}\n", "é".repeat(pad));
        let mut data = good.clone().into_bytes();
        let prefix = format!("{{\"Item\":{{\"pk\":{{\"S\":\"b{}", "é".repeat(pad));
        data.extend_from_slice(prefix.as_bytes());
        data.extend_from_slice(bad);
        data.extend_from_slice(b"\"}}}\n");
        data.extend_from_slice(good.as_bytes());
        let byte = format!("(byte {})", prefix.len() + 1);

        let io = InferOptions::default();
        let mut inf = Inferrer::new(&io, Envelope::Item);
        inf.start_file(0, "test.json");
        inf.feed(&data).unwrap();
        inf.finish_file().unwrap();
        assert_eq!(inf.stats.items, 2, "pad {pad}");
        let m = &inf.malformed;
        assert_eq!((m.len(), m[0].position.line), (1, 2), "pad {pad}");
        assert!(m[0].reason.contains("not valid UTF-8") && m[0].reason.contains(&byte), "{}", m[0].reason);

        let schema = inf.stats.schema(&io);
        let (b, mut dec) = decode_with(&schema, &data, data.len(), DecodeOptions::default());
        let rejects = dec.take_rejects();
        assert_eq!(rejects.len(), 1, "pad {pad}");
        assert_eq!(rejects[0].position.line, 2);
        assert!(
            rejects[0].reason.contains("not valid UTF-8") && rejects[0].reason.contains(&byte),
            "{}",
            rejects[0].reason
        );
        assert_eq!(concat(&b).num_rows(), 2);
    }
}
