//! Decoding throughput: DynamoDB JSON (and Ion text) bytes → Arrow record
//! batches, every attribute.
//!
//! The data is generated here (the same Orders items as `dynolake generate`), so
//! nothing large is committed. Reports MB/s of JSON on one core; `convert` runs
//! one such decoder per core.
//!
//!     cargo bench --bench decode

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dynolake::decode::{DecodeOptions, Envelope, Inferrer, ItemDecoder, Syntax};
use dynolake::generate::{Rng, make_item};
use dynolake::schema::infer::InferOptions;

fn lines(n: usize) -> Vec<u8> {
    let mut rng = Rng::new(42);
    let mut out = String::new();
    for _ in 0..n {
        out.push_str("{\"Item\":");
        dynolake::ddb::value::write_item(&make_item(&mut rng, 1_600_000_000_000, 1_700_000_000_000, false), &mut out);
        out.push_str("}\n");
    }
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let data = lines(50_000);
    let opts = InferOptions::default();
    let mut inf = Inferrer::new(&opts, Envelope::Item);
    inf.start_file(0, "bench");
    inf.feed(&data).unwrap();
    inf.finish_file().unwrap();
    let schema = inf.stats.schema(&opts);

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.bench_function("items_to_record_batches", |b| {
        b.iter(|| {
            let mut dec = ItemDecoder::new(&schema, DecodeOptions::default());
            dec.start_file(0, "bench");
            let mut rows = 0;
            let mut off = 0;
            while off < data.len() {
                off += dec.decode(&data[off..]).unwrap();
                if dec.is_full() {
                    rows += dec.flush().unwrap().map_or(0, |b| b.num_rows());
                }
            }
            dec.finish_file().unwrap();
            rows += dec.flush().unwrap().map_or(0, |b| b.num_rows());
            black_box(rows)
        })
    });
    g.bench_function("schema_inference", |b| {
        b.iter(|| {
            let mut inf = Inferrer::new(&opts, Envelope::Item);
            inf.start_file(0, "bench");
            inf.feed(&data).unwrap();
            inf.finish_file().unwrap();
            black_box(inf.stats.items)
        })
    });
    g.finish();

    // The same items as Ion text (as an ION export holds them): throughput per
    // byte of Ion, which is shorter than the same items' JSON.
    let ion = ion_lines(50_000);
    let mut g = c.benchmark_group("decode_ion");
    g.throughput(Throughput::Bytes(ion.len() as u64));
    g.sample_size(10);
    g.bench_function("items_to_record_batches", |b| {
        b.iter(|| {
            let mut dec = ItemDecoder::new(&schema, DecodeOptions { syntax: Syntax::Ion, ..Default::default() });
            dec.start_file(0, "bench");
            let mut rows = 0;
            let mut off = 0;
            while off < ion.len() {
                off += dec.decode(&ion[off..]).unwrap();
                if dec.is_full() {
                    rows += dec.flush().unwrap().map_or(0, |b| b.num_rows());
                }
            }
            dec.finish_file().unwrap();
            rows += dec.flush().unwrap().map_or(0, |b| b.num_rows());
            assert_eq!(dec.stats().rejected, 0);
            black_box(rows)
        })
    });
    g.finish();
}

fn ion_lines(n: usize) -> Vec<u8> {
    let mut rng = Rng::new(42);
    let mut out = String::new();
    for _ in 0..n {
        out.push_str("$ion_1_0 {Item:");
        let item = make_item(&mut rng, 1_600_000_000_000, 1_700_000_000_000, false);
        dynolake::ddb::value::write_item_ion(&item, &mut out);
        out.push_str("}\n");
    }
    out.into_bytes()
}

criterion_group!(benches, bench);
criterion_main!(benches);
