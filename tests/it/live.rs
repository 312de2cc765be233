//! Live tables against `moto_server` (PyPI `moto[server]`), a real DynamoDB
//! API on 127.0.0.1 started by each test: `scan`, `export`, `stream follow`.
//! Results are compared with a model of what the test wrote into the table:
//! its items as a generated export, converted with the same schema.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as A, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType,
};
use dynolake::ddb::value::{AttrValue as V, Item};
use dynolake::generate::{GenerateOptions, Rng, generate};

use super::merge::{last_record, sorted};
use super::support::*;

/// A moto server on a free port of 127.0.0.1, stopped on drop.
struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Moto {
    fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server ({e}): these tests need a local DynamoDB API. Install it with \
                     `pip install 'moto[server]'` (.ci/run does) and make sure moto_server is on PATH"
                )
            });
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut moto = Moto { child, addr };
        let began = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited at start ({status}); run `moto_server -p {port}` by hand to see why");
            }
            assert!(began.elapsed() < Duration::from_secs(30), "moto_server did not listen on {addr} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        env_for(&self.url())
    }

    fn client(&self) -> Client {
        client_for(&self.url())
    }

    /// A bucket in moto's S3 (the export calls check that it exists).
    fn create_bucket(&self, name: &str) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        write!(s, "PUT /{name} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", self.addr)
            .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "create bucket {name}: {answer}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env_for(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", url.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

fn client_for(url: &str) -> Client {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version_latest()
        .endpoint_url(url)
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "test"))
        .build();
    Client::from_conf(conf)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A table keyed `pk` (S) + `sk` (N), with a stream of both images when asked.
fn create_table(c: &Client, rt: &tokio::runtime::Runtime, name: &str, stream: bool) {
    let mut t = c
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().unwrap())
        .key_schema(KeySchemaElement::builder().attribute_name("sk").key_type(KeyType::Range).build().unwrap())
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("pk").attribute_type(ScalarAttributeType::S).build().unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("sk").attribute_type(ScalarAttributeType::N).build().unwrap(),
        );
    if stream {
        t = t.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .unwrap(),
        );
    }
    rt.block_on(t.send()).unwrap();
}

/// The test's own translation of an item to the SDK (independent of dynolake's).
fn sdk(v: &V) -> A {
    match v {
        V::S(s) => A::S(s.clone()),
        V::N(n) => A::N(n.clone()),
        V::B(b) => A::B(Blob::new(b.clone())),
        V::Bool(b) => A::Bool(*b),
        V::Null => A::Null(true),
        V::M(m) => A::M(m.iter().map(|(k, v)| (k.clone(), sdk(v))).collect()),
        V::L(l) => A::L(l.iter().map(sdk).collect()),
        V::SS(s) => A::Ss(s.clone()),
        V::NS(s) => A::Ns(s.clone()),
        V::BS(s) => A::Bs(s.iter().map(|b| Blob::new(b.clone())).collect()),
    }
}

fn put(c: &Client, rt: &tokio::runtime::Runtime, table: &str, item: &Item) {
    let m: HashMap<String, A> = item.iter().map(|(k, v)| (k.clone(), sdk(v))).collect();
    rt.block_on(c.put_item().table_name(table).set_item(Some(m)).send()).unwrap();
}

fn delete(c: &Client, rt: &tokio::runtime::Runtime, table: &str, k: &(String, i64)) {
    rt.block_on(c.delete_item().table_name(table).key("pk", A::S(k.0.clone())).key("sk", A::N(k.1.to_string())).send())
        .unwrap();
}

type Model = BTreeMap<(String, i64), Item>;

/// Many items at once (BatchWriteItem, 25 a request).
fn put_many(c: &Client, rt: &tokio::runtime::Runtime, table: &str, items: &[Item]) {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    for chunk in items.chunks(25) {
        let writes: Vec<WriteRequest> = chunk
            .iter()
            .map(|it| {
                let m: HashMap<String, A> = it.iter().map(|(k, v)| (k.clone(), sdk(v))).collect();
                WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(m)).build().unwrap()).build()
            })
            .collect();
        let out = rt.block_on(c.batch_write_item().request_items(table, writes).send()).unwrap();
        assert!(out.unprocessed_items().is_none_or(|u| u.is_empty()), "moto left items unprocessed");
    }
}

