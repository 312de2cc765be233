//! The seam between a line's syntax and everything that reads values.
//!
//! The column decoders ([`super::value`]), the inference walk
//! ([`super::walk`]) and the record envelope ([`super`]) are written once,
//! against [`SyntaxCursor`]: a cursor over one line that speaks in DynamoDB
//! terms (an attribute value's descriptor, a scalar's text, a map's member
//! names) rather than in tokens of one syntax. DynamoDB JSON
//! ([`crate::ddb::json::Cursor`]) and Ion text ([`super::ion::IonCursor`])
//! implement it; a third syntax is a third file. Calls are statically
//! dispatched (the decoder picks the cursor once per line), so the JSON path
//! compiles to what it was before the seam.
//!
//! The texts a cursor returns are in DynamoDB's terms too: an `S` value's
//! characters, an `N` value's number text (exact; Ion decimals are respelled
//! canonically, see [`crate::ddb::number::write_canonical`]), a `B` value's
//! base64 text.

use super::DecodeErr;
use crate::ddb::json::{Cursor, same_name};
use crate::ddb::value::write_json_bytes;
use crate::ddb::{Desc, MAX_DEPTH};

/// Which syntax an export's data files are written in (the manifest's `outputFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Syntax {
    /// `DYNAMODB_JSON`: `{"Item":{"pk":{"S":"1"}}}`.
    #[default]
    Json,
    /// `ION` (text): `$ion_1_0 {Item:{pk:"1"}}`.
    Ion,
}

impl Syntax {
    /// A line with nothing to decode: blank, or (Ion) only comments and
    /// version markers. An Ion *binary* data file is refused here, on its
    /// first line, naming the file.
    #[inline]
    pub fn holds_no_record(self, line: &[u8], file: &str, line_no: u64) -> crate::error::Result<bool> {
        match self {
            Syntax::Json => Ok(line.iter().all(u8::is_ascii_whitespace)),
            Syntax::Ion => {
                if line_no == 1 {
                    super::ion::refuse_binary(line, file)?;
                }
                Ok(super::ion::holds_no_value(line))
            }
        }
    }
}

impl From<crate::export::OutputFormat> for Syntax {
    fn from(f: crate::export::OutputFormat) -> Syntax {
        match f {
            crate::export::OutputFormat::DynamodbJson => Syntax::Json,
            crate::export::OutputFormat::Ion => Syntax::Ion,
        }
    }
}

