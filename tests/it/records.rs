//! One record model: incremental-export changes and DynamoDB Streams records
//! decode through the same code as full-export items, in JSON and in Ion.

use arrow::array::{Array, AsArray, RecordBatch};
use dynolake::decode::{Change, DecodeOptions, Envelope, Inferrer, ItemDecoder, Op, RecordKind, Syntax};
use dynolake::export::OutputFormat;
use dynolake::generate::GenerateOptions;
use dynolake::schema::infer::InferOptions;

use super::decode::concat;
use super::support::*;

/// Infer the `envelope` image of change records, then decode them: the batch and each row's change.
fn changes(data: &[u8], syntax: Syntax, record: RecordKind, envelope: Envelope) -> (RecordBatch, Vec<Change>) {
    let io = InferOptions::default();
    let mut inf = Inferrer::new(&io, envelope).with_syntax(syntax).with_record(record);
    inf.start_file(0, "changes");
    inf.feed(data).unwrap();
    inf.finish_file().unwrap();
    assert!(inf.malformed.is_empty(), "{:?}", inf.malformed.first());
    let schema = inf.stats.schema(&io);
    let opts = DecodeOptions { syntax, record, envelope, batch_size: 50, ..Default::default() };
    let mut dec = ItemDecoder::new(&schema, opts);
    dec.start_file(0, "changes");
    let (mut batches, mut all) = (Vec::new(), Vec::new());
    let mut off = 0;
    let mut take = |dec: &mut ItemDecoder| {
        if let Some(b) = dec.flush().unwrap() {
            assert_eq!(dec.flushed_changes().len(), b.num_rows());
            all.extend_from_slice(dec.flushed_changes());
            batches.push(b);
        }
    };
    while off < data.len() {
        off += dec.decode(&data[off..]).unwrap();
        if dec.is_full() {
            take(&mut dec);
        }
    }
    dec.finish_file().unwrap();
    take(&mut dec);
    assert!(dec.take_rejects().is_empty());
    (concat(&batches), all)
}

fn incremental_lines(format: OutputFormat) -> String {
    let e = export_with(GenerateOptions { items: 3000, files: 2, incremental: true, format, ..Default::default() });
    walk(&e.generated.root.join("AWSDynamoDB").join("data")).iter().map(|f| read_lines(f)).collect()
}

#[test]
fn incremental_changes_read_the_same_from_json_and_ion() {
    let json = incremental_lines(OutputFormat::DynamodbJson);
    let ion = incremental_lines(OutputFormat::Ion);
    let n = json.lines().count();
    assert!(n > 100, "{n} changes");
    for envelope in [Envelope::NewImage, Envelope::OldImage, Envelope::Keys] {
        let (jb, jc) = changes(json.as_bytes(), Syntax::Json, RecordKind::Change, envelope);
        let (ib, ic) = changes(ion.as_bytes(), Syntax::Ion, RecordKind::Change, envelope);
        assert_eq!(jb.num_rows(), n, "every change is a row, removals too");
        assert_eq!(jb, ib, "{envelope:?}");
        assert_eq!(jc, ic);
        let key = jb.column_by_name("order_id").unwrap();
        for (row, (c, line)) in jc.iter().zip(json.lines()).enumerate() {
            // The facts, read independently from the JSON line.
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let (new, old) = (v.get("NewImage").is_some(), v.get("OldImage").is_some());
            let want = match (new, old) {
                (true, true) => Op::Modify,
                (true, false) => Op::Insert,
                _ => Op::Remove,
            };
            assert_eq!(c.op, want, "row {row}");
            let micros: i64 = v["Metadata"]["WriteTimestampMicros"]["N"].as_str().unwrap().parse().unwrap();
            assert_eq!(c.write_time_micros, Some(micros));
            // A removal has no new image: its row is all nulls.
            let present = match envelope {
                Envelope::NewImage => new,
                Envelope::OldImage => old,
                _ => true,
            };
            assert_eq!(key.is_valid(row), present, "row {row} {envelope:?}");
        }
        assert!(jc.iter().any(|c| c.op == Op::Remove) && jc.iter().any(|c| c.op == Op::Modify));
    }
}

