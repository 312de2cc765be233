//! `inspect --verify`: read every data file once and check it against the manifest.

use std::sync::Mutex;

use serde::Serialize;

use super::{CHUNK, DataStream, check_facts};
use crate::error::Result;
use crate::export::{self, Export};

#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub files_checked: usize,
    pub lines: u64,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    /// Every mismatch, each naming the file and both values.
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Stream every data file of `export` on `jobs` threads. `progress` is called
/// with the compressed bytes of each finished file.
pub fn verify(
    export: &Export,
    rt: &tokio::runtime::Handle,
    jobs: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    report.problems.extend(export.manifest_problems.iter().cloned());
    report.problems.extend(rt.block_on(export::check_summary_checksum(export))?);

    // Problems are collected, not raised: verification reads every file whatever it finds.
    let order = crate::pipeline::work_order(&export.files);
    let shared = Mutex::new(&mut report);
    crate::pool::run(
        jobs,
        order.len(),
        crate::pool::Queue::Shared,
        |_| Ok(vec![0u8; CHUNK]),
        |buf, slot, _| {
            let file = &export.files[order[slot]];
            if file.size.is_none() {
                return Ok(true); // already reported as missing
            }
            let result = (|| {
                let mut stream = DataStream::open(export, file, rt)?;
                while stream.next_chunk(buf)? > 0 {}
                stream.finish()
            })();
            let mut r = shared.lock().unwrap();
            r.files_checked += 1;
            match result {
                Ok(facts) => {
                    r.lines += facts.lines;
                    r.compressed_bytes += facts.compressed_bytes;
                    r.uncompressed_bytes += facts.uncompressed_bytes;
                    r.problems.extend(check_facts(export, file, &facts));
                    progress(facts.compressed_bytes);
                }
                Err(e) => r.problems.push(e.to_string()),
            }
            Ok(true)
        },
        |_, _| Ok(()),
    )?;
    if report.problems.is_empty() && report.lines != export.summary.item_count {
        report.problems.push(format!(
            "{}: the data files hold {} lines, the summary says {} items",
            export.location.display(&export.dir),
            report.lines,
            export.summary.item_count
        ));
    }
    Ok(report)
}