/// An item with every attribute type, exact numbers, unicode and bytes; some attributes sparse.
fn item(k: &(String, i64), v: u64, r: &mut Rng) -> Item {
    let mut it: Item = vec![("pk".into(), V::S(k.0.clone())), ("sk".into(), V::N(k.1.to_string()))];
    it.push(("amount".into(), V::N(format!("{}.{:02}", v, v % 97))));
    it.push(("big".into(), V::N(format!("1234567890123456789012345678901234567.{}", v % 10))));
    it.push(("name".into(), V::S(format!("naïve \"{v}\" ☃ {}", r.below(1000)))));
    it.push(("raw".into(), V::B(vec![0, 255, (v % 256) as u8])));
    it.push(("ok".into(), V::Bool(v.is_multiple_of(2))));
    if r.unit() < 0.5 {
        it.push(("gone".into(), V::Null));
    }
    it.push(("tags".into(), V::SS(vec!["a".into(), format!("t{}", v % 7)])));
    it.push(("scores".into(), V::NS(vec!["1".into(), format!("-{}.5", v % 9)])));
    it.push(("blobs".into(), V::BS(vec![vec![1, 2], vec![(v % 200) as u8 + 3]])));
    it.push((
        "lines".into(),
        V::L(vec![V::N("1".into()), V::S("x".into()), V::M(vec![("q".into(), V::N("2".into()))])]),
    ));
    it.push((
        "doc".into(),
        V::M(vec![("n".into(), V::N("0.000000000000000000001".into())), ("s".into(), V::S("y".into()))]),
    ));
    it
}

fn fill(c: &Client, rt: &tokio::runtime::Runtime, table: &str, n: usize, seed: u64) -> Model {
    let mut r = Rng::new(seed);
    let mut model = Model::new();
    for i in 0..n {
        let k = (format!("p{:03}", i % 150), (i / 150) as i64);
        let it = item(&k, i as u64, &mut r);
        put(c, rt, table, &it);
        model.insert(k, it);
    }
    model
}

