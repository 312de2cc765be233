//! Where production runs: S3 output at real size, writers racing for one
//! destination, kills at every step of a run, storage faults, signals,
//! hostile input, secrets. Every test checks what a reader of the
//! destination sees afterwards.

use std::path::Path;
use std::process::{Command, Stdio};

use dynolake::generate::GenerateOptions;

use crate::support::*;

fn dl(args: &[&str]) -> std::process::Output {
    dynolake(args, &[])
}

/// `SELECT count(*)` over a location through `dynolake sql`, with its stderr.
fn sql_count(loc: &str, env: &[(&str, String)]) -> (u64, String) {
    let o = dynolake(&["sql", &format!("t={loc}"), "-e", "SELECT count(*) AS n FROM t", "--format", "csv"], env);
    assert_code(&o, 0);
    let out = stdout(&o);
    let n = out.lines().nth(1).unwrap_or_else(|| panic!("no count in {out:?}")).trim().parse().unwrap();
    (n, stderr(&o))
}

/// The rows of a query through `dynolake sql`, as CSV lines (header dropped).
fn sql_rows(args: &[&str]) -> Vec<String> {
    let mut a = vec!["sql"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--format", "csv"]);
    let o = dl(&a);
    assert_code(&o, 0);
    stdout(&o).lines().skip(1).map(str::to_string).collect()
}

fn commit_records(dest: &Path) -> Vec<serde_json::Value> {
    let dir = dest.join("_dynolake/commits");
    if !dir.exists() {
        return Vec::new();
    }
    walk(&dir).iter().map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap()).collect()
}

// ---------------------------------------------------------------------------
// S3 at real size

#[test]
fn s3_output_at_real_size_with_default_settings() {
    let s3 = S3Server::start();
    let items = 30_000;
    let e = export_with(GenerateOptions { items, files: 4, prefix: Some("big".into()), ..Default::default() });
    s3.upload_dir(e.dir.path(), BUCKET, "");
    let src = format!("s3://{BUCKET}/big/");

    // JSON Lines, unpartitioned, both workers: files of several S3 parts each.
    let o = dynolake(&["convert", &src, "s3://lake/jsonl", "--format", "jsonl", "--json"], &s3.env());
    assert_code(&o, 0);
    let keys = s3.list("lake", "jsonl");
    let data: Vec<&String> = keys.iter().filter(|k| k.ends_with(".jsonl")).collect();
    assert_eq!(data.len(), 2, "one file per worker: {keys:?}");
    let mut lines = 0;
    let mut biggest = 0;
    // Every file goes up in 5 MiB parts (the last one shorter); how the rows split between
    // the workers depends on which takes which data file, so count the parts each file needs.
    let mut parts = 0;
    for k in &data {
        let bytes = s3.get("lake", k);
        biggest = biggest.max(bytes.len());
        parts += bytes.len().div_ceil(5 << 20).max(1) as u64;
        lines += bytes.iter().filter(|&&b| b == b'\n').count();
    }
    assert_eq!(lines as u64, items);
    assert!(biggest > 5 << 20, "a file big enough for a multipart upload of several parts: {biggest} bytes");
    let uploaded = s3.requests("upload_part");
    assert!(parts >= 3 && uploaded >= parts, "every file's parts were uploaded: {uploaded} of {parts}");

    // Parquet, partitioned, through the spill and its merge, S3 in and out.
    let o = dynolake(&["convert", &src, "s3://lake/pq", "-p", "status", "--max-open-files", "2", "--json"], &s3.env());
    assert_code(&o, 0);
    let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(summary["spilled_rows"].as_u64().unwrap() > 0, "{summary}");
    let (n, warnings) = sql_count("s3://lake/pq", &s3.env());
    assert_eq!(n, items);
    assert!(!warnings.contains("warning"), "{warnings}");
    assert!(s3.open_uploads().is_empty(), "every upload completed or aborted: {:?}", s3.open_uploads());
    assert!(!s3.list("lake", "").iter().any(|k| k.contains("_temporary") || k.ends_with("lease.json")));
}

// ---------------------------------------------------------------------------
// Storage faults

