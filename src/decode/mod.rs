//! DynamoDB JSON → Arrow record batches.
//!
//! Push-based and I/O-free, like arrow-json's reader: feed decompressed bytes
//! of a data file with [`ItemDecoder::decode`] (chunk boundaries may fall
//! anywhere, lines may be any length), take batches with
//! [`ItemDecoder::flush`]. Each line is parsed straight into column buffers
//! (no tree per item). Knows types, not files: callers say which file and
//! line the bytes come from, for error messages.
//!
//! The part of a line that holds the item is chosen by an [`Envelope`]:
//! `Item` for full exports; the item images of incremental-export change
//! records decode through the same code.
//!
//! What the schema cannot hold goes to the catch-all column (attribute by
//! attribute, as DynamoDB JSON) and is counted; malformed lines are rejected
//! (kept, with the reason) unless the decoder is strict.

pub mod builder;
mod ion;
pub mod keys;
pub(crate) mod lines;
pub mod record;
mod shadow;
mod syntax;
pub mod time;
mod value;
pub(crate) mod walk;

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;

use crate::ddb::json::{Cursor, JsonError};
use crate::error::{Error, Position, Result};
use crate::schema::infer::{InferOptions, TableStats, order_key};
use crate::schema::{CHANGE_COLUMNS, Schema};
use builder::{Builder, TextKind};
use ion::IonCursor;
pub use record::{Change, Op, RecordKind};
use shadow::Shadow;
pub use syntax::Syntax;
use syntax::{Member, SyntaxCursor};
use value::Ctx;
use walk::Walk;

pub use crate::ddb::MAX_DEPTH;

/// Which member of a line's object holds the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// Full exports: `{"Item": {...}}`.
    Item,
    /// Incremental exports: the item after the change.
    NewImage,
    /// Incremental exports: the item before the change.
    OldImage,
    /// Incremental exports: the key attributes.
    Keys,
    /// Change records: the change's row — its new image, else its old image
    /// (a removal, as change tables show it: what was removed), else its keys
    /// (a removal in a `NEW_IMAGE` export).
    Row,
}

impl Envelope {
    pub fn key(self) -> &'static [u8] {
        match self {
            Envelope::Item => b"Item",
            Envelope::NewImage => b"NewImage",
            Envelope::OldImage => b"OldImage",
            Envelope::Keys => b"Keys",
            Envelope::Row => b"NewImage",
        }
    }
}

/// A decoding failure inside one line.
#[derive(Debug, Clone)]
pub(crate) struct DecodeErr {
    /// Well-formed, but does not fit the schema (goes to the catch-all).
    pub mismatch: bool,
    pub offset: usize,
    pub message: String,
    /// Innermost first.
    path: Vec<Seg>,
}

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

impl DecodeErr {
    pub fn malformed(offset: usize, message: impl Into<String>) -> Self {
        DecodeErr { mismatch: false, offset, message: message.into(), path: Vec::new() }
    }
    pub fn mismatch(offset: usize, message: impl Into<String>) -> Self {
        DecodeErr { mismatch: true, offset, message: message.into(), path: Vec::new() }
    }
    pub fn at_key(mut self, k: &[u8]) -> Self {
        self.path.push(Seg::Key(String::from_utf8_lossy(k).into_owned()));
        self
    }
    pub fn at_index(mut self, i: usize) -> Self {
        self.path.push(Seg::Index(i));
        self
    }
    /// `lines[3].price`.
    pub fn path(&self) -> String {
        let mut s = String::new();
        for seg in self.path.iter().rev() {
            match seg {
                Seg::Key(k) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                Seg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    }
}

impl From<JsonError> for DecodeErr {
    fn from(e: JsonError) -> Self {
        DecodeErr::malformed(e.offset, e.message)
    }
}

/// A line that could not be decoded, kept with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub position: Position,
    pub reason: String,
    /// The line as it was (lossy UTF-8 if it was not UTF-8).
    pub line: String,
}

/// Attribute names counted one by one in [`DecodeStats::extra_by_attribute`];
/// the values of further names are counted together under [`OTHER_ATTRIBUTES`].
pub const EXTRA_NAMES_KEPT: usize = 1000;
pub const OTHER_ATTRIBUTES: &str = "(other attributes)";

/// What decoding found, beyond the rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodeStats {
    pub items: u64,
    pub rejected: u64,
    /// Attribute values sent to the catch-all column.
    pub extra_values: u64,
    /// The same, per attribute name.
    pub extra_by_attribute: BTreeMap<String, u64>,
}