/// A moto server with a table `things` of `n` generated items (the model), and a destination folder.
struct Things {
    moto: Moto,
    model: Model,
    dest: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

fn things(n: usize, seed: u64) -> Things {
    let moto = Moto::start();
    let (c, rt) = (moto.client(), rt());
    create_table(&c, &rt, "things", false);
    let model = fill(&c, &rt, "things", n, seed);
    let tmp = tempfile::tempdir().unwrap();
    Things { moto, model, dest: tmp.path().join("things"), _tmp: tmp }
}

#[track_caller]
fn assert_dataset_is(model: &Model, dest: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let opts = GenerateOptions { empty_files: 0, ..Default::default() };
    let out = converted_items(model.values().cloned().collect(), opts, &last_record(dest)["schema"], tmp.path());
    let (want, got) = (sorted(&out), sorted(dest));
    assert_eq!(got.num_rows(), model.len(), "rows");
    assert_same_columns(&want, &got);
}

fn json_of(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

#[test]
fn scan_with_segments_gives_every_item_and_type_exactly() {
    let Things { moto, model, dest, _tmp } = things(1200, 7);
    let d = dest.display().to_string();
    let o = dynolake(&["scan", "things", &d, "--segments", "4", "--page-size", "50", "--json"], &moto.env());
    assert_code(&o, 0);
    let s = json_of(&o);
    assert_eq!(s["scan"]["items"], 1200);
    assert_eq!(s["scan"]["segments"], 4);
    assert_eq!(s["rows"], 1200);
    // 4 segments in pages of at most 50: at least 24 requests, and no fewer per segment than it held.
    assert!(s["scan"]["pages"].as_u64().unwrap() >= 24, "{s}");
    assert_dataset_is(&model, &dest);
    // The staging area is gone once committed.
    assert!(!dest.join("_dynolake/scan").exists());
    // The same command again: refused before scanning, as convert refuses.
    let again = dynolake(&["scan", "things", &d], &moto.env());
    assert_code(&again, 2);
    assert!(stderr(&again).contains("already holds a dataset"), "{}", stderr(&again));
}

#[test]
fn scan_killed_midway_resumes_from_its_checkpoints() {
    let Things { moto, model, dest, _tmp } = things(900, 11);
    let d = dest.display().to_string();
    // Parts of ~20 KB: several checkpoints per segment.
    let args = ["scan", "things", &d, "--segments", "3", "--page-size", "25", "--part-size", "20000", "--json"];
    let mut env = moto.env();
    env.push(("DYNOLAKE_CRASH_AT", "scan-checkpoint:4".into()));
    let killed = dynolake(&args, &env);
    assert_code(&killed, 101);
    // The kill can land while another segment's checkpoint is being written:
    // a local store then leaves its half-written `NAME#N` upload file, which
    // is not a checkpoint (listings skip it) and must not stop the resume.
    let all = walk(&dest.join("_dynolake/scan/checkpoints"));
    let checkpoints: Vec<_> = all.iter().filter(|p| !is_local_upload_in_flight(p)).collect();
    assert_eq!(checkpoints.len(), 3, "one checkpoint per segment: {all:?}");
    assert!(walk(&dest).iter().all(|p| !p.to_string_lossy().ends_with(".parquet")), "nothing committed");
    // Make that race certain: a half-written checkpoint upload beside a real one.
    std::fs::write(dest.join("_dynolake/scan/checkpoints/segment-00000.json#9"), b"{\"segment\": 0, \"la").unwrap();

    let o = dynolake(&args, &moto.env());
    assert_code(&o, 0);
    let s = json_of(&o);
    assert!(s["scan"]["resumed_segments"].as_u64().unwrap() >= 1, "{s}");
    let read = s["scan"]["items_read"].as_u64().unwrap();
    assert!(read < 900, "the resumed run read {read} items: it started over");
    assert_eq!(s["rows"], 900);
    assert_dataset_is(&model, &dest);
    // The staging area, half-written uploads and all, is gone once committed.
    assert!(!dest.join("_dynolake/scan").exists());
}

/// `object_store`'s local file system writes `NAME` through `NAME#N` and renames.
fn is_local_upload_in_flight(p: &Path) -> bool {
    let name = p.file_name().unwrap_or_default().to_string_lossy();
    name.rsplit_once('#').is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Forwards 127.0.0.1 connections to moto and notes each request: when it
/// started, its operation and body, and the capacity its answer says it
/// consumed: the request pattern as the server saw it. (moto closes every
/// connection after its answer, so a connection is a request.)
struct Recorder {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<Call>>>,
}

#[derive(Clone, Debug)]
struct Call {
    at: Instant,
    /// The `X-Amz-Target` operation, such as `DynamoDB_20120810.Scan`.
    target: String,
    body: String,
    units: Option<f64>,
}

impl Recorder {
    /// Scan requests: start time and consumed units.
    fn scans(&self) -> Vec<(Instant, f64)> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| c.target.ends_with(".Scan"))
            .map(|c| (c.at, c.units.unwrap_or_else(|| panic!("a Scan answer without ConsumedCapacity: {c:?}"))))
            .collect()
    }

    fn bodies(&self, op: &str) -> Vec<serde_json::Value> {
        let calls = self.calls.lock().unwrap();
        calls.iter().filter(|c| c.target.ends_with(op)).map(|c| serde_json::from_str(&c.body).unwrap()).collect()
    }
}

impl Recorder {
    fn start(upstream: SocketAddr) -> Recorder {
        Recorder::throttling(upstream, 0)
    }

