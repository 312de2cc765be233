//! Hive partition escaping: every value round-trips, an escaped value is one
//! path segment with no character object stores or file systems refuse.
#![no_main]
use dynolake::write::partition::{escape, unescape};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = std::str::from_utf8(data) {
        let e = escape(value);
        assert_eq!(unescape(&e), value);
        assert!(!e.contains('/') && !e.chars().any(|c| c.is_ascii_control()), "{e:?}");
    }
    let _ = unescape(&String::from_utf8_lossy(data));
});
