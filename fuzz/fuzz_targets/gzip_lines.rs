//! Compressed bytes through gunzip and line framing into a decoder: corrupt
//! or truncated gzip is an error, never a panic; facts count what was read.
#![no_main]
use std::sync::OnceLock;

use dynolake::decode::{DecodeOptions, ItemDecoder};
use dynolake::read::DataStream;
use dynolake::schema::Schema;
use dynolake::schema::infer::InferOptions;
use libfuzzer_sys::fuzz_target;

fn schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| Schema::from_file_str("orders.json", include_str!("../../schemas/orders.json")).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let mut stream = DataStream::from_reader(Box::new(std::io::Cursor::new(data.to_vec())), "fuzz.json.gz".into());
    let infer = InferOptions { max_line_bytes: 1 << 16, ..Default::default() };
    let mut dec = ItemDecoder::new(schema(), DecodeOptions { infer, ..Default::default() });
    dec.start_file(0, "fuzz.json.gz");
    let mut buf = vec![0u8; 4096];
    let mut total = 0u64;
    loop {
        let n = match stream.next_chunk(&mut buf) {
            Ok(n) => n,
            Err(_) => return,
        };
        if n == 0 {
            break;
        }
        total += n as u64;
        let mut off = 0;
        while off < n {
            match dec.decode(&buf[off..n]) {
                Ok(k) => off += k,
                Err(_) => return,
            }
            if dec.is_full() {
                dec.flush().expect("a batch builds");
            }
        }
    }
    let _ = dec.finish_file();
    dec.flush().expect("a batch builds");
    if let Ok(facts) = stream.finish() {
        assert_eq!(facts.uncompressed_bytes, total);
        assert_eq!(facts.compressed_bytes, data.len() as u64);
    }
});
