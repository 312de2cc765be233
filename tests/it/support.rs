//! Test support: a real S3 server on 127.0.0.1 (s3s-fs, in process, with
//! access-key checking on), generated exports, and running the binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use dynolake::generate::{GenerateOptions, Generated, generate};
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

pub const ACCESS_KEY: &str = "dynolake-test-key";
pub const SECRET_KEY: &str = "dynolake-test-secret";
pub const BUCKET: &str = "exports";

/// Faults to inject: the `nth` (1-based) and following requests of an
/// operation (`put_object`, `get_object`, `upload_part`, …) fail with
/// `kind`, `times` times in all. Requests are counted per operation.
#[derive(Debug, Clone)]
pub struct Fault {
    pub op: &'static str,
    pub nth: u64,
    pub times: u64,
    pub kind: FaultKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultKind {
    /// 503 SlowDown, as S3 answers when throttling.
    SlowDown,
    /// 500 InternalError.
    Internal,
    /// The request waits this long first (a slow server).
    Slow(std::time::Duration),
}

/// What the fault layer did, for assertions.
#[derive(Debug, Default)]
pub struct FaultLog {
    pub seen: std::sync::Mutex<std::collections::HashMap<&'static str, u64>>,
    pub injected: std::sync::atomic::AtomicU64,
}

/// s3s-fs behind a layer that makes conditional creates atomic (s3s-fs
/// checks `If-None-Match` and then writes, so two racing creates can both
/// succeed; S3 itself does not allow that) and injects scripted faults.
struct Layer {
    fs: s3s_fs::FileSystem,
    create: tokio::sync::Mutex<()>,
    faults: Vec<Fault>,
    log: Arc<FaultLog>,
}

impl Layer {
    async fn gate(&self, op: &'static str) -> s3s::S3Result<()> {
        let n = {
            let mut seen = self.log.seen.lock().unwrap();
            let n = seen.entry(op).or_default();
            *n += 1;
            *n
        };
        for f in self.faults.iter().filter(|f| f.op == op && n >= f.nth && n < f.nth + f.times) {
            self.log.injected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match f.kind {
                FaultKind::SlowDown => return Err(s3s::s3_error!(SlowDown, "injected")),
                FaultKind::Internal => return Err(s3s::s3_error!(InternalError, "injected")),
                FaultKind::Slow(d) => tokio::time::sleep(d).await,
            }
        }
        Ok(())
    }
}

/// The `S3` impl: the listed operations pass through the fault gate to
/// s3s-fs; creating objects is serialised (see [`Layer`]). One macro emits
/// the whole impl so that `async_trait` sees every method.
macro_rules! s3_layer {
    ($($name:ident($input:ty) -> $output:ty;)*) => {
        #[async_trait::async_trait]
        impl s3s::S3 for Layer {
            $(
                async fn $name(&self, req: s3s::S3Request<$input>) -> s3s::S3Result<s3s::S3Response<$output>> {
                    self.gate(stringify!($name)).await?;
                    self.fs.$name(req).await
                }
            )*

            async fn put_object(
                &self,
                req: s3s::S3Request<s3s::dto::PutObjectInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::PutObjectOutput>> {
                self.gate("put_object").await?;
                let _one_at_a_time = match req.input.if_none_match.is_some() {
                    true => Some(self.create.lock().await),
                    false => None,
                };
                self.fs.put_object(req).await
            }

            async fn complete_multipart_upload(
                &self,
                req: s3s::S3Request<s3s::dto::CompleteMultipartUploadInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::CompleteMultipartUploadOutput>> {
                self.gate("complete_multipart_upload").await?;
                let _one_at_a_time = self.create.lock().await;
                self.fs.complete_multipart_upload(req).await
            }
        }
    };
}

s3_layer! {
    get_object(s3s::dto::GetObjectInput) -> s3s::dto::GetObjectOutput;
    head_object(s3s::dto::HeadObjectInput) -> s3s::dto::HeadObjectOutput;
    head_bucket(s3s::dto::HeadBucketInput) -> s3s::dto::HeadBucketOutput;
    list_objects(s3s::dto::ListObjectsInput) -> s3s::dto::ListObjectsOutput;
    list_objects_v2(s3s::dto::ListObjectsV2Input) -> s3s::dto::ListObjectsV2Output;
    delete_object(s3s::dto::DeleteObjectInput) -> s3s::dto::DeleteObjectOutput;
    delete_objects(s3s::dto::DeleteObjectsInput) -> s3s::dto::DeleteObjectsOutput;
    copy_object(s3s::dto::CopyObjectInput) -> s3s::dto::CopyObjectOutput;
    create_multipart_upload(s3s::dto::CreateMultipartUploadInput) -> s3s::dto::CreateMultipartUploadOutput;
    upload_part(s3s::dto::UploadPartInput) -> s3s::dto::UploadPartOutput;
    abort_multipart_upload(s3s::dto::AbortMultipartUploadInput) -> s3s::dto::AbortMultipartUploadOutput;
}

/// An S3 server over HTTP on a free loopback port, stopped on drop.
pub struct S3Server {
    pub addr: SocketAddr,
    /// Where the server keeps its buckets; removed on drop.
    root: tempfile::TempDir,
    pub log: Arc<FaultLog>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl S3Server {
    pub fn start() -> S3Server {
        S3Server::start_with(Vec::new())
    }

    /// A server that injects `faults`.
    pub fn start_with(faults: Vec<Fault>) -> S3Server {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        use hyper_util::server::conn::auto::Builder as ConnBuilder;
        use s3s::auth::SimpleAuth;
        use s3s::service::S3ServiceBuilder;

        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(root.path().join(BUCKET)).unwrap();
        std::fs::create_dir_all(root.path().join("lake")).unwrap();
        let fs = s3s_fs::FileSystem::new(root.path()).expect(
            "starting the s3s-fs test server failed; it is a dev-dependency (cargo test builds it), \
             nothing to install",
        );
        let log = Arc::new(FaultLog::default());
        let layer = Layer { fs, create: tokio::sync::Mutex::new(()), faults, log: log.clone() };
        let mut b = S3ServiceBuilder::new(layer);
        b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = b.build();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let http = ConnBuilder::new(TokioExecutor::new());
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((socket, _)) = accepted else { continue };
                            let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
                            tokio::spawn(async move { let _ = conn.await; });
                        }
                        _ = &mut stop_rx => break,
                    }
                }
            });
        });
        let addr = addr_rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the S3 test server did not start");
        S3Server { addr, root, log, stop: Some(stop_tx), thread: Some(thread) }
    }

    /// Multipart uploads started and neither completed nor aborted (s3s-fs
    /// keeps their parts as `.upload_id-*` files in its root).
    pub fn open_uploads(&self) -> Vec<String> {
        std::fs::read_dir(self.root.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".upload_id-") || n.contains(".upload-"))
            .collect()
    }

    /// Requests the server saw for one operation.
    pub fn requests(&self, op: &str) -> u64 {
        self.log.seen.lock().unwrap().get(op).copied().unwrap_or(0)
    }

    /// The folder holding the server's buckets (`root/bucket/key`).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The environment a user would set to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    pub fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(self.endpoint())
                .with_allow_http(true)
                .with_bucket_name(bucket)
                .with_region("us-east-1")
                .with_access_key_id(ACCESS_KEY)
                .with_secret_access_key(SECRET_KEY)
                .build()
                .unwrap(),
        )
    }

    /// Upload every file below `local` to `bucket/prefix/…` over HTTP.
    pub fn upload_dir(&self, local: &Path, bucket: &str, prefix: &str) {
        let store = self.store(bucket);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for f in walk(local) {
            let rel = f.strip_prefix(local).unwrap().to_string_lossy().replace('\\', "/");
            let key = if prefix.is_empty() { rel } else { format!("{}/{rel}", prefix.trim_end_matches('/')) };
            let bytes = std::fs::read(&f).unwrap();
            rt.block_on(store.put(&object_store::path::Path::from(key), PutPayload::from(bytes))).unwrap();
        }
    }

    /// Every key in a bucket below `prefix`.
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        use futures::TryStreamExt;
        let store = self.store(bucket);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let p = object_store::path::Path::from(prefix);
        let mut keys: Vec<String> =
            rt.block_on(store.list(Some(&p)).map_ok(|m| m.location.to_string()).try_collect()).unwrap();
        keys.sort();
        keys
    }

    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let store = self.store(bucket);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            store.get(&object_store::path::Path::from(key)).await.unwrap().bytes().await.unwrap().to_vec()
        })
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out.sort();
    out
}

