//! ION exports: the same items read from Ion text as from DynamoDB JSON, value
//! for value (our writer, and an independent one: `ion-rs`), at every chunk
//! split; every decimal spelling; malformed Ion rejected with its position.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use dynolake::ddb::value::{AttrValue as V, Item, write_item, write_item_ion};
use dynolake::decode::{DecodeOptions, Envelope, Inferrer, ItemDecoder, Syntax};
use dynolake::export::OutputFormat;
use dynolake::generate::{GenerateOptions, Rng, make_item};
use dynolake::schema::Schema;
use dynolake::schema::infer::InferOptions;
use proptest::prelude::*;
use serde_dynamo::AttributeValue as AV;

use super::decode::{check_batch, concat, norm_number};
use super::support::*;

/// Infer, then decode, `data` in `syntax`, fed in chunks of `chunk` bytes.
fn read(data: &[u8], syntax: Syntax, chunk: usize) -> (Schema, RecordBatch, ItemDecoder) {
    let io = InferOptions::default();
    let mut inf = Inferrer::new(&io, Envelope::Item).with_syntax(syntax);
    inf.start_file(0, "data.gz");
    for c in data.chunks(chunk) {
        inf.feed(c).unwrap();
    }
    inf.finish_file().unwrap();
    assert!(inf.malformed.is_empty(), "{:?}", inf.malformed.first());
    let schema = inf.stats.schema(&io);
    let mut dec = ItemDecoder::new(&schema, DecodeOptions { syntax, batch_size: 1000, ..Default::default() });
    dec.start_file(0, "data.gz");
    let mut out = Vec::new();
    for c in data.chunks(chunk) {
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
    assert!(dec.take_rejects().is_empty());
    (schema, concat(&out), dec)
}

fn json_lines(items: &[Item]) -> Vec<u8> {
    let mut s = String::new();
    for it in items {
        s.push_str("{\"Item\":");
        write_item(it, &mut s);
        s.push_str("}\n");
    }
    s.into_bytes()
}

fn ion_lines(items: &[Item]) -> Vec<u8> {
    let mut s = String::new();
    for it in items {
        s.push_str("$ion_1_0 {Item:");
        write_item_ion(it, &mut s);
        s.push_str("}\n");
    }
    s.into_bytes()
}

/// Numbers as DynamoDB holds them (its JSON export's spelling), from an
/// independent reading: plain digits up to 40 characters, else `d.dddE±n`.
fn canonical(n: &str) -> String {
    let (neg, digits, exp) = norm_number(n);
    if digits.is_empty() {
        return "0".into();
    }
    let k = digits.len() as i64;
    let sign = if neg { "-" } else { "" };
    let plain = if exp >= 0 {
        format!("{digits}{}", "0".repeat(exp as usize))
    } else if k + exp > 0 {
        format!("{}.{}", &digits[..(k + exp) as usize], &digits[(k + exp) as usize..])
    } else {
        format!("0.{}{digits}", "0".repeat((-exp - k) as usize))
    };
    if plain.len() <= 40 {
        return format!("{sign}{plain}");
    }
    let adjusted = exp + k - 1;
    let frac = if k > 1 { format!(".{}", &digits[1..]) } else { String::new() };
    format!("{sign}{}{frac}E{}{}", &digits[..1], if adjusted >= 0 { "+" } else { "-" }, adjusted.abs())
}

fn canonical_value(v: &V) -> V {
    match v {
        V::N(n) => V::N(canonical(n)),
        V::NS(ns) => V::NS(ns.iter().map(|n| canonical(n)).collect()),
        V::M(m) => V::M(m.iter().map(|(k, v)| (k.clone(), canonical_value(v))).collect()),
        V::L(l) => V::L(l.iter().map(canonical_value).collect()),
        other => other.clone(),
    }
}

/// Items that exercise every type and edge: numbers at DynamoDB's limits,
/// awkward names, empty values, 32 levels of nesting, a ~400 KB line.
fn edge_items() -> Vec<Item> {
    let n = |s: &str| V::N(s.into());
    let mut nested = V::S("bottom".into());
    for i in 0..31 {
        nested = V::M(vec![(format!("level{i}"), nested)]);
    }
    let numbers = [
        "0",
        "1",
        "-1",
        "103",
        "600",
        "2000",
        "0.0015",
        "99.99",
        "-99.99",
        "1E+125",
        "-1E-130",
        "9.9999999999999999999999999999999999999E+125",
        "12345678901234567890123456789012345678",
        "0.00000000000000000000000000000000000001",
        "9223372036854775807",
        "-9223372036854775808",
        "1702062202420",
        "39370",
    ];
    let mut items: Vec<Item> = Vec::new();
    for (i, num) in numbers.iter().enumerate() {
        items.push(vec![
            ("id".into(), V::S(format!("n{i:02}"))),
            ("edge".into(), n(num)),
            ("plain".into(), n(&format!("{}", i as i64 * 1000 - 7))),
            ("price".into(), n(&format!("{i}.{:02}", (i * 37) % 100))),
        ]);
    }
    items.push(vec![
        ("id".into(), V::S("types".into())),
        ("s".into(), V::S("quote \" backslash \\ tab \t newline \n emoji 🎁 \u{1} é".into())),
        ("b".into(), V::B((0..=255).collect())),
        ("bool".into(), V::Bool(false)),
        ("null".into(), V::Null),
        ("ss".into(), V::SS(vec!["x".into(), "y".into(), "".into()])),
        ("ns".into(), V::NS(vec!["1".into(), "1E+125".into(), "-0.5".into()])),
        ("bs".into(), V::BS(vec![vec![1, 2], vec![]])),
        ("list".into(), V::L(vec![n("1"), V::S("a".into()), V::Bool(true), V::Null])),
        ("map".into(), V::M(vec![("k".into(), n("2")), ("l".into(), V::L(vec![]))])),
        ("emptyS".into(), V::S(String::new())),
        ("emptyB".into(), V::B(Vec::new())),
        ("emptyL".into(), V::L(Vec::new())),
        ("emptyM".into(), V::M(Vec::new())),
        ("deep".into(), nested),
        ("a.b".into(), V::S("dot".into())),
        ("with space".into(), V::S("space".into())),
        ("it's".into(), V::S("apostrophe".into())),
        ("say \"hi\"".into(), V::S("quotes".into())),
        ("true".into(), V::S("keyword".into())),
        ("größe".into(), n("42")),
        ("9lives".into(), n("9")),
        ("$dollar".into(), V::S("dollar".into())),
        ("_under".into(), V::S("under".into())),
    ]);
    items.push(vec![
        ("id".into(), V::S("big".into())),
        ("blob".into(), V::B((0..300_000u32).map(|i| (i * 7 % 251) as u8).collect())),
        ("s".into(), V::S("x".repeat(100_000))),
    ]);
    let mut r = Rng::new(7);
    for _ in 0..300 {
        let mut it = make_item(&mut r, 1_600_000_000_000, 1_700_000_000_000, true);
        let V::S(order) = &it[0].1 else { unreachable!() };
        it.insert(0, ("id".into(), V::S(order.clone())));
        items.push(it);
    }
    items.iter().map(|it| it.iter().map(|(k, v)| (k.clone(), canonical_value(v))).collect()).collect()
}

#[test]
fn ion_and_json_lines_decode_to_identical_batches_at_every_chunk_split() {
    let items = edge_items();
    let (json, ion) = (json_lines(&items), ion_lines(&items));
    let (schema, want, _) = read(&json, Syntax::Json, json.len());
    let (ion_schema, got, dec) = read(&ion, Syntax::Ion, ion.len());
    assert_eq!(ion_schema, schema);
    assert_eq!(got, want);
    assert_eq!(dec.stats().items, items.len() as u64);
    // Every chunk size from 1 byte, on the lines without the 400 KB one.
    let small: Vec<Item> = items.iter().filter(|it| it[0].1 != V::S("big".into())).take(40).cloned().collect();
    let (json, ion) = (json_lines(&small), ion_lines(&small));
    let (_, want, _) = read(&json, Syntax::Json, json.len());
    for chunk in [1, 2, 3, 7, 64, 1000, 4096] {
        let (_, got, _) = read(&ion, Syntax::Ion, chunk);
        assert_eq!(got, want, "chunks of {chunk} bytes");
    }
    let (_, got, _) = read(&ion_lines(&items), Syntax::Ion, 65536);
    assert_eq!(got.num_rows(), items.len());
}

/// An Ion text number in every spelling Ion allows for it.
fn spellings(canon: &str) -> Vec<String> {
    let (neg, digits, exp) = norm_number(canon);
    let sign = if neg { "-" } else { "" };
    if digits.is_empty() {
        return ["0", "-0", "0.", "-0d0", "0d5", "0.000", "0x0"].map(str::to_string).to_vec();
    }
    let mut out = vec![
        format!("{sign}{digits}d{exp}"),
        format!("{sign}{digits}D{exp}"),
        format!("{sign}{digits}0d{}", exp - 1),
        format!("{sign}{}.{}d{}", &digits[..1], &digits[1..], exp + digits.len() as i64 - 1),
    ];
    if exp >= 0 && digits.len() as i64 + exp <= 38 {
        let int = format!("{digits}{}", "0".repeat(exp as usize));
        out.push(format!("{sign}{int}"));
        out.push(format!("{sign}{int}."));
        out.push(format!("{sign}{int}.000"));
        if int.len() > 1 {
            out.push(format!("{sign}{}_{}", &int[..1], &int[1..]));
        }
        if let Ok(v) = int.parse::<u64>() {
            out.push(format!("{sign}0x{v:X}"));
            out.push(format!("{sign}0b{v:b}"));
        }
    }
    if exp < 0 {
        let body = canon.trim_start_matches('-');
        out.push(format!("{sign}{body}").replace('E', "d"));
        if !body.contains('E') {
            out.push(format!("{sign}{body}0"));
        }
    }
    out
}

#[test]
fn every_ion_spelling_of_a_number_reads_as_the_json_number() {
    let numbers = [
        "0",
        "103",
        "600",
        "0.0015",
        "-99.99",
        "1E+125",
        "-1E-130",
        "12345678901234567890123456789012345678",
        "9223372036854775807",
        "-9223372036854775808",
        "1702062202420",
        "0.00000000000000000000000000000000000001",
    ];
    for (i, n) in numbers.iter().enumerate() {
        let canon = canonical(n);
        let spelled = spellings(&canon);
        // One column per number; each spelling one line, against the same number in JSON.
        let json: String = spelled.iter().map(|_| format!("{{\"Item\":{{\"v\":{{\"N\":\"{canon}\"}}}}}}\n")).collect();
        let ion: String = spelled.iter().map(|s| format!("$ion_1_0 {{Item:{{v:{s}}}}}\n")).collect();
        let (schema, want, _) = read(json.as_bytes(), Syntax::Json, json.len());
        let (ion_schema, got, _) = read(ion.as_bytes(), Syntax::Ion, 5 + i);
        assert_eq!(ion_schema, schema, "{n}: {spelled:?}");
        assert_eq!(got, want, "{n}: {spelled:?}");
    }
}

/// Decode Ion lines leniently: (rows, rejects as (line, path, reason)).
fn rejects_of(lines: &str) -> (usize, Vec<(u64, String, String)>) {
    let schema = dynolake::schema::infer::TableStats::default().schema(&InferOptions::default());
    let mut dec = ItemDecoder::new(&schema, DecodeOptions { syntax: Syntax::Ion, ..Default::default() });
    dec.start_file(3, "data/abc.ion.gz");
    let mut off = 0;
    while off < lines.len() {
        off += dec.decode(&lines.as_bytes()[off..]).unwrap();
    }
    dec.finish_file().unwrap();
    let rows = dec.flush().unwrap().map_or(0, |b| b.num_rows());
    let rejects =
        dec.take_rejects().into_iter().map(|r| (r.position.line, r.position.path, r.reason)).collect::<Vec<_>>();
    for r in &rejects {
        assert!(!r.2.is_empty());
    }
    (rows, rejects)
}

#[test]
fn malformed_ion_is_rejected_naming_file_line_and_path() {
    let bad = [
        (r#"$ion_1_0 {Item:{a:{b:"unterminated}}}"#, "a.b", "unterminated string"),
        (r#"$ion_1_0 {Item:{a:1.2.3}}"#, "a", "malformed number"),
        (r#"$ion_1_0 {Item:{a:[1, 12abc]}}"#, "a[1]", "malformed number"),
        (r#"$ion_1_0 {Item:{a:007}}"#, "a", "leading zero"),
        (r#"$ion_1_0 {Item:{tags:$dynamodb_XS::["a"]}}"#, "tags", "unknown Ion annotation `$dynamodb_XS`"),
        (r#"$ion_1_0 {Item:{tags:$dynamodb_SS::"a"}}"#, "tags", "annotates a list"),
        (r#"$ion_1_0 {Item:{tags:$dynamodb_NS::["1"]}}"#, "tags[0]", "expected a number"),
        (r#"$ion_1_0 {Item:{a:"x""#, "", "expected `,` or `}`"),
        (r#"$ion_1_0 {Item:{a:1e3}}"#, "a", "Ion float"),
        (r#"$ion_1_0 {Item:{a:nan}}"#, "a", "Ion float"),
        (r#"$ion_1_0 {Item:{a:2007-02-23T12:14Z}}"#, "a", "Ion timestamp"),
        (r#"$ion_1_0 {Item:{a:{{"clob"}}}}"#, "a", "Ion clob"),
        (r#"$ion_1_0 {Item:{a:some_symbol}}"#, "a", "Ion symbol value"),
        (r#"$ion_1_0 {Item:{a:(x y)}}"#, "a", "s-expression"),
        (r#"$ion_1_0 {Item:{$10:"x"}}"#, "", "symbol ID"),
        (r#"$ion_1_0 {Item:{a:{{!!}}}}"#, "a", "bad base64"),
        (r#"$ion_1_0 {Item:{s:$dynamodb_SS::["a","a"]}}"#, "s", "duplicate"),
        (r#"$ion_1_0 {Item:{a:"x"}} extra"#, "", "end of the line"),
        (r#"$ion_1_1 {Item:{a:"x"}}"#, "", "Ion version other than 1.0"),
    ];
    let mut text = String::new();
    for (line, _, _) in &bad {
        text.push_str(line);
        text.push('\n');
    }
    // Valid Ion DynamoDB does not write, read as documented.
    text.push_str("$ion_1_0\n");
    text.push_str("// a comment line\n");
    text.push_str("$ion_1_0 /* c */ {Item:{a:null.string, b:\"x\" /* here */, c:'''y''' '''z'''}} // end\n");
    let (rows, rejects) = rejects_of(&text);
    assert_eq!(rows, 1, "{rejects:#?}");
    assert_eq!(rejects.len(), bad.len(), "{rejects:#?}");
    for ((line, path, reason), (i, (_, want_path, want_reason))) in rejects.iter().zip(bad.iter().enumerate()) {
        assert_eq!(*line, i as u64 + 1);
        assert_eq!(path, want_path, "line {line}: {reason}");
        assert!(reason.contains(want_reason), "line {line}: {reason:?} should say {want_reason:?}");
    }
    // Strict: the first bad line is an error naming the file, line and path.
    let schema = dynolake::schema::infer::TableStats::default().schema(&InferOptions::default());
    let mut dec = ItemDecoder::new(&schema, DecodeOptions { syntax: Syntax::Ion, strict: true, ..Default::default() });
    dec.start_file(0, "data/abc.ion.gz");
    let e = dec.decode(format!("{}\n", bad[0].0).as_bytes()).unwrap_err().to_string();
    assert!(e.contains("data/abc.ion.gz") && e.contains(":1") && e.contains("a.b"), "{e}");
}

#[test]
fn ion_binary_is_refused_naming_the_file() {
    let schema = dynolake::schema::infer::TableStats::default().schema(&InferOptions::default());
    let mut dec = ItemDecoder::new(&schema, DecodeOptions { syntax: Syntax::Ion, ..Default::default() });
    dec.start_file(0, "data/bin.ion.gz");
    let e = dec.decode(&[0xE0, 0x01, 0x00, 0xEA, 0xEE, 0x90, 0x81, b'\n']).unwrap_err().to_string();
    assert!(e.contains("data/bin.ion.gz") && e.contains("Ion binary"), "{e}");
}

/// The same items as an ION export and a DYNAMODB_JSON export convert to the
/// same Parquet (schema and values), through the command line.
#[test]
fn ion_and_json_exports_convert_to_identical_parquet() {
    let items = Arc::new(edge_items());
    let export = |format| {
        export_with(GenerateOptions {
            items: items.len() as u64,
            files: 3,
            format,
            items_from: Some(items.clone()),
            ..Default::default()
        })
    };
    let (json, ion) = (export(OutputFormat::DynamodbJson), export(OutputFormat::Ion));
    assert!(walk(&ion.generated.full_export_dir.join("data")).iter().all(|f| f.to_string_lossy().ends_with(".ion.gz")));
    let out = tempfile::tempdir().unwrap();
    // Unpartitioned, and partitioned with one open file on one worker: the
    // rows of later files reach their partitions as spilled source lines.
    let spilled = ["-p", "plain", "--max-open-files", "1", "--jobs", "1", "--json"];
    for (variant, extra) in [("plain", &["--jobs", "2"][..]), ("spilled", &spilled[..])] {
        let mut tables = Vec::new();
        for (name, e) in [("json", &json), ("ion", &ion)] {
            let dest = out.path().join(format!("{variant}-{name}"));
            let mut args = vec!["convert", e.generated.full_export_dir.to_str().unwrap(), dest.to_str().unwrap()];
            args.extend_from_slice(extra);
            let o = dynolake(&args, &[]);
            assert_code(&o, 0);
            if variant == "spilled" {
                let s: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
                assert!(s["spilled_lines"].as_u64().unwrap() > 0, "{name}: {s}");
            }
            let v = dynolake(&["inspect", e.generated.full_export_dir.to_str().unwrap(), "--verify"], &[]);
            assert_code(&v, 0);
            let batches = read_parquet_dir(&dest);
            let all = concat(&batches);
            let ids = all.column_by_name("id").unwrap();
            let order = arrow::compute::sort_to_indices(ids, None, None).unwrap();
            let sorted = arrow::compute::take_record_batch(&all, &order).unwrap();
            tables.push(sorted);
        }
        assert_eq!(tables[0].num_rows(), items.len(), "{variant}");
        assert_eq!(tables[0].schema(), tables[1].schema(), "{variant}");
        assert_eq!(tables[0], tables[1], "{variant}");
    }
    // And SQL answers the same over both.
    let q = "SELECT count(*), sum(amount), count(DISTINCT edge) FROM t";
    let a = dynolake(&["sql", &format!("t={}", json.generated.full_export_dir.display()), "-e", q], &[]);
    let b = dynolake(&["sql", &format!("t={}", ion.generated.full_export_dir.display()), "-e", q], &[]);
    assert_code(&a, 0);
    assert_code(&b, 0);
    assert_eq!(stdout(&a), stdout(&b));
}

// ---------- an independent writer: ion-rs ----------

fn ion_rs_element(v: &AV) -> ion_rs::Element {
    use ion_rs::{Decimal, Element, IonType, Sequence, Struct};
    let decimal = |n: &str| {
        let (neg, digits, exp) = norm_number(n);
        if digits.is_empty() {
            return Element::decimal(Decimal::new(0i128, 0i64));
        }
        let c: i128 = digits.parse().unwrap();
        let c = if neg { -c } else { c };
        // Integers sometimes as Ion ints, which DynamoDB's reader must accept too.
        if exp == 0 && digits.len() % 2 == 0 { Element::int(c) } else { Element::decimal(Decimal::new(c, exp)) }
    };
    let list = |items: Vec<Element>| Element::from(Sequence::builder().push_all(items).build_list());
    match v {
        AV::S(s) => Element::string(s.as_str()),
        AV::N(n) => decimal(n),
        AV::B(b) => Element::blob(b),
        AV::Bool(b) => Element::boolean(*b),
        AV::Null(_) => Element::null(IonType::Null),
        AV::M(m) => {
            let mut s = Struct::builder();
            for (k, v) in m {
                s = s.with_field(k.as_str(), ion_rs_element(v));
            }
            Element::from(s.build())
        }
        AV::L(l) => list(l.iter().map(ion_rs_element).collect()),
        AV::Ss(v) => list(v.iter().map(|s| Element::string(s.as_str())).collect()).with_annotations(["$dynamodb_SS"]),
        AV::Ns(v) => list(v.iter().map(|n| decimal(n)).collect()).with_annotations(["$dynamodb_NS"]),
        AV::Bs(v) => list(v.iter().map(Element::blob).collect()).with_annotations(["$dynamodb_BS"]),
    }
}

fn canonical_av(v: &AV) -> AV {
    match v {
        AV::N(n) => AV::N(canonical(n)),
        AV::Ns(v) => AV::Ns(v.iter().map(|n| canonical(n)).collect()),
        AV::M(m) => AV::M(m.iter().map(|(k, v)| (k.clone(), canonical_av(v))).collect()),
        AV::L(l) => AV::L(l.iter().map(canonical_av).collect()),
        other => other.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Items written as Ion text by ion-rs decode value for value.
    #[test]
    fn items_written_by_ion_rs_decode_value_for_value(
        items in prop::collection::vec(super::decode::item(), 1..30),
        chunk in 1usize..200,
    ) {
        let items: Vec<HashMap<String, AV>> =
            items.iter().map(|it| it.iter().map(|(k, v)| (k.clone(), canonical_av(v))).collect()).collect();
        let mut text = String::new();
        for it in &items {
            let record = AV::M(it.clone());
            let element = ion_rs::Element::from(
                ion_rs::Struct::builder().with_field("Item", ion_rs_element(&record)).build(),
            );
            text.push_str(&format!("$ion_1_0 {element}\n"));
        }
        let (_, batch, _) = read(text.as_bytes(), Syntax::Ion, chunk);
        check_batch(&batch, &items);
    }
}

/// `examples/orders-ion` is `examples/orders` (same generator, same seed)
/// exported as ION: every command reads it and gives the same answers.
#[test]
fn the_shipped_ion_sample_answers_like_its_json_twin() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let (json, ion) = (root.join("orders"), root.join("orders-ion"));
    let v = dynolake(&["inspect", ion.to_str().unwrap(), "--verify"], &[]);
    assert_code(&v, 0);
    assert!(stdout(&v).contains("ION"), "{}", stdout(&v));
    let q = "SELECT status, count(*), sum(amount), sum(quantity), count(DISTINCT order_id), sum(cardinality(tags)), \
             max(precise), min(created_at) FROM orders GROUP BY status ORDER BY status";
    let a = dynolake(&["sql", json.to_str().unwrap(), "-e", q], &[]);
    let b = dynolake(&["sql", ion.to_str().unwrap(), "-e", q], &[]);
    assert_code(&a, 0);
    assert_code(&b, 0);
    assert_eq!(stdout(&a), stdout(&b));
    assert!(stdout(&a).contains("DELIVERED"));
    let s = dynolake(&["schema", ion.to_str().unwrap()], &[]);
    assert_code(&s, 0);
    let t = dynolake(&["schema", json.to_str().unwrap()], &[]);
    assert_eq!(stdout(&s), stdout(&t));
}

/// The raw-export DDL of an ION export uses Athena's Ion SerDe, one path
/// extractor per attribute (exact names), and the view gives convert's columns.
#[test]
fn ddl_for_an_ion_export_uses_the_ion_serde() {
    let e = export_with(GenerateOptions {
        items: 300,
        awkward_names: true,
        format: OutputFormat::Ion,
        ..Default::default()
    });
    let o = dynolake(&["ddl", e.generated.full_export_dir.to_str().unwrap()], &[]);
    assert_code(&o, 0);
    let ddl = stdout(&o);
    for want in [
        "ROW FORMAT SERDE 'com.amazon.ionhiveserde.IonHiveSerDe'",
        "'com.amazon.ionhiveserde.formats.IonInputFormat'",
        "'ion.order_id.path_extractor'='(Item orderId)'",
        "'ion.ship_to_city.path_extractor'='(Item ''ship-to city'')'",
        "'ion.url.path_extractor'='(Item URL)'",
        "'ion.url_2.path_extractor'='(Item Url)'",
        "'ion.path_extractor.case_sensitive'='true'",
        "`amount` decimal(18,2)",
        "`tags` array<string>",
        "CREATE OR REPLACE VIEW",
    ] {
        assert!(ddl.contains(want), "missing {want:?} in:\n{ddl}");
    }
    assert!(!ddl.contains("JsonSerDe"), "{ddl}");
}
