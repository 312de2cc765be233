//! Following a table's DynamoDB stream into change files (`stream follow`).
//!
//! Every shard is read with `GetRecords`; a shard is read only once its
//! parent is finished (or gone from the stream), so a key's changes reach
//! the files in order. Records are buffered and flushed every `flush_every`
//! (or every 16 MiB) as one gzip JSON Lines file of Lambda-shaped records
//! (the Streams-record format `merge`, `sql` and `convert` read), named by the
//! flush's number: `DEST/0000000/0000000042.jsonl.gz`. After the file, the
//! checkpoint `DEST/_dynolake/stream.json` (each shard's last sequence number
//! and whether it is finished, and the next flush number) is replaced.
//!
//! A restart continues from the checkpoint. Killed between the file and its
//! checkpoint, the next run reads the same records again and writes them
//! under the same file name, replacing the orphan: nothing is lost and
//! nothing appears twice.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use aws_sdk_dynamodbstreams::types::{OperationType, Record, Shard, ShardIteratorType};
use flate2::Compression;
use flate2::write::GzEncoder;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::{aws, json};
use crate::error::{Error, Result};
use crate::store::Location;

pub const CHECKPOINT: &str = "_dynolake/stream.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum From {
    /// The oldest records the stream holds (24 hours).
    TrimHorizon,
    /// Only records written after the start.
    Latest,
}

#[derive(Debug, Clone)]
pub struct FollowOptions {
    pub from: From,
    pub flush_every: Duration,
    /// Stop once every shard is caught up (no records in a round), after a flush.
    pub until_idle: bool,
    /// Wait between rounds that found nothing.
    pub idle_wait: Duration,
    /// Flush earlier when this much text is buffered.
    pub flush_bytes: usize,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            from: From::TrimHorizon,
            flush_every: Duration::from_secs(60),
            until_idle: false,
            idle_wait: Duration::from_secs(1),
            flush_bytes: 16 << 20,
        }
    }
}

/// The checkpoint: where each shard is, and the next file's number.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    pub stream_arn: String,
    pub next_flush: u64,
    pub shards: BTreeMap<String, ShardState>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ShardState {
    pub parent: Option<String>,
    /// The last record's sequence number taken into a file.
    pub last_sequence: Option<String>,
    /// The shard is closed and read to its end.
    pub finished: bool,
    /// Read from the stream's tip (`--from latest`), until a record gives a sequence number.
    #[serde(default)]
    pub from_latest: bool,
}

/// What a follow run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FollowReport {
    pub stream_arn: String,
    pub records: u64,
    pub files: Vec<String>,
    pub shards: usize,
    pub shards_finished: usize,
}

/// Shards that may be read now: not finished, and the parent (if the stream
/// still lists it) finished.
pub fn readable(state: &Checkpoint) -> Vec<String> {
    state
        .shards
        .iter()
        .filter(|(_, s)| !s.finished)
        .filter(|(_, s)| s.parent.as_ref().and_then(|p| state.shards.get(p)).is_none_or(|p| p.finished))
        .map(|(id, _)| id.clone())
        .collect()
}

/// The table's stream ARN, or an error saying how to enable the stream.
pub async fn stream_arn(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<String> {
    let out =
        client.describe_table().table_name(table).send().await.map_err(|e| aws(format!("DescribeTable {table}"), e))?;
    out.table().and_then(|t| t.latest_stream_arn()).map(str::to_string).ok_or_else(|| {
        Error::Usage(format!(
            "{table} has no stream: enable one with `aws dynamodb update-table --table-name {table} \
             --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES`"
        ))
    })
}

async fn list_shards(client: &aws_sdk_dynamodbstreams::Client, arn: &str) -> Result<Vec<Shard>> {
    let mut shards = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let out = client
            .describe_stream()
            .stream_arn(arn)
            .set_exclusive_start_shard_id(start.take())
            .send()
            .await
            .map_err(|e| aws(format!("DescribeStream {arn}"), e))?;
        let d = out.stream_description().ok_or_else(|| Error::NotFound(format!("no stream {arn}")))?;
        shards.extend(d.shards().iter().cloned());
        match d.last_evaluated_shard_id() {
            Some(id) => start = Some(id.to_string()),
            None => return Ok(shards),
        }
    }
}