/// A cursor over one line of an export, in DynamoDB's terms.
///
/// Structure (records, items, `M` members, `L` elements) is walked with
/// `open_struct`/`next_member` and `open_list`/`next_element`; an attribute
/// value starts with [`open_value`](Self::open_value), which says what it is,
/// and ends with [`close_value`](Self::close_value). Offsets are byte offsets
/// in the line, for messages and for reading a value twice.
pub(crate) trait SyntaxCursor<'a> {
    fn pos(&self) -> usize;
    fn set_pos(&mut self, pos: usize);
    /// Skip blanks (and comments, where the syntax has them).
    fn skip_ws(&mut self);
    /// The start of a line (Ion: past its version marker).
    fn open_line(&mut self) -> Result<(), DecodeErr>;
    /// Only blanks may follow.
    fn end(&mut self) -> Result<(), DecodeErr>;
    /// The opening of a struct: a record, an item, an `M`'s members.
    fn open_struct(&mut self) -> Result<(), DecodeErr>;
    /// The next member's name, its separator consumed; `None` once the struct is closed.
    fn next_member<'s>(&mut self, first: &mut bool, scratch: &'s mut Vec<u8>) -> Result<Option<&'s [u8]>, DecodeErr>
    where
        'a: 's;
    /// Like [`next_member`](Self::next_member), with a guess at the name
    /// (`None`: no guess). Items of a table list their attributes in the
    /// same order line after line, so the caller usually knows the name
    /// before it is read, and a syntax can check it in place instead of
    /// scanning for the name's end. A name spelled with escapes comes back as
    /// [`Member::Other`] even when it is the guess.
    #[inline(always)]
    fn next_member_guess<'s>(
        &mut self,
        first: &mut bool,
        guess: Option<&[u8]>,
        scratch: &'s mut Vec<u8>,
    ) -> Result<Member<'s>, DecodeErr>
    where
        'a: 's,
    {
        Ok(match self.next_member(first, scratch)? {
            None => Member::End,
            Some(k) if guess.is_some_and(|g| same_name(g, k)) => Member::Guessed(k),
            Some(k) => Member::Other(k),
        })
    }
    /// The opening of a list: an `L`'s elements or a set's members.
    fn open_list(&mut self) -> Result<(), DecodeErr>;
    /// Is there another element? Consumes the separator or the closing.
    fn next_element(&mut self, first: &mut bool) -> Result<bool, DecodeErr>;
    /// Start an attribute value: its descriptor. For `M`, `L` and sets the
    /// caller goes on with `open_struct` / `open_list`.
    fn open_value(&mut self, scratch: &mut Vec<u8>) -> Result<Desc, DecodeErr>;
    /// End an attribute value.
    fn close_value(&mut self) -> Result<(), DecodeErr>;
    /// The text of an `S` (its characters), `N` (number text) or `B` (base64)
    /// value, or of a set member of that type.
    fn scalar<'s>(&mut self, desc: Desc, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], DecodeErr>
    where
        'a: 's;
    /// A scalar that is not an attribute value (a Streams record's
    /// `eventName`, `SequenceNumber`, `ApproximateCreationDateTime`): a
    /// string's characters, or a number's text.
    fn plain_scalar<'s>(&mut self, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], DecodeErr>
    where
        'a: 's;
    /// A `BOOL` value.
    fn boolean(&mut self) -> Result<bool, DecodeErr>;
    /// A `NULL` value.
    fn null(&mut self) -> Result<(), DecodeErr>;
    /// Skip any value of the syntax (a record member that is not wanted),
    /// checking that it is well formed.
    fn skip_any(&mut self) -> Result<(), DecodeErr>;
    /// The attribute value from `start` to the cursor, appended as canonical
    /// DynamoDB JSON (what the catch-all and `json` columns hold). The value
    /// was read (and checked) before.
    fn write_canonical(&mut self, start: usize, out: &mut Vec<u8>) -> Result<(), DecodeErr> {
        let end = self.pos();
        self.set_pos(start);
        let mut scratch = Vec::new();
        canonical(self, &mut scratch, out, 0)?;
        debug_assert_eq!(self.pos(), end, "the value reads the same twice");
        Ok(())
    }
}

/// What [`SyntaxCursor::next_member_guess`] found: the struct's end, the
/// guessed member, or another one; the name read is in both.
pub(crate) enum Member<'s> {
    End,
    Guessed(&'s [u8]),
    Other(&'s [u8]),
}

/// A name [`SyntaxCursor::next_member_guess`] may check in place: one whose
/// spelling in a line holds no escapes (no quote, backslash or control byte).
pub(crate) fn plain_name(name: &[u8]) -> bool {
    !name.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20)
}

/// One attribute value at the cursor, written as canonical DynamoDB JSON
/// (`{"N":"600"}`); written once, for every syntax.
pub(crate) fn canonical<'a, C: SyntaxCursor<'a> + ?Sized>(
    cur: &mut C,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), DecodeErr> {
    if depth > MAX_DEPTH {
        return Err(DecodeErr::malformed(cur.pos(), format!("nested deeper than DynamoDB's {MAX_DEPTH} levels")));
    }
    let desc = cur.open_value(scratch)?;
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(desc.name().as_bytes());
    out.extend_from_slice(b"\":");
    match desc {
        Desc::S | Desc::N | Desc::B => {
            let text = cur.scalar(desc, scratch)?;
            write_json_bytes(text, out);
        }
        Desc::Bool => out.extend_from_slice(if cur.boolean()? { b"true" } else { b"false" }),
        Desc::Null => {
            cur.null()?;
            out.extend_from_slice(b"true");
        }
        Desc::M => {
            cur.open_struct()?;
            out.push(b'{');
            let mut first = true;
            let mut key = Vec::new();
            let mut n = 0;
            while let Some(k) = cur.next_member(&mut first, &mut key)? {
                if n > 0 {
                    out.push(b',');
                }
                write_json_bytes(k, out);
                out.push(b':');
                canonical(cur, scratch, out, depth + 1)?;
                n += 1;
            }
            out.push(b'}');
        }
        Desc::L | Desc::SS | Desc::NS | Desc::BS => {
            let member = desc.set_member();
            cur.open_list()?;
            out.push(b'[');
            let mut first = true;
            let mut n = 0;
            while cur.next_element(&mut first)? {
                if n > 0 {
                    out.push(b',');
                }
                match member {
                    None => canonical(cur, scratch, out, depth + 1)?,
                    Some(m) => write_json_bytes(cur.scalar(m, scratch)?, out),
                }
                n += 1;
            }
            out.push(b']');
        }
    }
    out.push(b'}');
    cur.close_value()
}

