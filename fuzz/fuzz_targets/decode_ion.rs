//! Lines of (mostly) Ion text, as an ION export holds them: infer a schema,
//! then decode with it, fed in two chunks split anywhere. Never a panic;
//! every line holding a value is an item or a reject; the catch-all's
//! canonical DynamoDB JSON is valid JSON.
#![no_main]
use arrow::array::{Array, AsArray};
use dynolake::decode::{DecodeOptions, Envelope, Inferrer, ItemDecoder, Syntax};
use dynolake::schema::infer::InferOptions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, &[u8])| {
    let (split, data) = input;
    let opts = InferOptions { max_line_bytes: 1 << 20, max_columns: 64, ..Default::default() };
    let mut inf = Inferrer::new(&opts, Envelope::Item).with_syntax(Syntax::Ion);
    inf.start_file(0, "fuzz");
    let cut = (split as usize).min(data.len());
    if inf.feed(&data[..cut]).and_then(|()| inf.feed(&data[cut..])).and_then(|()| inf.finish_file()).is_err() {
        return; // a line over the cap, or Ion binary: refused, as documented
    }
    let schema = inf.stats.schema(&opts);
    let dopts = DecodeOptions { infer: opts, batch_size: 7, syntax: Syntax::Ion, ..Default::default() };
    let mut dec = ItemDecoder::new(&schema, dopts);
    dec.start_file(0, "fuzz");
    let mut rows = 0;
    let mut check = |b: arrow::array::RecordBatch| {
        let extra = b.column(b.num_columns() - 1).as_string::<i32>().clone();
        for i in 0..extra.len() {
            if extra.is_valid(i) {
                serde_json::from_str::<serde_json::Value>(extra.value(i)).expect("the catch-all holds JSON");
            }
        }
        b.num_rows()
    };
    for part in [&data[..cut], &data[cut..]] {
        let mut off = 0;
        while off < part.len() {
            match dec.decode(&part[off..]) {
                Ok(n) => off += n,
                Err(_) => return,
            }
            if dec.is_full() {
                rows += dec.flush().expect("a batch builds").map_or(0, &mut check);
            }
        }
    }
    dec.finish_file().ok();
    rows += dec.flush().expect("a batch builds").map_or(0, &mut check);
    let s = dec.stats();
    assert_eq!(rows as u64, s.items);
    let mut with_values = 0u64;
    for (i, l) in data.split(|&b| b == b'\n').enumerate() {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        if !Syntax::Ion.holds_no_record(l, "fuzz", i as u64 + 1).unwrap_or(true) {
            with_values += 1;
        }
    }
    assert_eq!(s.items + s.rejected, with_values, "every line holding a value is an item or a reject");
});