/// A generated export in a fresh temp dir.
pub struct TestExport {
    pub dir: tempfile::TempDir,
    pub generated: Generated,
}

pub fn export_with(opts: GenerateOptions) -> TestExport {
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), &opts).unwrap();
    TestExport { dir, generated }
}

pub fn small_export() -> TestExport {
    export_with(GenerateOptions { items: 500, files: 3, ..Default::default() })
}

/// Run the dynolake binary.
/// Each run gets an empty schema cache of its own unless `env` names one
/// (`DYNOLAKE_CACHE_DIR`): what a test exercises never depends on what ran before.
pub fn dynolake(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dynolake"));
    c.args(args);
    let cache = tempfile::tempdir().unwrap();
    c.env("DYNOLAKE_CACHE_DIR", cache.path());
    for (k, v) in env {
        c.env(k, v);
    }
    c.env_remove("AWS_PROFILE");
    c.output().expect("run dynolake")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert an exit code, showing the output when it differs.
#[track_caller]
pub fn assert_code(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "stdout:\n{}\nstderr:\n{}", stdout(o), stderr(o));
}

/// The one data file of a generated export with the most items, for corruption tests.
pub fn biggest_data_file(export_dir: &Path) -> PathBuf {
    let mut files = walk(&export_dir.join("data"));
    files.sort_by_key(|f| std::fs::metadata(f).unwrap().len());
    files.pop().unwrap()
}