    /// Also answer every `every`-th Scan request (0: none) with DynamoDB's throttling error
    /// instead of forwarding it.
    fn throttling(upstream: SocketAddr, every: usize) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let log = calls.clone();
        let scans = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { break };
                let (log, scans) = (log.clone(), scans.clone());
                std::thread::spawn(move || {
                    let began = Instant::now();
                    let Some((head, body)) = read_request(&mut client) else { return };
                    let target = head
                        .lines()
                        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("x-amz-target")))
                        .map(|(_, v)| v.trim().to_string())
                        .unwrap_or_default();
                    let is_scan = target.ends_with(".Scan");
                    if is_scan
                        && every > 0
                        && scans.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % every == every - 1
                    {
                        let answer = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}"#;
                        let _ = write!(
                            client,
                            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                            answer.len()
                        );
                        log.lock().unwrap().push(Call { at: began, target: "throttled".into(), body, units: None });
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(upstream) else { return };
                    if server.write_all(head.as_bytes()).and_then(|_| server.write_all(body.as_bytes())).is_err() {
                        return;
                    }
                    let mut response = Vec::new();
                    let _ = server.read_to_end(&mut response);
                    let _ = client.write_all(&response);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    let resp = String::from_utf8_lossy(&response);
                    let units = resp
                        .split("\"CapacityUnits\":")
                        .nth(1)
                        .and_then(|r| r.trim_start().split([',', '}']).next())
                        .and_then(|n| n.trim().parse::<f64>().ok());
                    log.lock().unwrap().push(Call { at: began, target, body, units });
                });
            }
        });
        Recorder { addr, calls }
    }
}

/// One HTTP/1.1 request: its head (with the blank line) and its body (by Content-Length).
fn read_request(s: &mut TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((head, String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string()))
}

#[test]
fn scan_holds_consumed_capacity_under_the_budget() {
    let Things { moto, model, dest, _tmp } = things(600, 3);
    let rec = Recorder::start(moto.addr);
    let budget = 15.0;
    let o = dynolake(
        &[
            "scan",
            "things",
            &dest.display().to_string(),
            "--segments",
            "4",
            "--page-size",
            "8",
            "--max-rcu",
            "15",
            "--json",
        ],
        &env_for(&format!("http://{}", rec.addr)),
    );
    assert_code(&o, 0);
    assert_dataset_is(&model, &dest);
    let mut scans = rec.scans();
    scans.sort_by_key(|s| s.0);
    let total: f64 = scans.iter().map(|s| s.1).sum();
    let s = json_of(&o);
    assert_eq!(s["scan"]["consumed_capacity"].as_f64().unwrap(), total, "the summary counts what the server reported");
    assert!(scans.len() >= 600 / 8, "{} Scan requests", scans.len());
    // Over any two seconds: at most two seconds of budget, one second of allowance, and one page
    // per segment in flight.
    let window = Duration::from_secs(2);
    for (i, (t, _)) in scans.iter().enumerate() {
        let used: f64 = scans[i..].iter().take_while(|s| s.0 < *t + window).map(|s| s.1).sum();
        assert!(used <= budget * 3.0 + 4.0, "{used} units in the 2 s from request {i}");
    }
    let span = scans.last().unwrap().0 - scans[0].0;
    let floor = (total - budget - 4.0) / budget;
    assert!(span.as_secs_f64() >= floor, "{total} units in {span:?}: faster than {budget}/s");
}