impl DecodeStats {
    pub fn merge(&mut self, o: &DecodeStats) {
        self.items += o.items;
        self.rejected += o.rejected;
        self.extra_values += o.extra_values;
        for (k, v) in &o.extra_by_attribute {
            *self.extra_by_attribute.entry(k.clone()).or_default() += v;
        }
    }
}

/// Options of an [`ItemDecoder`].
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Rows per batch.
    pub batch_size: usize,
    /// Also flush when this many bytes are buffered.
    pub batch_bytes: usize,
    /// Fail on the first value the schema cannot hold or the first bad line,
    /// instead of using the catch-all column and the rejects.
    pub strict: bool,
    pub envelope: Envelope,
    /// The syntax of the lines (the export's `outputFormat`).
    pub syntax: Syntax,
    /// What kind of record each line is; `envelope` says which of its images
    /// fills the columns. For change records, each row's [`Change`] is kept
    /// (see [`ItemDecoder::flushed_changes`]) and a record without that image
    /// (a removal's new image) is a row of nulls.
    pub record: RecordKind,
    /// The lines come from a `NEW_IMAGE` export: a new image without an old
    /// one may be an insert or an update, and `_op` says `upsert`.
    pub upserts: bool,
    /// Decode only these columns (indices into the schema's Arrow schema: a
    /// change table's own columns, the fields, the catch-all). `None`: all.
    pub projection: Option<Vec<usize>>,
    /// Gather inference statistics while decoding (see [`ItemDecoder::take_table_stats`]).
    pub collect_stats: bool,
    /// The inference options those statistics (and the catch-all's checks) follow.
    pub infer: InferOptions,
    /// Leave out the rows with these keys (decoded, counted as items and in
    /// the statistics, but not in any batch).
    pub skip: Option<std::sync::Arc<keys::SkipKeys>>,
    /// With a projection: stop reading a line once every projected column
    /// has its value; the rest of the line is neither read nor checked. For
    /// finding a line's partition, when the whole decoder reads it later.
    pub stop_when_found: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            batch_size: 16384,
            batch_bytes: 32 << 20,
            strict: false,
            envelope: Envelope::Item,
            syntax: Syntax::Json,
            record: RecordKind::Item,
            upserts: false,
            projection: None,
            collect_stats: false,
            infer: InferOptions::default(),
            skip: None,
            stop_when_found: false,
        }
    }
}

/// Decodes lines of DynamoDB JSON into record batches of one schema.
pub struct ItemDecoder {
    opts: DecodeOptions,
    arrow_schema: SchemaRef,
    attributes: Vec<String>,
    columns: Vec<Builder>,
    wanted: Vec<bool>,
    /// Output column order: Arrow schema indices (a change table's own
    /// columns, then the schema's fields, then the catch-all).
    order: Vec<usize>,
    /// How many of a change table's own columns lead the Arrow schema (0 or 4).
    meta: usize,
    lookup: HashMap<Box<[u8]>, usize>,
    /// The column that followed column `c` last time (`next_of[c]`; the slot
    /// after the schema's columns is the start of an item, the one after that
    /// follows an attribute outside the schema): items of a table usually list
    /// their attributes in the same order, so one comparison usually replaces a
    /// hash lookup. Keyed by the previous column rather than the position, an
    /// absent optional attribute costs one miss, not one per later attribute.
    next_of: Vec<usize>,
    /// Which attribute names a cursor may check in place ([`syntax::plain_name`]).
    plain: Vec<bool>,
    extra: Builder,
    extra_wanted: bool,
    /// Columns projected, and whether the line being read has given them all
    /// (see [`DecodeOptions::stop_when_found`]).
    wanted_count: usize,
    found_all: bool,
    extra_row: Vec<u8>,
    rows: usize,
    /// The line of each buffered row, and of each row of the last batch flushed.
    row_lines: Vec<u64>,
    flushed_lines: Vec<u64>,
    carry: Vec<u8>,
    file: String,
    file_index: usize,
    line: u64,
    /// Inference statistics per column, when collected.
    shadow: Option<Vec<Shadow>>,
    rejects: Vec<Reject>,
    stats: DecodeStats,
    scratch: Vec<u8>,
    bytes: Vec<u8>,
    /// The row's key, when rows are skipped by key.
    key: Vec<u8>,
    /// A value respelled as canonical DynamoDB JSON, for the catch-all.
    raw: Vec<u8>,
    /// Change records: the facts of the line being decoded, of each buffered
    /// row, and of each row of the last batch flushed.
    change: Option<Change>,
    row_changes: Vec<Change>,
    flushed_changes: Vec<Change>,
}