/// Replace the lines of one data file and fix the manifest (MD5, counts) to match.
pub fn rewrite_data_file(export_dir: &Path, file: &Path, lines: &str) {
    use base64::Engine;
    use md5::Digest;
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(lines.as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    std::fs::write(file, &gz).unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(b));
    let name = file.file_name().unwrap().to_str().unwrap();
    let count = lines.lines().count() as u64;
    let mf = export_dir.join("manifest-files.json");
    let mut total = 0u64;
    let mut out = String::new();
    for l in std::fs::read_to_string(&mf).unwrap().lines() {
        let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v["dataFileS3Key"].as_str().unwrap().ends_with(name) {
            v["itemCount"] = count.into();
            v["md5Checksum"] = b64(&gz).into();
        }
        total += v["itemCount"].as_u64().unwrap();
        out.push_str(&serde_json::to_string(&v).unwrap());
        out.push('\n');
    }
    std::fs::write(&mf, &out).unwrap();
    std::fs::write(export_dir.join("manifest-files.md5"), b64(out.as_bytes())).unwrap();
    let sp = export_dir.join("manifest-summary.json");
    let mut s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&sp).unwrap()).unwrap();
    s["itemCount"] = total.into();
    let st = serde_json::to_string(&s).unwrap();
    std::fs::write(&sp, &st).unwrap();
    std::fs::write(export_dir.join("manifest-summary.md5"), b64(st.as_bytes())).unwrap();
}

/// The decompressed lines of a data file.
pub fn read_lines(file: &Path) -> String {
    use std::io::Read;
    let mut s = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(file).unwrap()).read_to_string(&mut s).unwrap();
    s
}

/// Every item of an export, by `orderId`, read independently with serde_dynamo.
pub fn source_items(
    export_dir: &Path,
) -> std::collections::HashMap<String, std::collections::HashMap<String, serde_dynamo::AttributeValue>> {
    let mut out = std::collections::HashMap::new();
    for f in walk(&export_dir.join("data")) {
        for line in read_lines(&f).lines() {
            let v: std::collections::HashMap<String, std::collections::HashMap<String, serde_dynamo::AttributeValue>> =
                serde_json::from_str(line).unwrap();
            let item = v.into_iter().next().unwrap().1;
            let serde_dynamo::AttributeValue::S(id) = &item["orderId"] else { panic!("orderId") };
            out.insert(id.clone(), item);
        }
    }
    out
}