#[test]
fn export_start_status_wait_and_watch_against_moto() {
    let moto = Moto::start();
    let (c, rt) = (moto.client(), rt());
    create_table(&c, &rt, "orders", false);
    fill(&c, &rt, "orders", 20, 1);
    let env = moto.env();
    // `export start` of the orders table, with these options.
    let start = |more: &[&'static str]| -> Vec<&'static str> {
        ["export", "start", "--table", "orders", "--to", "s3://exports-bucket/orders"]
            .iter()
            .chain(more)
            .copied()
            .collect()
    };
    // Point-in-time recovery is off: refused before the call, saying how to turn it on.
    let o = dynolake(&start(&[]), &env);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("point-in-time recovery is off") && stderr(&o).contains("--enable-pitr"),
        "{}",
        stderr(&o)
    );
    // A window DynamoDB would refuse is refused before the call.
    let o = dynolake(
        &start(&[
            "--incremental",
            "--from",
            "2026-01-01T00:00:00Z",
            "--until",
            "2026-01-01T00:10:00Z",
            "--enable-pitr",
        ]),
        &env,
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("15 minutes to 24 hours"), "{}", stderr(&o));

    // The bucket does not exist: the export fails, and --wait says so with AWS's code.
    let o = dynolake(&start(&["--enable-pitr", "--wait", "--poll", "0.1"]), &env);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("S3NoSuchBucket"), "{}", stderr(&o));
    let failed_arn = stdout(&o).lines().find(|l| l.starts_with("export ")).map(|l| l[6..].trim().to_string()).unwrap();
    let o = dynolake(&["export", "status", &failed_arn, "--json"], &env);
    assert_code(&o, 0);
    assert_eq!(json_of(&o)["status"], "FAILED");
    assert_eq!(json_of(&o)["failure_code"], "S3NoSuchBucket");
    let o = dynolake(&["export", "watch", "--table", "orders", "--json"], &env);
    assert_code(&o, 4);
    assert_eq!(json_of(&o)["state"], "failed");

    // With the bucket: it completes; `wait` reports it; `list` lists both.
    moto.create_bucket("exports-bucket");
    let o = dynolake(&start(&["--json"]), &env);
    assert_code(&o, 0);
    let arn = json_of(&o)[0]["export_arn"].as_str().unwrap().to_string();
    let o = dynolake(&["export", "wait", &arn, "--poll", "0.1", "--json"], &env);
    assert_code(&o, 0);
    let done = json_of(&o);
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["item_count"], 20);
    assert_eq!(done["location"], "s3://exports-bucket/orders");
    let o = dynolake(&["export", "list", "--table", "orders", "--json"], &env);
    assert_code(&o, 0);
    let listed: Vec<String> =
        json_of(&o).as_array().unwrap().iter().map(|e| e["export_arn"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&arn) && listed.contains(&failed_arn));
    // Options for the conversion that follows are checked before an export starts.
    let o = dynolake(&start(&["--wait", "--convert", "/tmp/x", "--", "--bogus"]), &env);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--bogus"), "{}", stderr(&o));
    let o = dynolake(&["export", "list", "--table", "orders", "--json"], &env);
    assert_eq!(json_of(&o).as_array().unwrap().len(), 2, "no export was started");

    // A table that does not exist is a usage error, naming it.
    let o = dynolake(&["scan", "nosuchtable", "/tmp/never-written"], &env);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("nosuchtable") && stderr(&o).contains("ResourceNotFoundException"), "{}", stderr(&o));
    // A table without exports is stale for a watcher.
    create_table(&c, &rt, "quiet", false);
    let o = dynolake(&["export", "watch", "--table", "quiet"], &env);
    assert_code(&o, 5);
    // Several tables: all are checked before any export starts, then one export each.
    let several =
        ["export", "start", "--table", "orders", "--table", "quiet", "--to", "s3://exports-bucket/all", "--json"];
    let o = dynolake(&several, &env);
    assert_code(&o, 2);
    let err = json_of(&o)["error"].as_str().unwrap().to_string();
    assert!(err.contains("point-in-time recovery is off for quiet"), "{err}");
    let o = dynolake(&["export", "list", "--table", "orders", "--json"], &env);
    assert_eq!(json_of(&o).as_array().unwrap().len(), 2, "nothing started for orders either");
    let mut with_pitr = several.to_vec();
    with_pitr.push("--enable-pitr");
    let o = dynolake(&with_pitr, &env);
    assert_code(&o, 0);
    let started = json_of(&o);
    let tables: Vec<&str> = started
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["table_arn"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(tables, ["orders", "quiet"]);
}