impl ItemDecoder {
    pub fn new(schema: &Schema, opts: DecodeOptions) -> ItemDecoder {
        let full = schema.arrow_schema();
        let n = schema.fields.len();
        // A change table's own columns come first; projections index the Arrow schema.
        let meta = if schema.changes { CHANGE_COLUMNS.len() } else { 0 };
        let order: Vec<usize> = opts.projection.clone().unwrap_or_else(|| (0..meta + n + 1).collect());
        assert!(order.iter().all(|&i| i <= meta + n), "projection indices are in range");
        let wanted_idx: Vec<usize> = order.iter().filter(|&&i| i >= meta).map(|&i| i - meta).collect();
        let mut wanted = vec![false; n];
        for &i in &wanted_idx {
            if i < n {
                wanted[i] = true;
            }
        }
        let extra_wanted = wanted_idx.contains(&n);
        let wanted_count = wanted.iter().filter(|w| **w).count();
        let arrow_schema = Arc::new(full.project(&order).expect("projection indices are in range"));
        assert!(!opts.collect_stats || opts.projection.is_none(), "statistics need every column");
        let columns: Vec<Builder> = schema.fields.iter().map(|f| Builder::new(&f.ty)).collect();
        let shadow = opts.collect_stats.then(|| columns.iter().map(Shadow::new).collect());
        ItemDecoder {
            arrow_schema,
            attributes: schema.fields.iter().map(|f| f.attribute.clone()).collect(),
            columns,
            wanted,
            order,
            meta,
            lookup: schema.fields.iter().enumerate().map(|(i, f)| (f.attribute.as_bytes().into(), i)).collect(),
            next_of: vec![usize::MAX; schema.fields.len() + 2],
            plain: schema.fields.iter().map(|f| syntax::plain_name(f.attribute.as_bytes())).collect(),
            extra: Builder::new(&crate::schema::ColumnType::Json),
            extra_wanted,
            wanted_count,
            found_all: false,
            extra_row: Vec::new(),
            rows: 0,
            row_lines: Vec::new(),
            flushed_lines: Vec::new(),
            carry: Vec::new(),
            file: String::new(),
            file_index: 0,
            line: 0,
            shadow,
            rejects: Vec::new(),
            stats: DecodeStats::default(),
            scratch: Vec::new(),
            key: Vec::new(),
            bytes: Vec::new(),
            raw: Vec::new(),
            change: None,
            row_changes: Vec::new(),
            flushed_changes: Vec::new(),
            opts,
        }
    }

    pub fn options(&self) -> &DecodeOptions {
        &self.opts
    }

    /// The schema of the batches this decoder produces.
    pub fn schema(&self) -> SchemaRef {
        self.arrow_schema.clone()
    }

    /// Start a new data file (`index`: its place in the manifest); line numbers restart at 1.
    pub fn start_file(&mut self, index: usize, name: &str) {
        debug_assert!(self.carry.is_empty(), "finish_file before start_file");
        self.file.clear();
        self.file.push_str(name);
        self.file_index = index;
        self.line = 0;
    }

    /// Take the inference statistics of everything this decoder decoded (with
    /// `collect_stats`; once: later calls return `None`): what an inference pass over the same lines would
    /// have gathered, provided no line was rejected and no value went to the
    /// catch-all column.
    pub fn take_table_stats(&mut self) -> Option<TableStats> {
        let shadow = self.shadow.take()?;
        let mut t = TableStats { items: self.stats.items, ..Default::default() };
        for (name, col) in self.attributes.iter().zip(shadow) {
            if !col.is_unseen() {
                t.attrs.insert(name.clone(), col.into_stats());
            }
        }
        Some(t)
    }

