//! Lines decoded with a fixed schema (the shipped orders schema): values that
//! do not fit go to `_extra` or the rejects, never a panic or a bad batch.
#![no_main]
use std::sync::OnceLock;

use dynolake::decode::{DecodeOptions, ItemDecoder};
use dynolake::schema::Schema;
use libfuzzer_sys::fuzz_target;

fn schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| Schema::from_file_str("orders.json", include_str!("../../schemas/orders.json")).unwrap())
}

fuzz_target!(|data: &[u8]| {
    for strict in [false, true] {
        let mut dec = ItemDecoder::new(schema(), DecodeOptions { strict, batch_size: 5, ..Default::default() });
        dec.start_file(0, "fuzz");
        let mut off = 0;
        let mut rows = 0;
        while off < data.len() {
            match dec.decode(&data[off..]) {
                Ok(n) => off += n,
                Err(_) => break,
            }
            if dec.is_full() {
                rows += dec.flush().expect("a batch builds").map_or(0, |b| b.num_rows());
            }
        }
        let _ = dec.finish_file();
        rows += dec.flush().expect("a batch builds").map_or(0, |b| b.num_rows());
        assert_eq!(rows as u64, dec.stats().items);
    }
});