/// Every row of the Parquet files below `dir` (skipping `_`-prefixed paths).
pub fn read_parquet_dir(dir: &Path) -> Vec<arrow::array::RecordBatch> {
    let mut out = Vec::new();
    for f in walk(dir) {
        let rel = f.strip_prefix(dir).unwrap().to_string_lossy().to_string();
        if rel.split('/').any(|p| p.starts_with('_')) || !rel.ends_with(".parquet") {
            continue;
        }
        let file = std::fs::File::open(&f).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
        for b in reader {
            out.push(b.unwrap());
        }
    }
    out
}

/// Copy a folder tree.
pub fn copy_tree(from: &Path, to: &Path) {
    for f in walk(from) {
        let dest = to.join(f.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap();
    }
}

/// A TCP proxy on 127.0.0.1 in front of a server that cuts connections: a
/// connection that has carried `after` bytes of the server's answers is
/// closed under the client (a response cut mid-body), `cuts` times in all.
/// Stopped on drop.
pub struct CuttingProxy {
    pub addr: SocketAddr,
    pub cut: Arc<std::sync::atomic::AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CuttingProxy {
    pub fn start(upstream: SocketAddr, cuts: u64, after: u64) -> CuttingProxy {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let cut = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let counter = cut.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let left = Arc::new(std::sync::atomic::AtomicU64::new(cuts));
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((client, _)) = accepted else { continue };
                            let (counter, left) = (counter.clone(), left.clone());
                            tokio::spawn(async move {
                                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else { return };
                                let (mut cr, mut cw) = client.into_split();
                                let (mut sr, mut sw) = server.into_split();
                                let up = tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
                                let mut sent = 0u64;
                                let mut buf = vec![0u8; 16 << 10];
                                let mut limit = Some(after);
                                loop {
                                    let want = limit.map_or(buf.len() as u64, |l| (l - sent).min(buf.len() as u64));
                                    if want == 0 {
                                        let cut = left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
                                        if cut.is_ok() {
                                            counter.fetch_add(1, Ordering::Relaxed);
                                            break; // cut: drop both sides mid-stream
                                        }
                                        limit = None;
                                        continue;
                                    }
                                    match sr.read(&mut buf[..want as usize]).await {
                                        Ok(0) | Err(_) => break,
                                        Ok(k) => {
                                            if cw.write_all(&buf[..k]).await.is_err() {
                                                break;
                                            }
                                            sent += k as u64;
                                        }
                                    }
                                }
                                up.abort();
                            });
                        }
                        _ = &mut stop_rx => break,
                    }
                }
            });
        });
        let addr = addr_rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the proxy did not start");
        CuttingProxy { addr, cut, stop: Some(stop_tx), thread: Some(thread) }
    }

    /// The S3 server's environment, pointed at this proxy.
    pub fn env(&self, s3: &S3Server) -> Vec<(&'static str, String)> {
        let mut env = s3.env();
        for (k, v) in env.iter_mut() {
            if *k == "AWS_ENDPOINT_URL" {
                *v = format!("http://{}", self.addr);
            }
        }
        env
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Two batches with the same fields and, column by column, the same values.
#[track_caller]
pub fn assert_same_columns(want: &arrow::array::RecordBatch, got: &arrow::array::RecordBatch) {
    assert_eq!(want.schema().fields(), got.schema().fields());
    for (i, f) in want.schema().fields().iter().enumerate() {
        assert_eq!(want.column(i), got.column(i), "column {}", f.name());
    }
}

/// `items` written as a full export (with `opts`' format and table) and converted with `schema` (a
/// schema file's JSON), below `dir`: the dataset a test's result must equal. Returns its folder.
pub fn converted_items(
    items: Vec<dynolake::ddb::value::Item>,
    opts: GenerateOptions,
    schema: &serde_json::Value,
    dir: &Path,
) -> PathBuf {
    let schema_file = dir.join("schema.json");
    std::fs::write(&schema_file, schema.to_string()).unwrap();
    let opts = GenerateOptions {
        items: items.len() as u64,
        files: 1,
        items_from: Some(Arc::new(items)),
        prefix: None,
        ..opts
    };
    let expected = dir.join("expected");
    generate(&expected, &opts).unwrap();
    let out = dir.join("out");
    let o = dynolake(
        &[
            "convert",
            &expected.display().to_string(),
            &out.display().to_string(),
            "--schema",
            &schema_file.display().to_string(),
        ],
        &[],
    );
    assert_code(&o, 0);
    out
}