    /// Rows buffered and not yet flushed.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// A batch is full (rows or bytes): call `flush`.
    pub fn is_full(&self) -> bool {
        self.rows >= self.opts.batch_size
            || (self.rows.is_multiple_of(64) && self.buffered_bytes() >= self.opts.batch_bytes)
    }

    fn buffered_bytes(&self) -> usize {
        self.columns.iter().map(Builder::byte_size).sum::<usize>() + self.extra.byte_size()
    }

    /// Feed bytes. Returns how many were consumed: fewer than given when the
    /// batch filled up (flush, then feed the rest).
    pub fn decode(&mut self, buf: &[u8]) -> Result<usize> {
        if self.is_full() && self.carry.is_empty() {
            return Ok(0);
        }
        let mut carry = std::mem::take(&mut self.carry);
        let max = self.opts.infer.max_line_bytes;
        let r = lines::for_each_line(&mut carry, buf, max, |line| {
            self.line(line)?;
            Ok(!self.is_full())
        });
        self.carry = carry;
        match r? {
            Ok(n) => Ok(n),
            // `line` counted the lines framed before the long one.
            Err(_) => Err(lines::too_long(&self.file, self.line + 1, max)),
        }
    }

    /// Decode one whole line (without its newline) as line `number` of the
    /// current file. For lines framed by the caller, whose numbers need not
    /// follow each other: source lines spilled by a sink and decoded after the
    /// scan, or the lines a sink left to be decoded (see
    /// [`crate::pipeline::BatchSink::take_lines`]).
    pub fn decode_line(&mut self, number: u64, line: &[u8]) -> Result<()> {
        debug_assert!(self.carry.is_empty(), "lines framed by the caller, or by the decoder, not both");
        self.line = number.saturating_sub(1);
        self.line(line)
    }

    /// Hand the framing over to the caller mid-file: the partial line carried
    /// and the number of the last line framed (the next is one more).
    pub fn take_framing(&mut self) -> (Vec<u8>, u64) {
        (std::mem::take(&mut self.carry), self.line)
    }

    /// The line of each row of the last batch flushed.
    pub fn flushed_lines(&self) -> &[u64] {
        &self.flushed_lines
    }

    /// The data file ended: decode a last line without a newline.
    pub fn finish_file(&mut self) -> Result<()> {
        if !self.carry.is_empty() {
            let line = std::mem::take(&mut self.carry);
            self.line(&line)?;
        }
        Ok(())
    }

