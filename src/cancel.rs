//! Stopping a run cleanly on SIGINT / SIGTERM.
//!
//! A writing command installs the handler ([`install`]). The first signal
//! only sets a flag; the long loops (reading, the spill merge) check it with
//! [`check`] and fail with [`Error::Interrupted`], so the ordinary failure
//! path runs: staged files are deleted, S3 multipart uploads aborted, spill
//! folders removed, the lease released. A commit already under way is let
//! finish (it is short, and stopping it would leave work for the next run).
//! A second signal exits at once with the same status.
//!
//! Exit status: 130 after SIGINT, 143 after SIGTERM (128 + the signal number,
//! as shells report).

use std::sync::atomic::{AtomicI32, Ordering};

use crate::error::{Error, Result};

static SIGNAL: AtomicI32 = AtomicI32::new(0);

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// The signal that asked the run to stop, if any.
pub fn requested() -> Option<&'static str> {
    match SIGNAL.load(Ordering::Relaxed) {
        0 => None,
        SIGINT => Some("SIGINT"),
        _ => Some("SIGTERM"),
    }
}

/// Fail with [`Error::Interrupted`] once a signal has arrived.
pub fn check() -> Result<()> {
    match requested() {
        Some(name) => Err(Error::Interrupted(name)),
        None => Ok(()),
    }
}

/// The exit status for an interrupted run.
pub fn exit_code(signal: &str) -> u8 {
    if signal == "SIGINT" { 130 } else { 143 }
}

/// Route SIGINT and SIGTERM to the flag (on `rt`'s threads).
pub fn install(rt: &tokio::runtime::Runtime) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        for (kind, number) in [(SignalKind::interrupt(), SIGINT), (SignalKind::terminate(), SIGTERM)] {
            let Ok(mut stream) = rt.block_on(async { signal(kind) }) else { continue };
            rt.spawn(async move {
                while stream.recv().await.is_some() {
                    if SIGNAL.swap(number, Ordering::Relaxed) != 0 {
                        eprintln!("dynolake: second signal, exiting now");
                        std::process::exit(128 + number);
                    }
                    eprintln!("dynolake: stopping (cleaning up staged files; a second signal exits at once)");
                }
            });
        }
    }
    #[cfg(not(unix))]
    let _ = rt;
}

/// A kill-injection point for tests: with `DYNOLAKE_CRASH_AT=NAME` the
/// process dies at the first pass through the point called `NAME`, with
/// `NAME:N` at the N-th. It dies the way a SIGKILL leaves things: no
/// destructor, no cleanup, no lease released (`_exit`-like, status 101).
///
/// Points: `scan-batch` (a batch reached a worker's sink), `spill-run` (a
/// spill run was written), `merge-partition` (the spill merge wrote a
/// partition), `before-commit`, `commit-move` (each file moved into place),
/// `mid-commit` (half of them moved), `commit-record`, `commit-success`,
/// `overwrite-delete` (each old file removed by `--mode overwrite`).
pub fn crash_point(name: &str) {
    use std::sync::OnceLock;
    use std::sync::atomic::AtomicU64;
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static PASSES: AtomicU64 = AtomicU64::new(0);
    let target = TARGET.get_or_init(|| {
        let v = std::env::var("DYNOLAKE_CRASH_AT").ok()?;
        let (point, n) = v.split_once(':').map_or((v.as_str(), 1), |(p, n)| (p, n.parse().unwrap_or(1)));
        Some((point.to_string(), n.max(1)))
    });
    if let Some((point, n)) = target
        && point == name
        && PASSES.fetch_add(1, Ordering::Relaxed) + 1 == *n
    {
        eprintln!("dynolake: simulated crash at {name}");
        std::process::exit(101);
    }
}