#[test]
fn streams_records_give_their_event_time_sequence_and_ttl_deletes() {
    let lines = [
        r#"{"eventID":"1","eventName":"INSERT","eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":"us-east-1","dynamodb":{"ApproximateCreationDateTime":1700000000,"Keys":{"pk":{"S":"a"}},"NewImage":{"pk":{"S":"a"},"n":{"N":"1"}},"SequenceNumber":"111111111111111111111111111111","SizeBytes":26,"StreamViewType":"NEW_AND_OLD_IMAGES"},"eventSourceARN":"arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2024"}"#,
        r#"{"eventName":"MODIFY","dynamodb":{"ApproximateCreationDateTime":1700000001.5,"Keys":{"pk":{"S":"a"}},"OldImage":{"pk":{"S":"a"},"n":{"N":"1"}},"NewImage":{"pk":{"S":"a"},"n":{"N":"2.5"},"tags":{"SS":["x"]}},"SequenceNumber":"111111111111111111111111111112"}}"#,
        r#"{"eventName":"REMOVE","userIdentity":{"type":"Service","principalId":"dynamodb.amazonaws.com"},"dynamodb":{"ApproximateCreationDateTime":1700000002,"Keys":{"pk":{"S":"a"}},"OldImage":{"pk":{"S":"a"},"n":{"N":"2.5"}},"SequenceNumber":"211111111111111111111111111113"}}"#,
        r#"{"eventName":"REMOVE","dynamodb":{"ApproximateCreationDateTime":1700000003,"Keys":{"pk":{"S":"b"}},"SequenceNumber":"311111111111111111111111111114"}}"#,
    ];
    let data = lines.join("\n");
    // The change table's row: the new image, else the old one, else the keys.
    let (rows, _) = changes(data.as_bytes(), Syntax::Json, RecordKind::Stream, Envelope::Row);
    assert_eq!(rows.num_rows(), 4);
    let (b, c) = changes(data.as_bytes(), Syntax::Json, RecordKind::Stream, Envelope::NewImage);
    assert_eq!(c.iter().map(|c| c.op).collect::<Vec<_>>(), [Op::Insert, Op::Modify, Op::Remove, Op::Remove]);
    assert_eq!(
        c.iter().map(|c| c.write_time_micros.unwrap()).collect::<Vec<_>>(),
        [1_700_000_000_000_000, 1_700_000_001_500_000, 1_700_000_002_000_000, 1_700_000_003_000_000]
    );
    assert_eq!(c[1].sequence.as_deref(), Some("111111111111111111111111111112"));
    assert_eq!(c.iter().map(|c| c.ttl_delete).collect::<Vec<_>>(), [false, false, true, false]);
    let n = b.column_by_name("n").unwrap();
    assert_eq!(arrow::util::display::array_value_to_string(n, 1).unwrap(), "2.5");
    assert!(n.is_null(2) && n.is_null(3), "removals have no new image");
    let (k, _) = changes(data.as_bytes(), Syntax::Json, RecordKind::Stream, Envelope::Keys);
    let pk = k.column_by_name("pk").unwrap().as_string::<i32>();
    assert_eq!((0..4).map(|i| pk.value(i)).collect::<Vec<_>>(), ["a", "a", "a", "b"]);
    // A record without an eventName is rejected, naming the problem.
    let mut dec = ItemDecoder::new(
        &Inferrer::new(&InferOptions::default(), Envelope::NewImage).stats.schema(&InferOptions::default()),
        DecodeOptions { record: RecordKind::Stream, envelope: Envelope::NewImage, ..Default::default() },
    );
    dec.start_file(0, "s");
    dec.decode(b"{\"dynamodb\":{\"Keys\":{\"pk\":{\"S\":\"a\"}}}}\n{\"eventName\":\"UPSERT\",\"dynamodb\":{}}\n")
        .unwrap();
    let r = dec.take_rejects();
    assert_eq!(r.len(), 2);
    assert!(r[0].reason.contains("no eventName") && r[1].reason.contains("unknown eventName `UPSERT`"), "{r:?}");
}

/// An incremental export reads as a change table in every command that reads
/// items (one row per change, the change's own columns first), while the
/// prefix still means its newest full export.
#[test]
fn incremental_exports_read_as_change_tables() {
    let e = export_with(GenerateOptions { items: 200, incremental: true, ..Default::default() });
    let inc = e.generated.root.join("AWSDynamoDB").join(e.generated.incremental_export_id.as_ref().unwrap());
    let manifest = std::fs::read_to_string(inc.join("manifest-files.json")).unwrap();
    let lines: String = manifest
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["dataFileS3Key"].as_str().unwrap().to_string())
        .map(|k| read_lines(&e.dir.path().join(k)))
        .collect();
    let changes = lines.lines().count();
    let removes = lines.lines().filter(|l| !l.contains("\"NewImage\"")).count();
    let sql = format!("t={}", inc.display());
    let q = "SELECT count(*) AS n, sum(CASE WHEN _op = 'remove' THEN 1 ELSE 0 END) AS r FROM t";
    let o = dynolake(&["sql", sql.as_str(), "-e", q, "--format", "csv"], &[]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o).lines().nth(1), Some(format!("{changes},{removes}").as_str()), "{}", stdout(&o));
    let file = e.dir.path().join("changes.json");
    let o = dynolake(&["schema", inc.to_str().unwrap(), "-o", file.to_str().unwrap()], &[]);
    assert_code(&o, 0);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"changes\": true"), "{text}");
    // The prefix still works: its newest full export is chosen.
    let o = dynolake(
        &["sql", &format!("t={}", e.generated.root.display()), "-e", "SELECT count(*) AS n FROM t", "--format", "csv"],
        &[],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o).lines().nth(1), Some("200"));
}
