//! Allocator settings for the process (the command-line tool sets them at start).

/// glibc's malloc hands blocks above an adaptive threshold (128 KiB to start)
/// straight to `mmap` and back to the kernel on `free`, and trims the heap top
/// eagerly. Decoding and Parquet encoding allocate and free buffers of several
/// MiB per batch, so each came back as fresh zeroed pages: page faults, about
/// 3 % of a conversion's time. Fixed thresholds of 32 MiB (glibc's largest)
/// keep such blocks on the heap for reuse.
///
/// Measured on the 2M-item corpus (release, 4–5 alternating runs): convert
/// 4.61 → 4.45 s, partitioned 5.83 → 5.70 s, system time 0.49 → 0.33 s, peak
/// RSS within ±10 MB.
///
/// And one arena per core (glibc's default is eight per core): every thread
/// that allocates gets an arena of its own, up to that limit, and each keeps
/// what it freed (up to the thresholds above) for itself. A merge runs its
/// scans on DataFusion's and tokio's threads as well as the writers': on the
/// 2M corpus with its 110k changes it peaked at 710–747 MiB with the default
/// and 437–447 MiB with `MALLOC_ARENA_MAX=2` (466–578 MiB with this call, in
/// other runs), in about the same time (medians 10.0 and 10.1 s of three
/// interleaved runs; 10.2 and 11.2 s in another three: the machine is noisy);
/// `convert` is unchanged (7.49 vs 7.42 s, 4 interleaved rounds, same RSS).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune() {
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_THRESHOLD: i32 = -3;
    const M_ARENA_MAX: i32 = -8;
    const THRESHOLD: i32 = 32 << 20;
    let arenas = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 64) as i32;
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    // SAFETY: mallopt only changes malloc's tunables; it takes plain integers
    // and is called at start-up. A value it refuses is ignored (returns 0).
    unsafe {
        mallopt(M_MMAP_THRESHOLD, THRESHOLD);
        mallopt(M_TRIM_THRESHOLD, THRESHOLD);
        // An explicit MALLOC_ARENA_MAX in the environment wins.
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            mallopt(M_ARENA_MAX, arenas);
        }
    }
}

/// Other platforms keep their allocator's defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() {}
