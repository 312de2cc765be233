//! `manifest-summary.json`: parsed or refused with an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dynolake::export::manifest::ManifestSummary::parse("manifest-summary.json", data);
});