    /// Take the buffered rows as a batch.
    pub fn flush(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows == 0 {
            return Ok(None);
        }
        for (c, w) in self.columns.iter_mut().zip(&self.wanted) {
            if *w {
                c.push_nulls(self.rows - c.len());
            }
        }
        let (n, meta) = (self.columns.len(), self.meta);
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.order.len());
        for &j in &self.order {
            arrays.push(match j {
                j if j < meta => self.change_column(j),
                j if j == meta + n => self.extra.finish(),
                j => self.columns[j - meta].finish(),
            });
        }
        if !self.extra_wanted {
            // Not in the batch: the catch-all's rows are dropped here, or they would pile up.
            self.extra.truncate(0);
        }
        let opts = arrow::array::RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        std::mem::swap(&mut self.row_lines, &mut self.flushed_lines);
        self.row_lines.clear();
        std::mem::swap(&mut self.row_changes, &mut self.flushed_changes);
        self.row_changes.clear();
        RecordBatch::try_new_with_options(self.arrow_schema.clone(), arrays, &opts)
            .map(Some)
            .map_err(|e| Error::engine(format!("building a batch from {}", self.file), e))
    }

    /// Column `k` of [`CHANGE_COLUMNS`] for the rows buffered (nulls where a
    /// row is not a change: a full export read as a change table).
    fn change_column(&self, k: usize) -> ArrayRef {
        use arrow::array::{BooleanArray, StringArray, TimestampMicrosecondArray};
        let changes = if self.row_changes.len() == self.rows { &self.row_changes[..] } else { &[] };
        let rows = self.rows;
        match k {
            0 => Arc::new(StringArray::from_iter_values((0..rows).map(|i| match changes.get(i).map(|c| c.op) {
                Some(Op::Insert) if self.opts.upserts => "upsert",
                Some(Op::Insert) => "insert",
                Some(Op::Modify) => "modify",
                Some(Op::Remove) => "remove",
                None => "insert",
            }))),
            1 => Arc::new(
                TimestampMicrosecondArray::from_iter(
                    (0..rows).map(|i| changes.get(i).and_then(|c| c.write_time_micros)),
                )
                .with_timezone("UTC"),
            ),
            2 => {
                Arc::new(StringArray::from_iter((0..rows).map(|i| changes.get(i).and_then(|c| c.sequence.as_deref()))))
            }
            _ => {
                Arc::new(BooleanArray::from_iter((0..rows).map(|i| Some(changes.get(i).is_some_and(|c| c.ttl_delete)))))
            }
        }
    }

    /// Where a row of the last batch flushed came from: its data file and line.
    pub fn position_of_flushed(&self, row: usize) -> Position {
        Position {
            file: self.file.clone(),
            line: self.flushed_lines.get(row).copied().unwrap_or(0),
            path: String::new(),
        }
    }

    /// For change records: what each row of the last batch flushed says
    /// besides its image (operation, write time, sequence number).
    pub fn flushed_changes(&self) -> &[Change] {
        &self.flushed_changes
    }

    /// Lines that could not be decoded since the last call.
    pub fn take_rejects(&mut self) -> Vec<Reject> {
        std::mem::take(&mut self.rejects)
    }

    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    fn line(&mut self, line: &[u8]) -> Result<()> {
        self.line += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.opts.syntax.holds_no_record(line, &self.file, self.line)? {
            return Ok(());
        }
        let row = self.rows;
        let read = self.item(line);
        // Stopped early, every projected column read: the row is whole.
        let read = if std::mem::take(&mut self.found_all) { Ok(()) } else { read };
        match read {
            Ok(()) if self.opts.skip.as_ref().is_some_and(|s| s.holds(&self.columns, row, &mut self.key)) => {
                self.roll_back(row);
                self.change = None;
                self.stats.items += 1;
                Ok(())
            }
            Ok(()) => {
                self.rows += 1;
                self.row_lines.push(self.line);
                if let Some(c) = self.change.take() {
                    self.row_changes.push(c);
                }
                self.stats.items += 1;
                Ok(())
            }
            Err(e) => {
                self.roll_back(row);
                let position = Position { file: self.file.clone(), line: self.line, path: e.path() };
                let message = if e.mismatch {
                    format!("{} (--strict)", e.message)
                } else {
                    format!("{} (byte {})", e.message, e.offset + 1)
                };
                if self.opts.strict {
                    return Err(Error::Decode { position, message });
                }
                self.stats.rejected += 1;
                self.rejects.push(Reject {
                    position,
                    reason: message,
                    line: String::from_utf8_lossy(line).into_owned(),
                });
                Ok(())
            }
        }
    }

    /// Undo what the line being decoded added after `row` rows (columns not
    /// decoded hold nothing to undo).
    fn roll_back(&mut self, row: usize) {
        for (c, w) in self.columns.iter_mut().zip(&self.wanted) {
            if *w {
                c.truncate(row);
            }
        }
        self.extra.truncate(row);
    }

    fn item(&mut self, line: &[u8]) -> Result<(), DecodeErr> {
        check_utf8(line)?;
        let mut ctx = Ctx { scratch: std::mem::take(&mut self.scratch), walk: Walk::new(self.opts.infer) };
        ctx.walk.bytes = std::mem::take(&mut self.bytes);
        // The syntax is chosen once per line; everything below is compiled for each.
        let r = match self.opts.syntax {
            Syntax::Json => self.envelope(&mut Cursor::new(line), &mut ctx),
            Syntax::Ion => self.envelope(&mut IonCursor::new(line), &mut ctx),
        };
        self.scratch = ctx.scratch;
        self.bytes = ctx.walk.bytes;
        r
    }

    fn envelope<'a, C: SyntaxCursor<'a>>(&mut self, cur: &mut C, ctx: &mut Ctx) -> Result<(), DecodeErr> {
        let (kind, want) = (self.opts.record, self.opts.envelope);
        let (found, change) = record::visit(cur, kind, want, |cur| self.attributes_of(cur, ctx))?;
        if !found {
            if kind == RecordKind::Item {
                let want = String::from_utf8_lossy(want.key());
                return Err(DecodeErr::malformed(0, format!("the line has no `{want}`")));
            }
            // A change without this image (a removal's new image): a row of nulls.
            self.extra.push_null();
        }
        self.change = change;
        Ok(())
    }

    /// The item object: one member per attribute.
    fn attributes_of<'a, C: SyntaxCursor<'a>>(&mut self, cur: &mut C, ctx: &mut Ctx) -> Result<(), DecodeErr> {
        let row = self.rows;
        self.extra_row.clear();
        cur.open_struct()?;
        let mut first = true;
        let mut pos = 0;
        let outside = self.attributes.len() + 1;
        let mut prev = self.attributes.len();
        // Names borrow the line (no copy) unless they hold escapes.
        let mut unescaped = Vec::new();
        let mut raw = std::mem::take(&mut self.raw);
        let mut found = 0;
        loop {
            let guess = self.next_of[prev];
            let name = self.attributes.get(guess).filter(|_| self.plain[guess]).map(|a| a.as_bytes());
            let (key, col) = match cur.next_member_guess(&mut first, name, &mut unescaped)? {
                Member::End => break,
                Member::Guessed(key) => (key, Some(guess)),
                Member::Other(key) => {
                    let col = self.lookup.get(key).copied();
                    self.next_of[prev] = col.unwrap_or(outside);
                    (key, col)
                }
            };
            cur.skip_ws();
            let start = cur.pos();
            prev = col.unwrap_or(outside);
            pos += 1;
            match col {
                Some(i) if self.wanted[i] => {
                    // Absent attributes are padded with nulls lazily, in bulk.
                    let have = self.columns[i].len();
                    if have > row {
                        return Err(DecodeErr::malformed(start, "the attribute appears twice").at_key(key));
                    }
                    self.columns[i].push_nulls(row - have);
                    ctx.walk.order = order_key(self.file_index, self.line, pos - 1);
                    let shadow = self.shadow.as_mut().map(|s| &mut s[i]);
                    let r = value::decode_value(&mut self.columns[i], cur, ctx, 1, shadow);
                    match r {
                        Ok(()) => {}
                        Err(e) if e.mismatch => {
                            // A malformed value is the worse problem: check the whole value first.
                            self.columns[i].truncate(row);
                            cur.set_pos(start);
                            ctx.walk.value(cur, None, 1).map_err(|e| e.at_key(key))?;
                            if self.opts.strict {
                                return Err(e.at_key(key));
                            }
                            raw.clear();
                            cur.write_canonical(start, &mut raw).map_err(|e| e.at_key(key))?;
                            self.push_extra(key, &raw);
                        }
                        Err(e) => return Err(e.at_key(key)),
                    }
                    found += 1;
                    if self.opts.stop_when_found && found == self.wanted_count {
                        self.raw = raw;
                        self.found_all = true;
                        return Err(DecodeErr::malformed(cur.pos(), "every projected column is read"));
                    }
                }
                Some(_) => {
                    // Not projected: skipped by structure alone.
                    cur.skip_any()?;
                }
                None => {
                    ctx.walk.value(cur, None, 1).map_err(|e| e.at_key(key))?;
                    if self.opts.strict {
                        return Err(DecodeErr::mismatch(start, "the attribute is not in the schema").at_key(key));
                    }
                    if self.extra_wanted {
                        raw.clear();
                        cur.write_canonical(start, &mut raw).map_err(|e| e.at_key(key))?;
                        self.push_extra(key, &raw);
                    }
                }
            }
        }
        self.raw = raw;
        if let Builder::Text { offsets, data, valid, .. } = &mut self.extra {
            if self.extra_row.is_empty() {
                offsets.push(data.len() as i32);
                valid.push(false);
            } else {
                data.push(b'{');
                data.extend_from_slice(&self.extra_row);
                data.push(b'}');
                offsets.push(data.len() as i32);
                valid.push(true);
            }
        }
        Ok(())
    }

    /// Add `"name": value` to this row's catch-all object.
    fn push_extra(&mut self, name: &[u8], raw: &[u8]) {
        if !self.extra_row.is_empty() {
            self.extra_row.push(b',');
        }
        let name = String::from_utf8_lossy(name);
        let mut quoted = String::with_capacity(name.len() + 2);
        crate::ddb::value::write_json_string(&name, &mut quoted);
        self.extra_row.extend_from_slice(quoted.as_bytes());
        self.extra_row.push(b':');
        self.extra_row.extend_from_slice(raw);
        self.stats.extra_values += 1;
        let counts = &mut self.stats.extra_by_attribute;
        if let Some(n) = counts.get_mut(name.as_ref()) {
            *n += 1;
        } else if counts.len() >= EXTRA_NAMES_KEPT {
            // Counted by name up to a point: items with ever new attribute
            // names must not grow this without bound.
            *counts.entry(OTHER_ATTRIBUTES.into()).or_default() += 1;
        } else {
            counts.insert(name.into_owned(), 1);
        }
    }

    /// The attribute names of the schema, in column order.
    pub fn attributes(&self) -> &[String] {
        &self.attributes
    }
}