#[test]
fn export_since_last_starts_where_the_newest_export_ended_and_wait_continues_into_convert() {
    let moto = Moto::start();
    let (c, rt) = (moto.client(), rt());
    create_table(&c, &rt, "Orders", false);
    moto.create_bucket("example-bucket");
    // A full export of Orders two hours ago, as AWS writes it, under the prefix.
    let tmp = tempfile::tempdir().unwrap();
    let g = generate(
        tmp.path(),
        &GenerateOptions { items: 50, prefix: Some("exports/orders".into()), ..Default::default() },
    )
    .unwrap();
    let export_time = chrono::Utc::now() - chrono::Duration::hours(2);
    let summary_path = g.full_export_dir.join("manifest-summary.json");
    let mut summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    let table_arn = rt
        .block_on(c.describe_table().table_name("Orders").send())
        .unwrap()
        .table()
        .unwrap()
        .table_arn()
        .unwrap()
        .to_string();
    summary["exportTime"] = export_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into();
    summary["tableArn"] = table_arn.clone().into();
    let text = summary.to_string();
    std::fs::write(&summary_path, &text).unwrap();
    use base64::Engine;
    use md5::Digest;
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(text.as_bytes()));
    std::fs::write(g.full_export_dir.join("manifest-summary.md5"), md5).unwrap();
    upload(&moto, tmp.path(), "example-bucket");

    // What was asked of DynamoDB, as the server received it (moto does not echo the window back).
    let rec = Recorder::start(moto.addr);
    let mut env = env_for(&format!("http://{}", rec.addr));
    let before = chrono::Utc::now();
    let o = dynolake(
        &[
            "export",
            "start",
            "--table",
            "Orders",
            "--to",
            "s3://example-bucket/exports/orders",
            "--incremental",
            "--since-last",
            "--enable-pitr",
            "--json",
        ],
        &env,
    );
    assert_code(&o, 0);
    assert_eq!(json_of(&o)[0]["export_type"], "INCREMENTAL_EXPORT");
    let asked = rec.bodies(".ExportTableToPointInTime");
    assert_eq!(asked.len(), 1);
    let spec = &asked[0]["IncrementalExportSpecification"];
    let secs = |v: &serde_json::Value| (v.as_f64().unwrap() * 1000.0).round() as i64;
    assert_eq!(secs(&spec["ExportFromTime"]), export_time.timestamp_millis(), "{spec}");
    // Up to now (the window is under 24 hours).
    let to = secs(&spec["ExportToTime"]);
    assert!(to >= before.timestamp_millis() - 1000 && to <= chrono::Utc::now().timestamp_millis(), "{spec}");
    assert_eq!(spec["ExportViewType"], "NEW_AND_OLD_IMAGES");
    assert_eq!(asked[0]["S3Prefix"], "exports/orders");
    env = moto.env();

    // --wait --convert goes on into convert with the export's id (moto writes no manifests, so
    // the conversion must say it cannot find that export, naming it, and not pick another).
    let dest = tmp.path().join("out");
    let o = dynolake(
        &[
            "export",
            "start",
            "--table",
            "Orders",
            "--to",
            "s3://example-bucket/exports/orders",
            "--wait",
            "--poll",
            "0.1",
            "--convert",
            &dest.display().to_string(),
            "--",
            "--partition-by",
            "status",
        ],
        &env,
    );
    let id = stderr(&o)
        .lines()
        .find_map(|l| l.strip_prefix("started export "))
        .unwrap_or_else(|| panic!("{}", stderr(&o)))
        .split(' ')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert_code(&o, 2);
    let err = stderr(&o);
    assert!(err.contains(&format!("{id} completed")), "{err}");
    assert!(err.contains(&format!("error: no export `{id}`")), "{err}");
    assert!(!dest.join("_SUCCESS").exists());
}