impl<'a> SyntaxCursor<'a> for Cursor<'a> {
    #[inline(always)]
    fn pos(&self) -> usize {
        Cursor::pos(self)
    }
    #[inline(always)]
    fn set_pos(&mut self, pos: usize) {
        Cursor::set_pos(self, pos)
    }
    #[inline(always)]
    fn skip_ws(&mut self) {
        Cursor::skip_ws(self)
    }
    #[inline]
    fn open_line(&mut self) -> Result<(), DecodeErr> {
        Ok(())
    }
    #[inline]
    fn end(&mut self) -> Result<(), DecodeErr> {
        Ok(Cursor::end(self)?)
    }
    #[inline(always)]
    fn open_struct(&mut self) -> Result<(), DecodeErr> {
        Ok(self.expect(b'{')?)
    }
    #[inline(always)]
    fn next_member<'s>(&mut self, first: &mut bool, scratch: &'s mut Vec<u8>) -> Result<Option<&'s [u8]>, DecodeErr>
    where
        'a: 's,
    {
        if !Cursor::next_member(self, first)? {
            return Ok(None);
        }
        let key = self.string(scratch)?;
        // `expect` needs `self` while `key` may borrow the line: both are shared borrows of 'a data.
        let key: &'s [u8] = key;
        self.expect(b':')?;
        Ok(Some(key))
    }
    #[inline(always)]
    fn next_member_guess<'s>(
        &mut self,
        first: &mut bool,
        guess: Option<&[u8]>,
        scratch: &'s mut Vec<u8>,
    ) -> Result<Member<'s>, DecodeErr>
    where
        'a: 's,
    {
        if !Cursor::next_member(self, first)? {
            return Ok(Member::End);
        }
        if let Some(name) = guess.and_then(|g| self.eat_name(g)) {
            return Ok(Member::Guessed(name));
        }
        let key = self.string(scratch)?;
        let key: &'s [u8] = key;
        self.expect(b':')?;
        Ok(Member::Other(key))
    }
    #[inline(always)]
    fn open_list(&mut self) -> Result<(), DecodeErr> {
        Ok(self.expect(b'[')?)
    }
    #[inline(always)]
    fn next_element(&mut self, first: &mut bool) -> Result<bool, DecodeErr> {
        Ok(Cursor::next_element(self, first)?)
    }
    #[inline(always)]
    fn open_value(&mut self, scratch: &mut Vec<u8>) -> Result<Desc, DecodeErr> {
        // Compact exports spell most values `{"S":"…`: take the opening in one step.
        if let Some(d) = self.compact_scalar_opening() {
            return Ok(d);
        }
        self.expect(b'{')?;
        let d = self.descriptor(scratch)?;
        self.expect(b':')?;
        Ok(d)
    }
    #[inline(always)]
    fn close_value(&mut self) -> Result<(), DecodeErr> {
        Ok(self.expect(b'}')?)
    }
    #[inline(always)]
    fn scalar<'s>(&mut self, _desc: Desc, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], DecodeErr>
    where
        'a: 's,
    {
        Ok(self.value_string(scratch)?)
    }
    fn plain_scalar<'s>(&mut self, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], DecodeErr>
    where
        'a: 's,
    {
        if self.peek() == Some(b'"') {
            return Ok(self.string(scratch)?);
        }
        let (start, end) = self.skip_value()?;
        Ok(self.slice(start, end))
    }
    #[inline]
    fn boolean(&mut self) -> Result<bool, DecodeErr> {
        Ok(Cursor::boolean(self)?)
    }
    #[inline]
    fn null(&mut self) -> Result<(), DecodeErr> {
        Ok(self.null_true()?)
    }
    fn skip_any(&mut self) -> Result<(), DecodeErr> {
        self.skip_value()?;
        Ok(())
    }
    /// DynamoDB JSON is kept verbatim.
    #[inline]
    fn write_canonical(&mut self, start: usize, out: &mut Vec<u8>) -> Result<(), DecodeErr> {
        out.extend_from_slice(self.slice(start, Cursor::pos(self)));
        Ok(())
    }
}
