//! Schema files as users edit them: parsed or refused; a parsed one writes
//! back to text that parses to the same schema, and builds an Arrow schema.
#![no_main]
use dynolake::schema::Schema;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(schema) = Schema::from_file_str("fuzz.json", text) else { return };
    let written = schema.to_file_string();
    let again = Schema::from_file_str("written", &written).expect("what we write parses");
    assert_eq!(again.to_file_string(), written);
    let _ = schema.arrow_schema();
});