/// Upload a local bucket folder into moto's S3 (object_store, as dynolake writes).
fn upload(moto: &Moto, local: &Path, bucket: &str) {
    use object_store::ObjectStoreExt;
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_endpoint(moto.url())
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap();
    let rt = rt();
    for f in walk(local) {
        let key = f.strip_prefix(local).unwrap().to_string_lossy().to_string();
        rt.block_on(store.put(&object_store::path::Path::from(key), std::fs::read(&f).unwrap().into())).unwrap();
    }
}

#[test]
fn stream_follow_restarts_without_loss_or_duplicates_and_merges_to_the_table() {
    let moto = Moto::start();
    let (c, rt) = (moto.client(), rt());
    create_table(&c, &rt, "live", true);
    let mut model = fill(&c, &rt, "live", 300, 5);
    let mut writes = 300;
    let tmp = tempfile::tempdir().unwrap();
    let (base, changes, out) = (tmp.path().join("base"), tmp.path().join("changes"), tmp.path().join("out"));
    let (b, ch, ou) = (base.display().to_string(), changes.display().to_string(), out.display().to_string());
    assert_code(&dynolake(&["scan", "live", &b, "--segments", "2"], &moto.env()), 0);
    std::thread::sleep(Duration::from_millis(20));

    let mut r = Rng::new(99);
    let mut change = |model: &mut Model, writes: &mut usize, n: usize| {
        for i in 0..n {
            let keys: Vec<(String, i64)> = model.keys().cloned().collect();
            match r.below(3) {
                0 => {
                    let k = (format!("new{}", r.below(1_000_000)), i as i64);
                    let it = item(&k, 7, &mut r);
                    put(&c, &rt, "live", &it);
                    model.insert(k, it);
                }
                1 => {
                    // An update that drops attributes (a put of fewer of them).
                    let k = keys[r.below(keys.len() as u64) as usize].clone();
                    let it: Item =
                        item(&k, 8, &mut r).into_iter().filter(|(n, _)| n != "lines" && n != "doc").collect();
                    put(&c, &rt, "live", &it);
                    model.insert(k, it);
                }
                _ => {
                    let k = keys[r.below(keys.len() as u64) as usize].clone();
                    delete(&c, &rt, "live", &k);
                    model.remove(&k);
                }
            }
            *writes += 1;
        }
    };
    change(&mut model, &mut writes, 120);
    let follow = ["stream", "follow", "live", &ch, "--until-idle", "--flush-every", "0s", "--json"];
    let mut env = moto.env();
    env.push(("DYNOLAKE_CRASH_AT", "stream-file:1".into()));
    assert_code(&dynolake(&follow, &env), 101);
    assert!(!changes.join("_dynolake/stream.json").exists(), "killed before its first checkpoint");
    let o = dynolake(&follow, &moto.env());
    assert_code(&o, 0);
    change(&mut model, &mut writes, 80);
    let o2 = dynolake(&follow, &moto.env());
    assert_code(&o2, 0);
    assert!(json_of(&o2)["records"].as_u64().unwrap() > 0);

    // Every write is in the files exactly once (the stream started with the table).
    let mut seqs = Vec::new();
    for f in walk(&changes).iter().filter(|p| p.to_string_lossy().ends_with(".jsonl.gz")) {
        for line in read_lines(f).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            seqs.push(v["dynamodb"]["SequenceNumber"].as_str().unwrap().to_string());
        }
    }
    let distinct: std::collections::BTreeSet<&String> = seqs.iter().collect();
    assert_eq!(distinct.len(), seqs.len(), "a record appears twice");
    assert_eq!(seqs.len(), writes, "every write once");

    // The scan's dataset plus the stream's changes is the table's final state.
    let o = dynolake(&["merge", &b, &ch, &ou, "--json"], &[]);
    assert_code(&o, 0);
    assert_dataset_is(&model, &out);
}

