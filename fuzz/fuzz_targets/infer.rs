//! Schema inference alone: whatever the lines, the schema it gives is valid,
//! and its file form parses back to the same schema.
#![no_main]
use dynolake::decode::{Envelope, Inferrer};
use dynolake::schema::Schema;
use dynolake::schema::infer::InferOptions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (bool, &[u8])| {
    let (new_image, data) = input;
    let opts = InferOptions { map_threshold: 3, max_columns: 32, max_line_bytes: 1 << 20 };
    let envelope = if new_image { Envelope::NewImage } else { Envelope::Item };
    let mut inf = Inferrer::new(&opts, envelope);
    inf.start_file(0, "fuzz");
    if inf.feed(data).and_then(|()| inf.finish_file()).is_err() {
        return;
    }
    let schema = inf.stats.schema(&opts);
    schema.validate().expect("an inferred schema is valid");
    let text = schema.to_file_string();
    let back = Schema::from_file_str("inferred", &text).expect("an inferred schema file parses");
    assert_eq!(back.to_file_string(), text);
});
