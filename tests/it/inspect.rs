//! `inspect` and `--verify`, on local disk and through the S3 test server.

use dynolake::generate::GenerateOptions;

use crate::support::*;

fn verify_local(dir: &std::path::Path) -> std::process::Output {
    dynolake(&["inspect", dir.to_str().unwrap(), "--verify"], &[])
}

#[test]
fn a_generated_export_verifies_locally_and_json_says_so() {
    let e = small_export();
    let dir = e.generated.full_export_dir.to_str().unwrap();
    let o = dynolake(&["inspect", dir, "--verify", "--json"], &[]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["table"], "Orders");
    assert_eq!(v["item_count"], 500);
    assert_eq!(v["files"], 4);
    assert_eq!(v["empty_files"], 1);
    assert_eq!(v["verify"]["lines"], 500);
    assert_eq!(v["ok"], true);
    // The summary file itself is a valid location too.
    let o = dynolake(&["inspect", &format!("{dir}/manifest-summary.json")], &[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("Items        500"), "{}", stdout(&o));
}

#[test]
fn a_prefix_with_several_exports_lists_them_and_in_progress_ones() {
    let e = export_with(GenerateOptions { items: 100, files: 2, incremental: true, ..Default::default() });
    // An export that has started but not finished.
    let started = e.generated.root.join("AWSDynamoDB/01999999999999-deadbeef");
    std::fs::create_dir_all(&started).unwrap();
    std::fs::write(started.join("_started"), b"").unwrap();
    let o = dynolake(&["inspect", e.dir.path().to_str().unwrap()], &[]);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("INCREMENTAL"), "{out}");
    assert!(out.contains("FULL"), "{out}");
    assert!(out.contains("IN PROGRESS"), "{out}");
    // Choosing the in-progress export is an error, not a read.
    let o = dynolake(&["inspect", e.dir.path().to_str().unwrap(), "--export-id", "01999999999999-deadbeef"], &[]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("in progress"), "{}", stderr(&o));
    // Choosing the incremental export reads its manifests (shared data folder).
    let inc = e.generated.incremental_export_id.clone().unwrap();
    let o = dynolake(&["inspect", e.dir.path().to_str().unwrap(), "--export-id", &inc, "--verify", "--json"], &[]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["type"], "INCREMENTAL_EXPORT");
    assert_eq!(v["view"], "NEW_AND_OLD_IMAGES");
}

#[test]
fn a_corrupted_byte_is_caught_and_named() {
    let e = small_export();
    let f = biggest_data_file(&e.generated.full_export_dir);
    let mut bytes = std::fs::read(&f).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&f, bytes).unwrap();
    let o = verify_local(&e.generated.full_export_dir);
    assert_code(&o, 1);
    let name = f.file_name().unwrap().to_str().unwrap();
    assert!(stdout(&o).contains(name), "{}", stdout(&o));
}

#[test]
fn a_truncated_file_is_caught() {
    let e = small_export();
    let f = biggest_data_file(&e.generated.full_export_dir);
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let o = verify_local(&e.generated.full_export_dir);
    assert_code(&o, 1);
    assert!(stdout(&o).contains(f.file_name().unwrap().to_str().unwrap()), "{}", stdout(&o));
}

#[test]
fn an_item_count_mismatch_names_both_values() {
    let e = small_export();
    let mf = e.generated.full_export_dir.join("manifest-files.json");
    let text = std::fs::read_to_string(&mf).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let n = first["itemCount"].as_u64().unwrap();
    let changed = text.replacen(&format!("\"itemCount\":{n},"), &format!("\"itemCount\":{},", n + 1), 1);
    std::fs::write(&mf, &changed).unwrap();
    // Keep the manifest's own checksum right, so only the count is wrong.
    use base64::Engine;
    use md5::Digest;
    let sum = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(changed.as_bytes()));
    std::fs::write(e.generated.full_export_dir.join("manifest-files.md5"), sum).unwrap();
    let o = verify_local(&e.generated.full_export_dir);
    assert_code(&o, 1);
    let out = stdout(&o);
    assert!(out.contains(&format!("manifest says {}, the file has {n} lines", n + 1)), "{out}");
}