/// Every line is checked to be UTF-8 before it is read (the cursors then
/// hand out its strings as they are). `simdutf8` checks an export's lines in
/// about half `std`'s time; a line it refuses is checked again by `std`,
/// which has the last word and gives the error's position.
#[inline]
fn check_utf8(line: &[u8]) -> Result<(), DecodeErr> {
    if simdutf8::basic::from_utf8(line).is_ok() {
        return Ok(());
    }
    match std::str::from_utf8(line) {
        Ok(_) => Ok(()),
        Err(e) => Err(DecodeErr::malformed(e.valid_up_to(), "the line is not valid UTF-8")),
    }
}

/// Gathers schema statistics from lines of DynamoDB JSON; the inference
/// counterpart of [`ItemDecoder`], with the same framing rules.
pub struct Inferrer {
    pub stats: TableStats,
    walk: Walk,
    envelope: Envelope,
    record: RecordKind,
    syntax: Syntax,
    file_index: usize,
    file: String,
    line: u64,
    carry: Vec<u8>,
    key: Vec<u8>,
    /// Sampling: infer only these non-blank lines, counted from the first
    /// line fed (files in the order fed), and stop after them. Several
    /// inferrers reading from the start with adjacent ranges share a sample:
    /// each skips (frames, does not walk) the lines before its range.
    pub lines: Option<std::ops::Range<u64>>,
    /// Non-blank lines seen, across files.
    nonblank: u64,
    /// Lines that could not be read (the first [`MALFORMED_KEPT`] of them;
    /// `malformed_lines` counts all). What such a line showed up to its fault
    /// went into `stats`: infer again with them in `skip` for a clean schema.
    pub malformed: Vec<Reject>,
    pub malformed_lines: u64,
    /// Where the malformed lines are (file index, line), up to [`MALFORMED_SKIPPABLE`].
    pub malformed_at: Vec<(usize, u64)>,
    /// Lines to leave out, by (file index, line).
    pub skip: std::collections::HashSet<(usize, u64)>,
}