/// Follow the stream of `table` into `dest` until stopped (SIGINT or SIGTERM:
/// the buffered records are flushed, and the run ends normally) or, with
/// `until_idle`, until a round finds no new record.
pub async fn follow(
    ddb: &aws_sdk_dynamodb::Client,
    streams: &aws_sdk_dynamodbstreams::Client,
    table: &str,
    dest: &Location,
    opts: &FollowOptions,
    mut on_flush: impl FnMut(&FollowReport),
) -> Result<FollowReport> {
    let arn = stream_arn(ddb, table).await?;
    let ck_path = dest.child(CHECKPOINT).prefix;
    let mut state = match read(dest, &ck_path).await? {
        Some(c) if c.stream_arn == arn => c,
        Some(c) => {
            return Err(Error::Conflict(format!(
                "{} follows stream {}, but {table}'s stream is now {arn} (the stream was disabled and enabled \
                 again?): follow it into another folder",
                dest.url, c.stream_arn
            )));
        }
        None => Checkpoint { stream_arn: arn.clone(), ..Default::default() },
    };
    let mut first_listing = state.shards.is_empty();
    let mut report = FollowReport { stream_arn: arn.clone(), ..Default::default() };
    let mut iterators: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut buf = Buffer::new();
    let mut last_flush = Instant::now();
    let mut last_listing: Option<Instant> = None;
    loop {
        if last_listing.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            for s in list_shards(streams, &arn).await? {
                let Some(id) = s.shard_id() else { continue };
                state.shards.entry(id.to_string()).or_insert_with(|| ShardState {
                    parent: s.parent_shard_id().map(str::to_string),
                    // `latest` applies to the shards open when following starts; shards
                    // born later are read from their start, or their records would be lost.
                    from_latest: first_listing && opts.from == From::Latest,
                    ..Default::default()
                });
            }
            last_listing = Some(Instant::now());
            first_listing = false;
        }
        let mut got = 0usize;
        // A shard that ended this round makes its children readable: not idle yet.
        let mut ended = false;
        for id in readable(&state) {
            let shard = state.shards.get_mut(&id).expect("listed");
            let it = match iterators.get(&id).cloned().flatten() {
                Some(it) => it,
                None => {
                    let (kind, after) = match &shard.last_sequence {
                        Some(seq) => (ShardIteratorType::AfterSequenceNumber, Some(seq.clone())),
                        // `latest` applies to the shards open when following starts; shards
                        // born later are read from their start, or their records would be lost.
                        None if shard.from_latest => (ShardIteratorType::Latest, None),
                        None => (ShardIteratorType::TrimHorizon, None),
                    };
                    let out = streams
                        .get_shard_iterator()
                        .stream_arn(&arn)
                        .shard_id(&id)
                        .shard_iterator_type(kind)
                        .set_sequence_number(after)
                        .send()
                        .await
                        .map_err(|e| aws(format!("GetShardIterator {id}"), e))?;
                    match out.shard_iterator() {
                        Some(it) => it.to_string(),
                        None => {
                            shard.finished = true;
                            ended = true;
                            continue;
                        }
                    }
                }
            };
            let out = match streams.get_records().shard_iterator(&it).limit(1000).send().await {
                Ok(o) => o,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_expired_iterator_exception()) => {
                    iterators.remove(&id);
                    continue;
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_trimmed_data_access_exception()) => {
                    return Err(Error::Verify(format!(
                        "shard {id} of {arn}: records after {} are past the stream's 24-hour retention; \
                         they are lost to this follower. Start again from a new export (and a new folder)",
                        shard.last_sequence.as_deref().unwrap_or("its start")
                    )));
                }
                Err(e) => return Err(aws(format!("GetRecords {id}"), e)),
            };
            for r in out.records() {
                buf.push(r)?;
                if let Some(seq) = r.dynamodb().and_then(|d| d.sequence_number()) {
                    shard.last_sequence = Some(seq.to_string());
                }
            }
            got += out.records().len();
            match out.next_shard_iterator() {
                Some(next) => {
                    iterators.insert(id.clone(), Some(next.to_string()));
                }
                None => {
                    shard.finished = true;
                    ended = true;
                    iterators.remove(&id);
                }
            }
        }
        let stopping = crate::cancel::requested().is_some() || (opts.until_idle && got == 0 && !ended);
        if stopping || buf.records > 0 && (last_flush.elapsed() >= opts.flush_every || buf.raw >= opts.flush_bytes) {
            flush(dest, &ck_path, &mut state, &mut buf, &mut report).await?;
            on_flush(&report);
            last_flush = Instant::now();
        }
        if stopping {
            break;
        }
        if got == 0 {
            tokio::time::sleep(opts.idle_wait).await;
        }
    }
    report.shards = state.shards.len();
    report.shards_finished = state.shards.values().filter(|s| s.finished).count();
    Ok(report)
}

/// Write the buffered records as the next file, then the checkpoint.
async fn flush(
    dest: &Location,
    ck_path: &Path,
    state: &mut Checkpoint,
    buf: &mut Buffer,
    report: &mut FollowReport,
) -> Result<()> {
    if buf.records > 0 {
        let n = state.next_flush;
        let rel = format!("{:07}/{n:010}.jsonl.gz", n / 1000);
        let path = crate::store::join_rel(&dest.prefix, &rel);
        let done = std::mem::replace(buf, Buffer::new());
        let records = done.records;
        let bytes = done.enc.finish().map_err(|e| Error::io("gzip stream records", e))?;
        dest.put_bytes(&path, bytes).await?;
        crate::cancel::crash_point("stream-file");
        state.next_flush += 1;
        report.records += records;
        report.files.push(dest.display(&path));
    }
    dest.put_bytes(ck_path, serde_json::to_vec_pretty(state).expect("serializable")).await
}

