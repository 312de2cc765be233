//! Lines of (mostly) DynamoDB JSON: infer a schema from them, then decode them
//! with it, fed in two chunks split anywhere. Never a panic; every non-blank
//! line is an item or a reject; the batch has one row per item.
#![no_main]
use dynolake::decode::{DecodeOptions, Envelope, Inferrer, ItemDecoder};
use dynolake::schema::infer::InferOptions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, &[u8])| {
    let (split, data) = input;
    let opts = InferOptions { max_line_bytes: 1 << 20, max_columns: 64, ..Default::default() };
    let mut inf = Inferrer::new(&opts, Envelope::Item);
    inf.start_file(0, "fuzz");
    let cut = (split as usize).min(data.len());
    if inf.feed(&data[..cut]).and_then(|()| inf.feed(&data[cut..])).and_then(|()| inf.finish_file()).is_err() {
        return; // a line over the cap: refused, as documented
    }
    let schema = inf.stats.schema(&opts);
    let mut dec = ItemDecoder::new(&schema, DecodeOptions { infer: opts, batch_size: 7, ..Default::default() });
    dec.start_file(0, "fuzz");
    let mut rows = 0;
    for part in [&data[..cut], &data[cut..]] {
        let mut off = 0;
        while off < part.len() {
            match dec.decode(&part[off..]) {
                Ok(n) => off += n,
                Err(_) => return,
            }
            if dec.is_full() {
                rows += dec.flush().expect("a batch builds").map_or(0, |b| b.num_rows());
            }
        }
    }
    dec.finish_file().ok();
    rows += dec.flush().expect("a batch builds").map_or(0, |b| b.num_rows());
    let s = dec.stats();
    assert_eq!(rows as u64, s.items);
    let nonblank = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.strip_suffix(b"\r").unwrap_or(l).iter().all(u8::is_ascii_whitespace))
        .count() as u64;
    assert_eq!(s.items + s.rejected, nonblank, "every line is an item or a reject");
});