#[test]
fn a_missing_file_and_a_bad_manifest_checksum_are_reported() {
    let e = small_export();
    let f = biggest_data_file(&e.generated.full_export_dir);
    std::fs::remove_file(&f).unwrap();
    let o = verify_local(&e.generated.full_export_dir);
    assert_code(&o, 1);
    assert!(stdout(&o).contains("data file is missing"), "{}", stdout(&o));

    let e = small_export();
    std::fs::write(e.generated.full_export_dir.join("manifest-files.md5"), "AAAAAAAAAAAAAAAAAAAAAA==").unwrap();
    let o = verify_local(&e.generated.full_export_dir);
    assert_code(&o, 1);
    assert!(stdout(&o).contains("checksum mismatch"), "{}", stdout(&o));
}

#[test]
fn a_manifest_pointing_outside_the_export_is_refused() {
    let e = small_export();
    let mf = e.generated.full_export_dir.join("manifest-files.json");
    let text = std::fs::read_to_string(&mf).unwrap();
    let bad = text.replacen("AWSDynamoDB/", "AWSDynamoDB/../../etc/", 1);
    std::fs::write(&mf, bad).unwrap();
    let o = verify_local(&e.generated.full_export_dir);
    assert_code(&o, 1);
    assert!(stderr(&o).contains(".."), "{}", stderr(&o));
}

#[test]
fn checksum_files_may_be_named_checksum() {
    let e = small_export();
    let d = &e.generated.full_export_dir;
    for stem in ["manifest-files", "manifest-summary"] {
        std::fs::rename(d.join(format!("{stem}.md5")), d.join(format!("{stem}.checksum"))).unwrap();
    }
    assert_code(&verify_local(d), 0);
}

#[test]
fn inspect_and_verify_through_s3() {
    let s3 = S3Server::start();
    let e = export_with(GenerateOptions {
        items: 300,
        files: 2,
        prefix: Some("backups/orders".into()),
        incremental: true,
        ..Default::default()
    });
    s3.upload_dir(e.dir.path(), BUCKET, "");
    let id = &e.generated.full_export_id;
    // A prefix with two exports: listed.
    let o = dynolake(&["inspect", &format!("s3://{BUCKET}/backups/orders/")], &s3.env());
    assert_code(&o, 0);
    assert!(stdout(&o).contains(id.as_str()), "{}", stdout(&o));
    // The full export, verified over HTTP.
    let url = format!("s3://{BUCKET}/backups/orders/AWSDynamoDB/{id}/");
    let o = dynolake(&["inspect", &url, "--verify", "--json"], &s3.env());
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["verify"]["lines"], 300);

    // Wrong credentials are refused by the server.
    let mut env = s3.env();
    env.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    env.push(("AWS_SECRET_ACCESS_KEY", "wrong".into()));
    let o = dynolake(&["inspect", &url], &env);
    assert_ne!(o.status.code(), Some(0));

    // A corrupted data file on S3.
    let f = biggest_data_file(&e.generated.full_export_dir);
    let mut bytes = std::fs::read(&f).unwrap();
    let n = bytes.len();
    bytes[n / 3] ^= 0x01;
    let key = format!("backups/orders/AWSDynamoDB/{id}/data/{}", f.file_name().unwrap().to_str().unwrap());
    let store = s3.store(BUCKET);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    use object_store::ObjectStoreExt;
    rt.block_on(store.put(&object_store::path::Path::from(key.clone()), bytes.into())).unwrap();
    let o = dynolake(&["inspect", &url, "--verify"], &s3.env());
    assert_code(&o, 1);
    assert!(stdout(&o).contains(&key), "{}", stdout(&o));

    // An export in progress on S3.
    rt.block_on(store.put(
        &object_store::path::Path::from("backups/orders/AWSDynamoDB/01999999999999-00000000/_started"),
        vec![].into(),
    ))
    .unwrap();
    let o = dynolake(
        &["inspect", &format!("s3://{BUCKET}/backups/orders/AWSDynamoDB/01999999999999-00000000/")],
        &s3.env(),
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("in progress"), "{}", stderr(&o));
}

