//! `manifest-files.json` lines and their data-file keys: a key that resolves
//! stays inside the export's own folder.
#![no_main]
use dynolake::export::manifest::{data_key_suffix, parse_files_manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = parse_files_manifest("manifest-files.json", data) else { return };
    for e in entries {
        for prefix in [None, Some("exports"), Some("a/b/")] {
            if let Ok(suffix) = data_key_suffix(&e.data_file_s3_key, prefix, "01234-abcd") {
                assert!(!suffix.split('/').any(|p| p == ".." || p == "."), "{suffix}");
                assert!(!suffix.starts_with('/'), "{suffix}");
            }
        }
    }
});