#[test]
fn storage_faults_are_retried_and_a_failure_commits_nothing() {
    let e = export_with(GenerateOptions { items: 3000, files: 3, prefix: Some("exp".into()), ..Default::default() });
    let transient = vec![
        Fault { op: "get_object", nth: 2, times: 3, kind: FaultKind::SlowDown },
        Fault { op: "list_objects_v2", nth: 1, times: 1, kind: FaultKind::Internal },
        Fault { op: "head_object", nth: 1, times: 2, kind: FaultKind::SlowDown },
        Fault { op: "upload_part", nth: 1, times: 2, kind: FaultKind::Internal },
        Fault { op: "put_object", nth: 2, times: 2, kind: FaultKind::SlowDown },
        Fault { op: "copy_object", nth: 2, times: 2, kind: FaultKind::Internal },
        Fault { op: "delete_object", nth: 1, times: 1, kind: FaultKind::SlowDown },
        Fault { op: "get_object", nth: 6, times: 1, kind: FaultKind::Slow(std::time::Duration::from_millis(1500)) },
    ];
    let s3 = S3Server::start_with(transient);
    s3.upload_dir(e.dir.path(), BUCKET, "");
    let injected_by_upload = s3.log.injected.load(std::sync::atomic::Ordering::Relaxed);
    let src = format!("s3://{BUCKET}/exp/");
    let o = dynolake(&["convert", &src, "s3://lake/t", "-p", "status", "--max-open-files", "2"], &s3.env());
    assert_code(&o, 0);
    let injected = s3.log.injected.load(std::sync::atomic::Ordering::Relaxed) - injected_by_upload;
    assert!(injected >= 8, "faults were injected during the run: {injected}");
    let (n, _) = sql_count("s3://lake/t", &s3.env());
    assert_eq!(n, 3000, "every row, once, despite the faults");

    // A fault that does not go away: the run fails naming the object, commits nothing, leaves no upload.
    let s3 = S3Server::start_with(vec![Fault { op: "upload_part", nth: 1, times: 1_000, kind: FaultKind::Internal }]);
    s3.upload_dir(e.dir.path(), BUCKET, "");
    let mut env = s3.env();
    env.push(("DYNOLAKE_S3_MAX_RETRIES", "2".into()));
    let o = dynolake(&["convert", &src, "s3://lake/t", "--format", "jsonl"], &env);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("s3://lake/t/_temporary/"), "the error names the object: {}", stderr(&o));
    let keys = s3.list("lake", "t");
    assert!(!keys.iter().any(|k| k.ends_with("_SUCCESS") || k.contains("/_dynolake/commits/")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains("_temporary") || k.ends_with("lease.json")), "cleaned up: {keys:?}");
    assert!(s3.open_uploads().is_empty(), "abandoned uploads are aborted: {:?}", s3.open_uploads());
}

#[test]
fn connections_cut_mid_response_are_retried_and_resumed() {
    let e = export_with(GenerateOptions { items: 6000, files: 3, prefix: Some("exp".into()), ..Default::default() });
    let s3 = S3Server::start();
    s3.upload_dir(e.dir.path(), BUCKET, "");
    // Connections are cut after 40 KB of answers, four times: downloads of the
    // data files (hundreds of KB gzipped) are cut mid-body and must resume.
    let proxy = CuttingProxy::start(s3.addr, 4, 40_000);
    let env = proxy.env(&s3);
    let src = format!("s3://{BUCKET}/exp/");
    let o = dynolake(&["convert", &src, "s3://lake/cut", "-p", "status", "--max-open-files", "2", "--json"], &env);
    assert_code(&o, 0);
    let cuts = proxy.cut.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(cuts, 4, "connections were cut mid-response");
    let s: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(s["items"], 6000, "{s}");
    let (n, _) = sql_count("s3://lake/cut", &s3.env());
    assert_eq!(n, 6000, "every row once, read and written through cut connections ({cuts} cuts)");
    assert!(s3.open_uploads().is_empty(), "{:?}", s3.open_uploads());
}

// ---------------------------------------------------------------------------
// Writers racing

fn race(src: &str, dest: &str, extra: &[&str], n: usize, env: &[(&str, String)]) -> Vec<std::process::Output> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_dynolake"));
            c.args(["convert", src, dest, "-q"]).args(extra).stdout(Stdio::piped()).stderr(Stdio::piped());
            for (k, v) in env {
                c.env(k, v);
            }
            c.env_remove("AWS_PROFILE").spawn().unwrap()
        })
        .collect();
    children.into_iter().map(|c| c.wait_with_output().unwrap()).collect()
}