#[test]
fn scan_of_a_larger_table_into_s3_stages_and_commits_there() {
    let moto = Moto::start();
    let s3 = S3Server::start();
    let (c, rt) = (moto.client(), rt());
    create_table(&c, &rt, "big", false);
    let mut r = Rng::new(21);
    let mut model = Model::new();
    for i in 0..6_000u64 {
        let k = (format!("p{:04}", i % 2000), (i / 2000) as i64);
        model.insert(k.clone(), item(&k, i, &mut r));
    }
    put_many(&c, &rt, "big", &model.values().cloned().collect::<Vec<_>>());
    // DynamoDB is moto, S3 is the s3s server.
    let mut env: Vec<(&str, String)> = s3.env().into_iter().filter(|(k, _)| *k != "AWS_ENDPOINT_URL").collect();
    env.push(("AWS_ENDPOINT_URL_DYNAMODB", moto.url()));
    env.push(("AWS_ENDPOINT_URL_S3", s3.endpoint()));
    let o = dynolake(
        &["scan", "big", "s3://lake/big", "--segments", "4", "--page-size", "300", "--part-size", "400000", "--json"],
        &env,
    );
    assert_code(&o, 0);
    let s = json_of(&o);
    assert_eq!(s["rows"], 6_000);
    // ~2.5 MB of DynamoDB JSON in parts of 400 kB: several staged files per segment.
    assert!(s["source_files"].as_u64().unwrap() >= 6, "{s}");
    assert!(s["scan"]["pages"].as_u64().unwrap() >= 20, "{s}");
    assert!(s3.list("lake", "big/_dynolake/scan").is_empty(), "the staging is removed after the commit");
    assert_dataset_is(&model, &s3.root().join("lake/big"));
}

#[test]
fn scan_retries_throttled_requests_and_loses_nothing() {
    let Things { moto, model, dest, _tmp } = things(400, 13);
    // Every third Scan request is refused with ProvisionedThroughputExceededException.
    let rec = Recorder::throttling(moto.addr, 3);
    let o = dynolake(
        &["scan", "things", &dest.display().to_string(), "--segments", "2", "--page-size", "20", "--json"],
        &env_for(&format!("http://{}", rec.addr)),
    );
    assert_code(&o, 0);
    let throttled = rec.calls.lock().unwrap().iter().filter(|c| c.target == "throttled").count();
    assert!(throttled >= 6, "{throttled} throttled requests");
    assert_eq!(
        json_of(&o)["scan"]["pages"].as_u64().unwrap() as usize,
        rec.scans().len(),
        "pages are answered requests"
    );
    assert_dataset_is(&model, &dest);
}

#[test]
fn scan_budget_from_the_tables_provisioned_reads() {
    let moto = Moto::start();
    let (c, rt) = (moto.client(), rt());
    let key = |n: &str, t| KeySchemaElement::builder().attribute_name(n).key_type(t).build().unwrap();
    let def = |n: &str, t| AttributeDefinition::builder().attribute_name(n).attribute_type(t).build().unwrap();
    rt.block_on(
        c.create_table()
            .table_name("prov")
            .billing_mode(BillingMode::Provisioned)
            .provisioned_throughput(
                aws_sdk_dynamodb::types::ProvisionedThroughput::builder()
                    .read_capacity_units(40)
                    .write_capacity_units(5)
                    .build()
                    .unwrap(),
            )
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .attribute_definitions(def("pk", ScalarAttributeType::S))
            .attribute_definitions(def("sk", ScalarAttributeType::N))
            .send(),
    )
    .unwrap();
    let model = fill(&c, &rt, "prov", 50, 17);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("prov");
    let o = dynolake(&["scan", "prov", &dest.display().to_string(), "--max-read-percent", "25", "--json"], &moto.env());
    assert_code(&o, 0);
    assert_eq!(json_of(&o)["scan"]["max_rcu"], 10.0, "25 % of 40 RCU");
    assert_dataset_is(&model, &dest);
    // An on-demand table without a maximum has no capacity to take a percentage of.
    create_table(&c, &rt, "ondemand", false);
    let o = dynolake(
        &["scan", "ondemand", &tmp.path().join("od").display().to_string(), "--max-read-percent", "25"],
        &moto.env(),
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("give --max-rcu instead"), "{}", stderr(&o));
}