/// How many malformed lines an [`Inferrer`] keeps with their reasons.
pub const MALFORMED_KEPT: usize = 100;
/// How many malformed lines' positions it keeps, to infer again without them.
pub const MALFORMED_SKIPPABLE: usize = 100_000;

impl Inferrer {
    pub fn new(opts: &InferOptions, envelope: Envelope) -> Self {
        Inferrer {
            stats: TableStats::default(),
            walk: Walk::new(*opts),
            envelope,
            record: RecordKind::Item,
            syntax: Syntax::Json,
            file_index: 0,
            file: String::new(),
            line: 0,
            carry: Vec::new(),
            key: Vec::new(),
            lines: None,
            nonblank: 0,
            malformed: Vec::new(),
            malformed_lines: 0,
            malformed_at: Vec::new(),
            skip: Default::default(),
        }
    }

    /// Lines are change records of this kind (full-export items unless said).
    pub fn with_record(mut self, record: RecordKind) -> Self {
        self.record = record;
        self
    }

    /// Lines are in `syntax` (DynamoDB JSON unless said).
    pub fn with_syntax(mut self, syntax: Syntax) -> Self {
        self.syntax = syntax;
        self
    }

    pub fn start_file(&mut self, index: usize, name: &str) {
        self.file_index = index;
        self.file = name.to_string();
        self.line = 0;
        self.carry.clear();
    }

