//! `inspect --verify`: read every data file once and check it against the manifest.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

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

    let order = crate::scan::work_order(&export.files);
    let next = AtomicUsize::new(0);
    let shared = Mutex::new(&mut report);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                let mut buf = vec![0u8; CHUNK];
                while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let file = &export.files[i];
                    if file.size.is_none() {
                        continue; // already reported as missing
                    }
                    let result = (|| {
                        let mut stream = DataStream::open(export, file, rt)?;
                        while stream.next_chunk(&mut buf)? > 0 {}
                        stream.finish()
                    })();
                    let mut r = shared.lock().unwrap();
                    match result {
                        Ok(facts) => {
                            r.files_checked += 1;
                            r.lines += facts.lines;
                            r.compressed_bytes += facts.compressed_bytes;
                            r.uncompressed_bytes += facts.uncompressed_bytes;
                            r.problems.extend(check_facts(export, file, &facts));
                            progress(facts.compressed_bytes);
                        }
                        Err(e) => {
                            r.files_checked += 1;
                            r.problems.push(e.to_string());
                        }
                    }
                }
            });
        }
    });
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
