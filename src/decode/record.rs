//! One model for every kind of line dynolake reads.
//!
//! A line is a *record* holding one or more *images* (items): a full
//! export's `{"Item":…}`; an incremental export's change (`Metadata`, `Keys`,
//! `NewImage`, `OldImage`); a DynamoDB Streams record as a Lambda receives it
//! (`eventName`, `dynamodb.{Keys, NewImage, OldImage, SequenceNumber,
//! ApproximateCreationDateTime}`, `userIdentity`). A decoder puts one image
//! of each record in its columns (the [`Envelope`]) and, for changes, keeps
//! what the record says besides its images ([`Change`]). Written once against
//! the syntax seam, so ION exports' change records read the same way.

use super::syntax::SyntaxCursor;
use super::{DecodeErr, Envelope};
use crate::ddb::Desc;
use crate::ddb::number::Number;

/// What kind of record each line holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordKind {
    /// Full exports: `{"Item":{…}}`.
    #[default]
    Item,
    /// Incremental exports: `{"Metadata":{"WriteTimestampMicros":{"N":"…"}},"Keys":{…},"NewImage":{…},"OldImage":{…}}`.
    Change,
    /// DynamoDB Streams records (JSON, as a Lambda receives them).
    Stream,
}

/// What a change did to its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A new image and no old one. (In a `NEW_IMAGE` incremental export an
    /// update looks the same: it has no old image to tell them apart.)
    Insert,
    /// Both images.
    Modify,
    /// No new image.
    Remove,
}

/// What a change record says besides its images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub op: Op,
    /// When the change was written: `Metadata.WriteTimestampMicros`, or a
    /// Streams record's `ApproximateCreationDateTime` (seconds) in microseconds.
    pub write_time_micros: Option<i64>,
    /// A Streams record's `SequenceNumber` (order within a key; longer than 64 bits).
    pub sequence: Option<String>,
    /// A Streams `REMOVE` made by DynamoDB's TTL (`userIdentity.principalId`).
    pub ttl_delete: bool,
}

/// Walk one record at the cursor: `image` is called with the cursor at the
/// wanted image (once; a second one is skipped). Returns whether the image was
/// there, and the change's facts for change records.
pub(crate) fn visit<'a, C: SyntaxCursor<'a>>(
    cur: &mut C,
    kind: RecordKind,
    want: Envelope,
    mut image: impl FnMut(&mut C) -> Result<(), DecodeErr>,
) -> Result<(bool, Option<Change>), DecodeErr> {
    let mut seen = Seen::default();
    let mut key = Vec::new();
    let mut val = Vec::new();
    cur.open_line()?;
    cur.open_struct()?;
    let mut first = true;
    while let Some(k) = cur.next_member(&mut first, &mut key)? {
        match (kind, k) {
            (RecordKind::Stream, b"dynamodb") => {
                cur.open_struct()?;
                let mut first = true;
                let mut inner = Vec::new();
                while let Some(k) = cur.next_member(&mut first, &mut inner)? {
                    match k {
                        b"SequenceNumber" => seen.sequence = Some(text(cur.plain_scalar(&mut val)?)),
                        b"ApproximateCreationDateTime" => {
                            let t = cur.plain_scalar(&mut val)?;
                            seen.time = Some(micros(cur.pos(), t, 1_000_000)?);
                        }
                        k => seen.member(cur, k, want, &mut image)?,
                    }
                }
            }
            (RecordKind::Stream, b"eventName") => {
                let at = cur.pos();
                seen.event = Some(match cur.plain_scalar(&mut val)? {
                    b"INSERT" => Op::Insert,
                    b"MODIFY" => Op::Modify,
                    b"REMOVE" => Op::Remove,
                    other => {
                        return Err(DecodeErr::malformed(
                            at,
                            format!("unknown eventName `{}`; expected INSERT, MODIFY or REMOVE", text(other)),
                        ));
                    }
                });
            }
            (RecordKind::Stream, b"userIdentity") => {
                cur.open_struct()?;
                let mut first = true;
                let mut inner = Vec::new();
                while let Some(k) = cur.next_member(&mut first, &mut inner)? {
                    if k == b"principalId" {
                        seen.ttl = cur.plain_scalar(&mut val)? == b"dynamodb.amazonaws.com";
                    } else {
                        cur.skip_any()?;
                    }
                }
            }
            (RecordKind::Change, b"Metadata") => {
                cur.open_struct()?;
                let mut first = true;
                let mut inner = Vec::new();
                while let Some(k) = cur.next_member(&mut first, &mut inner)? {
                    if k == b"WriteTimestampMicros" {
                        // An attribute value (`{"N":"…"}` in JSON, a decimal in Ion).
                        let at = cur.pos();
                        if cur.open_value(&mut val)? != Desc::N {
                            return Err(DecodeErr::malformed(at, "WriteTimestampMicros is not a number"));
                        }
                        let t = cur.scalar(Desc::N, &mut val)?;
                        seen.time = Some(micros(at, t, 1)?);
                        cur.close_value()?;
                    } else {
                        cur.skip_any()?;
                    }
                }
            }
            (RecordKind::Item, k) if k == want.key() => seen.image(cur, &mut image)?,
            (RecordKind::Change, k) => seen.member(cur, k, want, &mut image)?,
            _ => cur.skip_any()?,
        }
    }
    // The change's row without a new image: the best image present, wherever it stood in the record.
    if want == Envelope::Row
        && !seen.found
        && let Some(at) = seen.old_at.or(seen.keys_at)
    {
        let end = cur.pos();
        cur.set_pos(at);
        seen.found = true;
        image(cur)?;
        cur.set_pos(end);
    }
    cur.end()?;
    let change = match kind {
        RecordKind::Item => None,
        RecordKind::Change => {
            Some(Change { op: seen.op_from_images(), write_time_micros: seen.time, sequence: None, ttl_delete: false })
        }
        RecordKind::Stream => Some(Change {
            op: seen.event.ok_or_else(|| DecodeErr::malformed(0, "the Streams record has no eventName"))?,
            write_time_micros: seen.time,
            sequence: seen.sequence,
            ttl_delete: seen.ttl,
        }),
    };
    Ok((seen.found, change))
}