#[test]
fn writers_racing_for_one_destination_commit_exactly_once() {
    let e = export_with(GenerateOptions { items: 2000, files: 3, prefix: Some("exp".into()), ..Default::default() });
    let src_local = e.generated.full_export_dir.to_str().unwrap().to_string();
    let s3 = S3Server::start();
    s3.upload_dir(e.dir.path(), BUCKET, "");
    let src_s3 = format!("s3://{BUCKET}/exp/");
    let out = tempfile::tempdir().unwrap();
    for (writers, round) in [(2, 0), (4, 1), (4, 2)] {
        let local = out.path().join(format!("race{round}"));
        let s3_dest = format!("s3://lake/race{round}");
        for (src, dest, env) in [(&src_local, local.to_str().unwrap(), vec![]), (&src_s3, s3_dest.as_str(), s3.env())] {
            let outs = race(src, dest, &["-p", "status"], writers, &env);
            let ok = outs.iter().filter(|o| o.status.code() == Some(0)).count();
            assert_eq!(ok, 1, "exactly one of {writers} writers commits into {dest}");
            for o in outs.iter().filter(|o| o.status.code() != Some(0)) {
                let code = o.status.code();
                assert!(
                    code == Some(3) || code == Some(2),
                    "refused as locked (3) or already written (2): {}",
                    stderr(o)
                );
                if code == Some(3) {
                    assert!(stderr(o).contains("is being written by run"), "{}", stderr(o));
                }
            }
            let (n, _) = sql_count(dest, &env);
            assert_eq!(n, 2000, "{dest} holds every item once");
        }
        // Overwrites racing: each commits or is refused; the result is one whole dataset.
        let outs = race(&src_local, local.to_str().unwrap(), &["--mode", "overwrite"], writers, &[]);
        assert!(outs.iter().all(|o| matches!(o.status.code(), Some(0) | Some(3))));
        assert_eq!(commit_records(&local).len(), 1);
        let (n, _) = sql_count(local.to_str().unwrap(), &[]);
        assert_eq!(n, 2000);
        let success = std::fs::read_to_string(local.join("_SUCCESS")).unwrap();
        assert_eq!(success.trim(), commit_records(&local)[0]["run_id"].as_str().unwrap());
    }
}

#[test]
fn a_dead_runs_lease_is_taken_over_here_and_refused_from_elsewhere() {
    let e = small_export();
    let src = e.generated.full_export_dir.to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("ds");
    let d = dest.to_str().unwrap();
    let lease = |host: &str, run: &str| {
        std::fs::create_dir_all(dest.join("_dynolake")).unwrap();
        let v = serde_json::json!({"run_id": run, "host": host, "pid": 999_999_999u32,
            "started_at": "2026-11-29T00:00:00Z", "job": "convert"});
        std::fs::write(dest.join("_dynolake/lease.json"), v.to_string()).unwrap();
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    lease(&host, "run-dead-here");
    let o = dl(&["convert", src, d]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("took over the lease of dead run run-dead-here"), "{}", stderr(&o));
    assert!(!dest.join("_dynolake/lease.json").exists(), "released at the end");

    lease("another-machine", "run-elsewhere");
    let o = dl(&["convert", src, d, "--mode", "overwrite"]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("--break-lease run-elsewhere"), "{}", stderr(&o));
    // --json errors are JSON.
    let o = dl(&["convert", src, d, "--mode", "overwrite", "--json"]);
    assert_code(&o, 3);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["exit_code"], 3);
    assert!(v["error"].as_str().unwrap().contains("run-elsewhere"));
    // Taking over by name.
    let o = dl(&["convert", src, d, "--mode", "overwrite", "--break-lease", "run-elsewhere"]);
    assert_code(&o, 0);
    assert!(dest.join("_dynolake/broken-leases/run-elsewhere").exists());
    // The same dead lease cannot be broken twice (a slow second breaker must not remove a live lease).
    lease("another-machine", "run-elsewhere");
    let o = dl(&["convert", src, d, "--mode", "overwrite", "--break-lease", "run-elsewhere"]);
    assert_code(&o, 3);
}

// ---------------------------------------------------------------------------
// Interrupted commits and readers