/// Records as Lambda receives them, one per line, gzipped.
struct Buffer {
    enc: GzEncoder<Vec<u8>>,
    line: Vec<u8>,
    raw: usize,
    records: u64,
}

impl Buffer {
    fn new() -> Buffer {
        Buffer { enc: GzEncoder::new(Vec::new(), Compression::fast()), line: Vec::new(), raw: 0, records: 0 }
    }

    fn push(&mut self, r: &Record) -> Result<()> {
        self.line.clear();
        record_line(&mut self.line, r)?;
        self.line.push(b'\n');
        self.raw += self.line.len();
        self.records += 1;
        self.enc.write_all(&self.line).map_err(|e| Error::io("gzip stream records", e))
    }
}

/// A Streams record in the shape a Lambda function receives it.
pub fn record_line(out: &mut Vec<u8>, r: &Record) -> Result<()> {
    let text = |out: &mut Vec<u8>, k: &str, v: &str| {
        json::string(out, k);
        out.push(b':');
        json::string(out, v);
        out.push(b',');
    };
    out.push(b'{');
    if let Some(id) = r.event_id() {
        text(out, "eventID", id);
    }
    let op = r.event_name().ok_or_else(|| Error::Usage("a Streams record without eventName".into()))?;
    text(
        out,
        "eventName",
        match op {
            OperationType::Insert => "INSERT",
            OperationType::Modify => "MODIFY",
            OperationType::Remove => "REMOVE",
            other => other.as_str(),
        },
    );
    text(out, "eventVersion", r.event_version().unwrap_or("1.1"));
    text(out, "eventSource", r.event_source().unwrap_or("aws:dynamodb"));
    if let Some(region) = r.aws_region() {
        text(out, "awsRegion", region);
    }
    if let Some(u) = r.user_identity() {
        out.extend_from_slice(b"\"userIdentity\":{");
        text(out, "type", u.r#type().unwrap_or(""));
        text(out, "principalId", u.principal_id().unwrap_or(""));
        out.pop();
        out.extend_from_slice(b"},");
    }
    out.extend_from_slice(b"\"dynamodb\":{");
    let d = r.dynamodb().ok_or_else(|| Error::Usage("a Streams record without its dynamodb member".into()))?;
    if let Some(t) = d.approximate_creation_date_time() {
        // Epoch seconds, as Lambda gives them; with the milliseconds the API keeps.
        let ms = t.to_millis().unwrap_or(0);
        let (s, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
        if frac == 0 {
            write!(out, "\"ApproximateCreationDateTime\":{s},").expect("vec");
        } else {
            write!(out, "\"ApproximateCreationDateTime\":{s}.{frac:03},").expect("vec");
        }
    }
    for (name, image) in [("Keys", d.keys()), ("NewImage", d.new_image()), ("OldImage", d.old_image())] {
        if let Some(m) = image {
            json::string(out, name);
            out.push(b':');
            json::write_stream_image(out, m)?;
            out.push(b',');
        }
    }
    if let Some(seq) = d.sequence_number() {
        text(out, "SequenceNumber", seq);
    }
    if let Some(n) = d.size_bytes() {
        write!(out, "\"SizeBytes\":{n},").expect("vec");
    }
    if let Some(v) = d.stream_view_type() {
        text(out, "StreamViewType", v.as_str());
    }
    out.pop(); // the last comma
    out.extend_from_slice(b"}}");
    Ok(())
}

async fn read(dest: &Location, path: &Path) -> Result<Option<Checkpoint>> {
    match dest.get_if_exists(path).await? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Usage(format!("{} is not a dynolake stream checkpoint: {e}", dest.display(path)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_wait_for_their_parents() {
        let mut c = Checkpoint::default();
        let shard = |parent: Option<&str>, finished| ShardState {
            parent: parent.map(str::to_string),
            finished,
            ..Default::default()
        };
        c.shards.insert("a".into(), shard(None, false));
        c.shards.insert("b".into(), shard(Some("a"), false));
        c.shards.insert("c".into(), shard(Some("b"), false));
        c.shards.insert("d".into(), shard(Some("trimmed-away"), false));
        assert_eq!(readable(&c), vec!["a", "d"]);
        c.shards.get_mut("a").unwrap().finished = true;
        assert_eq!(readable(&c), vec!["b", "d"]);
        c.shards.get_mut("b").unwrap().finished = true;
        assert_eq!(readable(&c), vec!["c", "d"]);
    }
}