#[derive(Default)]
struct Seen {
    found: bool,
    new: bool,
    old: bool,
    time: Option<i64>,
    sequence: Option<String>,
    event: Option<Op>,
    ttl: bool,
    /// Where each image starts (for [`Envelope::Row`]; a new image is decoded where it stands).
    old_at: Option<usize>,
    keys_at: Option<usize>,
}

impl Seen {
    /// A member that may be an image (`Keys`, `NewImage`, `OldImage`).
    fn member<'a, C: SyntaxCursor<'a>>(
        &mut self,
        cur: &mut C,
        k: &[u8],
        want: Envelope,
        image: &mut impl FnMut(&mut C) -> Result<(), DecodeErr>,
    ) -> Result<(), DecodeErr> {
        if want == Envelope::Row {
            // The new image is the best there is: decoded where it stands.
            // The others wait (as positions) until the record's end shows
            // whether a new image came.
            if k == b"NewImage" {
                self.new = true;
                return self.image(cur, image);
            }
            cur.skip_ws();
            let at = Some(cur.pos());
            match k {
                b"OldImage" => (self.old, self.old_at) = (true, at),
                b"Keys" => self.keys_at = at,
                _ => {}
            }
            return cur.skip_any();
        }
        let is = match k {
            b"NewImage" => {
                self.new = true;
                want == Envelope::NewImage
            }
            b"OldImage" => {
                self.old = true;
                want == Envelope::OldImage
            }
            b"Keys" => want == Envelope::Keys,
            _ => false,
        };
        if is { self.image(cur, image) } else { cur.skip_any() }
    }

    fn image<'a, C: SyntaxCursor<'a>>(
        &mut self,
        cur: &mut C,
        image: &mut impl FnMut(&mut C) -> Result<(), DecodeErr>,
    ) -> Result<(), DecodeErr> {
        if self.found {
            return cur.skip_any();
        }
        self.found = true;
        image(cur)
    }

    fn op_from_images(&self) -> Op {
        match (self.new, self.old) {
            (true, true) => Op::Modify,
            (true, false) => Op::Insert,
            (false, _) => Op::Remove,
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Number text (exact) times `scale`, as whole microseconds.
fn micros(at: usize, t: &[u8], scale: i64) -> Result<i64, DecodeErr> {
    let bad = || DecodeErr::malformed(at, format!("`{}` is not a time", text(t)));
    let n = Number::parse(t).ok_or_else(bad)?;
    // seconds with a fraction (Streams) → microseconds, exactly when it has at most 6 fraction digits.
    let shift = scale.checked_ilog10().unwrap_or(0) as i32;
    let shifted = Number { exp: n.exp + shift, ..n };
    shifted.to_i64().ok_or_else(bad)
}