    /// True once the sampled lines are behind.
    pub fn done(&self) -> bool {
        self.lines.as_ref().is_some_and(|r| self.nonblank >= r.end)
    }

    pub fn feed(&mut self, buf: &[u8]) -> Result<()> {
        if self.done() {
            return Ok(());
        }
        let mut carry = std::mem::take(&mut self.carry);
        let max = self.walk.opts.max_line_bytes;
        let r = lines::for_each_line(&mut carry, buf, max, |line| {
            self.line(line)?;
            Ok(!self.done())
        });
        self.carry = carry;
        match r? {
            Ok(_) => Ok(()),
            Err(_) => Err(lines::too_long(&self.file, self.line + 1, max)),
        }
    }

    pub fn finish_file(&mut self) -> Result<()> {
        if !self.carry.is_empty() && !self.done() {
            let line = std::mem::take(&mut self.carry);
            self.line(&line)?;
        }
        self.carry.clear();
        Ok(())
    }

    fn line(&mut self, line: &[u8]) -> Result<()> {
        self.line += 1;
        if self.syntax.holds_no_record(line, &self.file, self.line)? {
            return Ok(());
        }
        self.nonblank += 1;
        if self.lines.as_ref().is_some_and(|r| self.nonblank <= r.start) {
            return Ok(()); // before this inferrer's share of the sample
        }
        if !self.skip.is_empty() && self.skip.contains(&(self.file_index, self.line)) {
            return Ok(());
        }
        // A malformed line is recorded with its position; what it showed
        // before the fault is in the statistics, so whoever needs a clean
        // schema infers again skipping it (see `scan::infer_schema`).
        let mut stats = std::mem::take(&mut self.stats);
        match self.infer_line(line, &mut stats) {
            Ok(()) => stats.items += 1,
            Err(e) => {
                self.malformed_lines += 1;
                if self.malformed_at.len() < MALFORMED_SKIPPABLE {
                    self.malformed_at.push((self.file_index, self.line));
                }
                if self.malformed.len() < MALFORMED_KEPT {
                    self.malformed.push(Reject {
                        position: Position { file: self.file.clone(), line: self.line, path: e.path() },
                        reason: format!("{} (byte {})", e.message, e.offset + 1),
                        line: String::from_utf8_lossy(&line[..line.len().min(1024)]).into_owned(),
                    });
                }
            }
        }
        self.stats = stats;
        Ok(())
    }

    fn infer_line(&mut self, line: &[u8], into: &mut TableStats) -> Result<(), DecodeErr> {
        check_utf8(line)?;
        match self.syntax {
            Syntax::Json => self.infer_record(&mut Cursor::new(line), into),
            Syntax::Ion => self.infer_record(&mut IonCursor::new(line), into),
        }
    }

    fn infer_record<'a, C: SyntaxCursor<'a>>(&mut self, cur: &mut C, into: &mut TableStats) -> Result<(), DecodeErr> {
        let (kind, want) = (self.record, self.envelope);
        let (found, _) = record::visit(cur, kind, want, |cur| self.infer_image(cur, into))?;
        if !found && kind == RecordKind::Item {
            return Err(DecodeErr::malformed(0, "no item"));
        }
        Ok(())
    }

    /// The attributes of one image.
    fn infer_image<'a, C: SyntaxCursor<'a>>(&mut self, cur: &mut C, into: &mut TableStats) -> Result<(), DecodeErr> {
        cur.open_struct()?;
        let mut first_attr = true;
        let mut pos = 0;
        while let Some(k) = cur.next_member(&mut first_attr, &mut self.walk.scratch)? {
            self.key.clear();
            self.key.extend_from_slice(k);
            let name = std::str::from_utf8(&self.key).unwrap_or_default();
            let order = order_key(self.file_index, self.line, pos);
            self.walk.order = order;
            let s = into.attr_capped(name, order, self.walk.opts.max_columns);
            self.walk.value(cur, s, 1).map_err(|e| e.at_key(&self.key))?;
            pos += 1;
        }
        Ok(())
    }
}

/// Re-exported for the property tests.
pub use value::parse_number;

#[allow(unused_imports)]
use TextKind as _;