#[test]
fn a_location_without_an_export_says_what_it_found() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("notes.txt"), "hi").unwrap();
    let o = dynolake(&["inspect", d.path().to_str().unwrap()], &[]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("notes.txt"), "{}", stderr(&o));
}

#[test]
fn truncated_missing_and_escaping_files_are_caught_on_s3_too() {
    let s3 = S3Server::start();
    let e = export_with(GenerateOptions { items: 200, files: 2, ..Default::default() });
    let id = e.generated.full_export_id.clone();
    let f = biggest_data_file(&e.generated.full_export_dir);
    let name = f.file_name().unwrap().to_str().unwrap().to_string();
    let url = |p: &str| format!("s3://{BUCKET}/{p}/AWSDynamoDB/{id}/");

    // Truncated.
    let bytes = std::fs::read(&f).unwrap();
    let trunc = tempfile::tempdir().unwrap();
    copy_tree(e.dir.path(), trunc.path());
    std::fs::write(trunc.path().join(f.strip_prefix(e.dir.path()).unwrap()), &bytes[..bytes.len() / 2]).unwrap();
    s3.upload_dir(trunc.path(), BUCKET, "truncated");
    let o = dynolake(&["inspect", &url("truncated"), "--verify"], &s3.env());
    assert_code(&o, 1);
    assert!(stdout(&o).contains(&name), "{}", stdout(&o));

    // Missing.
    let missing = tempfile::tempdir().unwrap();
    copy_tree(e.dir.path(), missing.path());
    std::fs::remove_file(missing.path().join(f.strip_prefix(e.dir.path()).unwrap())).unwrap();
    s3.upload_dir(missing.path(), BUCKET, "missing");
    let o = dynolake(&["inspect", &url("missing"), "--verify"], &s3.env());
    assert_code(&o, 1);
    assert!(stdout(&o).contains("data file is missing"), "{}", stdout(&o));

    // A manifest that points outside the export.
    let outside = tempfile::tempdir().unwrap();
    copy_tree(e.dir.path(), outside.path());
    let mf = outside.path().join("AWSDynamoDB").join(&id).join("manifest-files.json");
    let text = std::fs::read_to_string(&mf).unwrap();
    std::fs::write(&mf, text.replacen("AWSDynamoDB/", "other/AWSDynamoDB/", 1)).unwrap();
    s3.upload_dir(outside.path(), BUCKET, "outside");
    let o = dynolake(&["inspect", &url("outside"), "--verify"], &s3.env());
    assert_code(&o, 1);
    assert!(stderr(&o).contains("outside the export"), "{}", stderr(&o));
}

#[test]
fn data_files_with_several_gzip_members_are_read_whole() {
    use std::io::Write;
    let e = export_with(GenerateOptions { items: 300, files: 1, empty_files: 0, ..Default::default() });
    let f = biggest_data_file(&e.generated.full_export_dir);
    let lines = read_lines(&f);
    let (a, b) = lines.split_at(lines.len() / 2);
    let cut = a.rfind('\n').unwrap() + 1;
    let (a, b) = (&lines[..cut], format!("{}{b}", &a[cut..]));
    let mut gz = Vec::new();
    for part in [a, b.as_str()] {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(part.as_bytes()).unwrap();
        gz.extend(enc.finish().unwrap());
    }
    // Write the two-member file, then fix the manifest's MD5 for it.
    rewrite_data_file(&e.generated.full_export_dir, &f, &lines);
    std::fs::write(&f, &gz).unwrap();
    let mf = e.generated.full_export_dir.join("manifest-files.json");
    use base64::Engine;
    use md5::Digest;
    let b64 = |x: &[u8]| base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(x));
    let mut v: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&mf).unwrap().trim()).unwrap();
    v["md5Checksum"] = b64(&gz).into();
    let text = format!("{}\n", serde_json::to_string(&v).unwrap());
    std::fs::write(&mf, &text).unwrap();
    std::fs::write(e.generated.full_export_dir.join("manifest-files.md5"), b64(text.as_bytes())).unwrap();
    let o = dynolake(&["inspect", e.generated.full_export_dir.to_str().unwrap(), "--verify", "--json"], &[]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["verify"]["lines"], 300);
}