#[test]
fn another_job_does_not_adopt_an_interrupted_commit_and_readers_see_only_commits() {
    let e = export_with(GenerateOptions { items: 600, files: 4, ..Default::default() });
    let src = e.generated.full_export_dir.to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("ds");
    let d = dest.to_str().unwrap();
    let crash = |args: &[&str]| {
        let mut a = vec!["convert", src, d];
        a.extend_from_slice(args);
        let o = dynolake(&a, &[("DYNOLAKE_CRASH_AT", "mid-commit".into())]);
        assert_code(&o, 101);
    };

    crash(&["-p", "status"]);
    // Half the files are in place, no commit record: dynolake's readers see nothing, and say why.
    assert!(
        walk(&dest)
            .iter()
            .any(|f| f.to_string_lossy().contains("status=") && !f.to_string_lossy().contains("_temporary"))
    );
    let o = dl(&["sql", &format!("t={d}"), "-e", "SELECT count(*) FROM t"]);
    assert!(!stdout(&o).contains("600"), "{}", stdout(&o));
    // Another job refuses, naming the interrupted run and how to recover.
    let o = dl(&["convert", src, d, "--format", "jsonl"]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("will not adopt") && stderr(&o).contains("dynolake recover"), "{}", stderr(&o));
    assert!(commit_records(&dest).is_empty(), "the other job committed nothing");
    // recover finishes it.
    let o = dl(&["recover", d]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("finished the commit of run"), "{}", stderr(&o));
    let (n, warnings) = sql_count(d, &[]);
    assert_eq!(n, 600);
    assert!(!warnings.contains("warning"), "{warnings}");

    // An interrupted overwrite: readers keep the old dataset, with a warning.
    crash(&["--mode", "overwrite"]);
    let (n, warnings) = sql_count(d, &[]);
    assert_eq!(n, 600, "the old dataset, whole; not the old plus part of the new");
    assert!(warnings.contains("is unfinished") || warnings.contains("under way"), "{warnings}");
    let ddl = dl(&["ddl", d]);
    assert!(stderr(&ddl).contains("warning"), "{}", stderr(&ddl));
    // recover --discard removes the new files; the old dataset stays.
    let o = dl(&["recover", d, "--discard"]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("discarded the commit of run"), "{}", stderr(&o));
    assert_eq!(commit_records(&dest).len(), 1);
    assert_eq!(commit_records(&dest)[0]["partition_by"][0]["name"], "status");
    let (n, warnings) = sql_count(d, &[]);
    assert_eq!(n, 600);
    assert!(!warnings.contains("warning"), "{warnings}");
    assert!(!dest.join("_temporary").exists());
    let rows: usize = read_parquet_dir(&dest).iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 600, "no file of the discarded commit is left");
    let o = dl(&["recover", d]);
    assert!(stderr(&o).contains("nothing to recover"), "{}", stderr(&o));
}

// ---------------------------------------------------------------------------
// Kills

/// Kill a conversion at one point; readers then see the old dataset or the
/// new one, whole; the same command run again completes the new one.
fn kill_trial(src: &str, dest: &str, env: &[(&str, String)], point: &str, items: u64) {
    // The old dataset: unpartitioned. The new one: partitioned by status, overwriting it.
    let new = ["-p", "status", "--mode", "overwrite", "--max-open-files", "2", "--max-rows-per-file", "150"];
    let mut args = vec!["convert", src, dest];
    args.extend_from_slice(&new);
    let mut crash_env = env.to_vec();
    crash_env.push(("DYNOLAKE_CRASH_AT", point.to_string()));
    let o = dynolake(&args, &crash_env);
    assert_code(&o, 101);
    let (n, _) = sql_count(dest, env);
    assert_eq!(n, items, "after a kill at {point}, readers see a whole dataset");
    let o = dynolake(&args, env);
    assert_code(&o, 0);
    let (n, warnings) = sql_count(dest, env);
    assert_eq!(n, items, "after the rerun ({point})");
    assert!(!warnings.contains("warning"), "{point}: {warnings}");
    let o = dynolake(&["sql", &format!("t={dest}"), "-e", "SELECT count(DISTINCT status) FROM t"], env);
    assert_code(&o, 0);
}

const KILL_POINTS: &[&str] = &[
    "scan-batch:1",
    "scan-batch:2",
    "spill-run:1",
    "merge-partition:1",
    "merge-partition:2",
    "before-commit",
    "commit-move:1",
    "commit-move:2",
    "commit-move:3",
    "commit-move:5",
    "commit-move:8",
    "mid-commit",
    "commit-record",
    "overwrite-delete:1",
    "overwrite-delete:2",
    "commit-success",
];

#[test]
fn kills_at_every_step_leave_the_old_or_the_new_dataset() {
    let items = 1200;
    let e = export_with(GenerateOptions { items, files: 3, prefix: Some("exp".into()), ..Default::default() });
    let src = e.generated.full_export_dir.to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("ds");
    let d = dest.to_str().unwrap();
    assert_code(&dl(&["convert", src, d, "--max-rows-per-file", "300"]), 0);
    let mut trials = 0;
    for point in KILL_POINTS {
        kill_trial(src, d, &[], point, items);
        // Back to the old shape for the next trial.
        assert_code(&dl(&["convert", src, d, "--mode", "overwrite", "--max-rows-per-file", "300"]), 0);
        trials += 1;
    }
    // Real SIGKILLs at moments in the run.
    for delay_ms in [30u64, 120, 250, 400, 700] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dynolake"))
            .args(["convert", src, d, "-p", "status", "--mode", "overwrite", "--max-open-files", "2", "-q"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let (n, _) = sql_count(d, &[]);
        assert_eq!(n, items, "after a SIGKILL at {delay_ms} ms");
        assert_code(&dl(&["convert", src, d, "-p", "status", "--mode", "overwrite"]), 0);
        assert_eq!(sql_count(d, &[]).0, items);
        trials += 1;
    }
    // And on S3, at the commit's steps.
    let s3 = S3Server::start();
    s3.upload_dir(e.dir.path(), BUCKET, "");
    let s3_src = format!("s3://{BUCKET}/exp/");
    let s3_dest = "s3://lake/killed";
    assert_code(&dynolake(&["convert", &s3_src, s3_dest], &s3.env()), 0);
    for point in
        ["scan-batch:2", "merge-partition:1", "commit-move:2", "mid-commit", "commit-record", "overwrite-delete:1"]
    {
        kill_trial(&s3_src, s3_dest, &s3.env(), point, items);
        assert_code(&dynolake(&["convert", &s3_src, s3_dest, "--mode", "overwrite"], &s3.env()), 0);
        trials += 1;
    }
    assert!(trials >= 20, "{trials} kill trials");
}

// ---------------------------------------------------------------------------
// Signals

#[test]
fn sigterm_and_sigint_clean_up_and_exit_with_their_status() {
    let s3 = S3Server::start();
    let e = export_with(GenerateOptions { items: 20_000, files: 2, prefix: Some("exp".into()), ..Default::default() });
    s3.upload_dir(e.dir.path(), BUCKET, "");
    let spill = tempfile::tempdir().unwrap();
    // A stale spill folder of a dead process is removed by the next run; a live one's stays.
    std::fs::create_dir(spill.path().join("dynolake-spill-999999999-stale")).unwrap();
    let live = spill.path().join(format!("dynolake-spill-{}-live", std::process::id()));
    std::fs::create_dir(&live).unwrap();
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dynolake"));
        c.args(["convert", &format!("s3://{BUCKET}/exp/"), "s3://lake/sig", "-p", "customerId", "--format", "jsonl"])
            .args(["--max-open-files", "2", "--spill-dir", spill.path().to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in s3.env() {
            c.env(k, v);
        }
        let child = c.spawn().unwrap();
        // Wait until the run is writing: its spill folder exists.
        let started = std::time::Instant::now();
        let own = format!("dynolake-spill-{}-", child.id());
        while !std::fs::read_dir(spill.path())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&own))
        {
            assert!(started.elapsed().as_secs() < 120, "the run never started spilling");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let status = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(code), "SIG{signal}: {}", stderr(&o));
        assert!(stderr(&o).contains("nothing was committed"), "{}", stderr(&o));
        let keys = s3.list("lake", "sig");
        assert!(keys.iter().all(|k| k.contains("/_dynolake/broken-leases/")), "nothing left behind: {keys:?}");
        assert!(s3.open_uploads().is_empty(), "uploads aborted: {:?}", s3.open_uploads());
        let left: Vec<String> = std::fs::read_dir(spill.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        assert!(!left.iter().any(|n| n.starts_with(&own)), "its spill folder is removed: {left:?}");
        assert!(!left.iter().any(|n| n.contains("stale")), "the stale folder is removed: {left:?}");
    }
    assert!(live.exists(), "a live process's spill folder is left alone");
}

// ---------------------------------------------------------------------------
// Partition values

/// An export whose items carry `place` values that need escaping.
fn export_with_places(places: &[Option<&str>]) -> TestExport {
    let e = export_with(GenerateOptions { items: 50, files: 1, empty_files: 0, ..Default::default() });
    let file = biggest_data_file(&e.generated.full_export_dir);
    let mut lines = String::new();
    for (i, p) in places.iter().enumerate() {
        let place = match p {
            Some(v) => format!(",\"place\":{{\"S\":{}}}", serde_json::to_string(v).unwrap()),
            None => String::new(),
        };
        lines.push_str(&format!("{{\"Item\":{{\"orderId\":{{\"S\":\"o{i}\"}}{place}}}}}\n"));
    }
    rewrite_data_file(&e.generated.full_export_dir, &file, &lines);
    e
}

#[test]
fn partition_values_round_trip_exactly_and_nulls_read_as_null() {
    let values = [
        "2024-01-01T10:00:00Z",
        "50% off",
        "a/b",
        "x=y",
        "back\\slash",
        "new\nline",
        "nul\u{0}byte",
        "%2F literal",
        "quote\"hash#star*",
        "San José",
        "__HIVE_DEFAULT_PARTITION__ look-alike",
    ];
    let mut places: Vec<Option<&str>> = values.iter().map(|v| Some(*v)).collect();
    places.push(None);
    let e = export_with_places(&places);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("ds");
    let d = dest.to_str().unwrap();
    let o = dl(&["convert", e.generated.full_export_dir.to_str().unwrap(), d, "-p", "place"]);
    assert_code(&o, 0);
    // Escaped once: `:` is %3A on disk, never %253A.
    let dirs: Vec<String> =
        std::fs::read_dir(&dest).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
    assert!(dirs.iter().any(|n| n == "place=2024-01-01T10%3A00%3A00Z"), "{dirs:?}");
    assert!(!dirs.iter().any(|n| n.contains("%253A") || n.contains("%2525")), "escaped once: {dirs:?}");
    // Every value reads back as it was, and the missing one as NULL.
    let o =
        dl(&["sql", &format!("t={d}"), "-e", "SELECT order_id, place FROM t ORDER BY order_id", "--format", "json"]);
    assert_code(&o, 0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(rows.len(), places.len(), "{}", stdout(&o));
    for (i, p) in places.iter().enumerate() {
        let row = rows.iter().find(|r| r["order_id"] == format!("o{i}")).unwrap();
        match p {
            Some(v) => assert_eq!(row["place"].as_str(), Some(*v), "{row}"),
            None => assert!(row.get("place").is_none_or(|v| v.is_null()), "null reads back as NULL: {row}"),
        }
    }
    let nulls = sql_rows(&[&format!("t={d}"), "-e", "SELECT count(*) FROM t WHERE place IS NULL"]);
    assert_eq!(nulls, vec!["1"]);
    let pruned = sql_rows(&[&format!("t={d}"), "-e", "SELECT count(*) FROM t WHERE place = 'a/b'"]);
    assert_eq!(pruned, vec!["1"]);

    // A value too long for a directory name: refused, naming the item's file and line.
    let long = "L".repeat(300);
    let e = export_with_places(&[Some("short"), Some("fine"), Some(&long)]);
    let o = dl(&[
        "convert",
        e.generated.full_export_dir.to_str().unwrap(),
        out.path().join("long").to_str().unwrap(),
        "-p",
        "place",
    ]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains(".json.gz:3") && stderr(&o).contains("place"), "{}", stderr(&o));
    assert!(!out.path().join("long/_SUCCESS").exists());
}

// ---------------------------------------------------------------------------
// Hostile input

#[test]
fn a_line_without_end_is_refused_by_every_command_naming_its_file_and_line() {
    let e = export_with(GenerateOptions { items: 20, files: 1, empty_files: 0, ..Default::default() });
    let dir = &e.generated.full_export_dir;
    let file = biggest_data_file(dir);
    let good = read_lines(&file);
    let first: String = good.lines().take(2).map(|l| format!("{l}\n")).collect();
    let hostile = format!("{first}{{\"Item\":{{\"x\":{{\"S\":\"{}", "A".repeat(3 << 20));
    rewrite_data_file(dir, &file, &hostile);
    let src = dir.to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    let limit = ["--max-line-bytes", "1000000"];
    let dest = out.path().join("ds");
    for args in [
        vec!["schema", src],
        vec!["convert", src, dest.to_str().unwrap()],
        vec!["sql", src, "-e", "SELECT count(*) FROM orders"],
        vec!["ddl", src],
    ] {
        let mut a = args.clone();
        a.extend_from_slice(&limit);
        let o = dl(&a);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(".json.gz:3") && stderr(&o).contains("longer than"), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn very_many_attributes_are_capped_into_the_catch_all_counted() {
    let e = export_with(GenerateOptions { items: 10, files: 1, empty_files: 0, ..Default::default() });
    let dir = &e.generated.full_export_dir;
    let file = biggest_data_file(dir);
    let mut lines = String::new();
    for i in 0..3 {
        let attrs: Vec<String> = (0..3000).map(|a| format!("\"a{a:05}\":{{\"N\":\"{}\"}}", a + i)).collect();
        lines.push_str(&format!("{{\"Item\":{{\"orderId\":{{\"S\":\"o{i}\"}},{}}}}}\n", attrs.join(",")));
    }
    rewrite_data_file(dir, &file, &lines);
    let src = dir.to_str().unwrap();
    let o = dl(&["schema", src, "--json", "--max-columns", "100"]);
    assert_code(&o, 0);
    let schema: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let cols = schema["columns"].as_array().or(schema["fields"].as_array()).unwrap();
    assert_eq!(cols.len(), 100, "capped at --max-columns");
    assert!(stderr(&o).contains("beyond --max-columns"), "{}", stderr(&o));
    let out = tempfile::tempdir().unwrap();
    let o = dl(&["convert", src, out.path().join("ds").to_str().unwrap(), "--max-columns", "100", "--json"]);
    assert_code(&o, 0);
    let s: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(s["extra_values"].as_u64(), Some(3 * 2901), "every value beyond the cap is kept in _extra and counted");
    let batches = read_parquet_dir(&out.path().join("ds"));
    let extra = batches[0].column_by_name("_extra").unwrap();
    let text = arrow::array::AsArray::as_string::<i32>(extra.as_ref()).value(0).to_string();
    assert!(text.contains("\"a02999\":{\"N\":\"2999\"}"), "{}", &text[..200.min(text.len())]);
}

#[test]
fn schema_and_ddl_say_what_they_could_not_read() {
    let e = export_with(GenerateOptions { items: 10, files: 1, empty_files: 0, ..Default::default() });
    let dir = &e.generated.full_export_dir;
    let file = biggest_data_file(dir);
    let lines = "{\"Item\":{\"id\":{\"S\":\"a\"},\"n\":{\"N\":\"1\"}}}\n\
                 {\"Item\":{\"id\":{\"S\":\"b\"},\"n\":{\"N\":\"2\"}}}\n\
                 {\"Item\":{\"id\":{\"S\":\"c\"},\"n\":{\"S\":\"text\"},\"only_here\":{\"S\":\"x\"},\"bad\":{\"N\":\"1.2.3\"}}}\n";
    rewrite_data_file(dir, &file, lines);
    let src = dir.to_str().unwrap();
    let o = dl(&["schema", src, "--json"]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains(".json.gz:3") && stderr(&o).contains("bad"), "{}", stderr(&o));
    let schema: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(schema["items"], 2, "the malformed line is not counted");
    let text = schema.to_string();
    assert!(!text.contains("only_here"), "the rejected line does not shape the schema: {text}");
    assert!(text.contains("bigint"), "`n` stays a number: {text}");

    // A data file missing: every command fails.
    std::fs::remove_file(&file).unwrap();
    for args in [vec!["schema", src], vec!["ddl", src], vec!["inspect", src, "--verify"]] {
        let o = dl(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}{}", stdout(&o), stderr(&o));
        assert!(format!("{}{}", stdout(&o), stderr(&o)).contains("missing"), "{args:?}");
    }
}

#[test]
fn verify_reports_forty_thousand_missing_files() {
    let e = export_with(GenerateOptions { items: 10, files: 1, empty_files: 0, ..Default::default() });
    let dir = &e.generated.full_export_dir;
    let mf = dir.join("manifest-files.json");
    let first = std::fs::read_to_string(&mf).unwrap().lines().next().unwrap().to_string();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    let key = v["dataFileS3Key"].as_str().unwrap().to_string();
    let mut out = String::new();
    for i in 0..40_000 {
        let mut w = v.clone();
        w["dataFileS3Key"] = key.replace(".json.gz", &format!("x{i}.json.gz")).into();
        out.push_str(&w.to_string());
        out.push('\n');
    }
    std::fs::write(&mf, out).unwrap();
    let o = dl(&["inspect", dir.to_str().unwrap(), "--verify", "--json"]);
    assert_code(&o, 1);
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let problems = r.to_string().matches("data file is missing").count();
    assert!(problems >= 40_000, "{problems}");
}

// ---------------------------------------------------------------------------
// Secrets

#[test]
fn credentials_never_appear_in_any_output() {
    let s3 = S3Server::start();
    let e = small_export();
    s3.upload_dir(e.dir.path(), BUCKET, "");
    let src = format!("s3://{BUCKET}/");
    let token = "FwoGZXIvYXdzEXAMPLE-session-token-0123456789";
    let mut env = s3.env();
    env.push(("AWS_SESSION_TOKEN", token.into()));
    let mut bad = env.clone();
    bad.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    bad.push(("AWS_SECRET_ACCESS_KEY", format!("{SECRET_KEY}-wrong")));
    let runs = [
        (vec!["inspect", &src, "--verify", "--json"], &env),
        (vec!["convert", &src, "s3://lake/sec", "--json"], &env),
        (vec!["convert", &src, "s3://lake/sec", "--json"], &env),
        (vec!["convert", &src, "s3://lake/sec2"], &bad),
        (vec!["convert", &src, "s3://lake/sec2", "--json"], &bad),
        (vec!["sql", "t=s3://lake/sec", "-e", "SELECT count(*) FROM t"], &env),
        (vec!["ddl", "s3://lake/sec"], &env),
        (vec!["schema", &src], &bad),
    ];
    let mut seen = String::new();
    for (args, env) in runs {
        let o = dynolake(&args, env);
        seen.push_str(&stdout(&o));
        seen.push_str(&stderr(&o));
    }
    for k in s3.list("lake", "") {
        seen.push_str(&String::from_utf8_lossy(&s3.get("lake", &k)));
    }
    assert!(seen.contains("error"), "the bad credentials failed somewhere: {seen}");
    for secret in [SECRET_KEY, token] {
        assert!(!seen.contains(secret), "`{secret}` leaked");
    }
}

#[test]
fn an_empty_set_is_kept_as_an_empty_set() {
    // DynamoDB never writes one; hand-made files do. Documented in schemas/README.md.
    let e = export_with(GenerateOptions { items: 10, files: 1, empty_files: 0, ..Default::default() });
    let dir = &e.generated.full_export_dir;
    let file = biggest_data_file(dir);
    let lines = "{\"Item\":{\"id\":{\"S\":\"a\"},\"tags\":{\"SS\":[]}}}\n{\"Item\":{\"id\":{\"S\":\"b\"},\"tags\":{\"SS\":[\"x\",\"y\"]}}}\n";
    rewrite_data_file(dir, &file, lines);
    let out = tempfile::tempdir().unwrap();
    let o = dl(&["convert", dir.to_str().unwrap(), out.path().join("ds").to_str().unwrap(), "--json"]);
    assert_code(&o, 0);
    let s: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(s["rejected"], 0);
    assert_eq!(s["extra_values"], 0);
    let batches = read_parquet_dir(&out.path().join("ds"));
    let b = &batches[0];
    let ids = arrow::array::AsArray::as_string::<i32>(b.column_by_name("id").unwrap().as_ref());
    let tags = arrow::array::AsArray::as_list::<i32>(b.column_by_name("tags").unwrap().as_ref());
    let field = b.schema().field_with_name("tags").unwrap().clone();
    assert!(field.metadata().values().any(|v| v.contains("set")), "a set: {:?}", field.metadata());
    for r in 0..b.num_rows() {
        let n = if ids.value(r) == "a" { 0 } else { 2 };
        assert!(!arrow::array::Array::is_null(tags, r), "an empty set is not null");
        assert_eq!(tags.value(r).len(), n);
    }
}
