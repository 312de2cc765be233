//! Ion text: the cursor behind `outputFormat: ION` exports.
//!
//! DynamoDB writes one Ion value per line, `$ion_1_0 {Item:{…}}`, with these
//! types: string → `S`, decimal (and int) → `N`, blob → `B`, bool → `BOOL`,
//! null → `NULL`, struct → `M`, list → `L`, and lists annotated
//! `$dynamodb_SS::` / `$dynamodb_NS::` / `$dynamodb_BS::` → sets. This cursor
//! reads that subset of Ion text straight from the line, like the JSON one
//! (no tree, no copies unless a string holds escapes), and implements the
//! same [`SyntaxCursor`] so every decoder works on it unchanged.
//!
//! Everything else Ion text can hold is handled on purpose, never guessed:
//!
//! | Ion | here |
//! |---|---|
//! | comments `//…`, `/*…*/`; `$ion_1_0` markers (also alone on a line) | skipped |
//! | typed nulls (`null.string`, …) | `NULL` (DynamoDB's null has no type) |
//! | ints (`42`, `1_000`, `0x1F`, `0b101`) | `N`, exact |
//! | field names as identifiers, `'quoted symbols'`, `"strings"` | names |
//! | long strings `'''…'''` (adjacent ones concatenated) | `S` |
//! | floats (`1e3`, `nan`, `+inf`), timestamps, symbol values, clobs, s-expressions, other annotations, symbol IDs (`$10`), local symbol tables | refused: the line is rejected naming the path |
//! | Ion binary (`E0 01 00 EA`) | refused, naming the file |
//!
//! Numbers never pass through a float: a decimal's digits are respelled as
//! DynamoDB's JSON export would write them ([`write_canonical`]), so an
//! attribute reads the same from an ION export as from a DYNAMODB_JSON one.

use super::DecodeErr;
use super::syntax::SyntaxCursor;
use crate::ddb::Desc;
use crate::ddb::number::{PLAIN_MAX_CHARS, write_canonical};
use crate::error::{Error, Position};

/// Ion binary's version marker.
pub(crate) const BINARY_MARKER: [u8; 4] = [0xE0, 0x01, 0x00, 0xEA];

/// Refuse a data file that holds Ion binary (checked on its first line).
pub(crate) fn refuse_binary(line: &[u8], file: &str) -> crate::error::Result<()> {
    if line.starts_with(&BINARY_MARKER) {
        return Err(Error::Decode {
            position: Position { file: file.to_string(), line: 1, path: String::new() },
            message: "this data file is Ion binary (it starts with E0 01 00 EA); dynolake reads Ion text, \
                      which is what DynamoDB's ION exports write: convert the file to Ion text first"
                .into(),
        });
    }
    Ok(())
}

/// The line holds only blanks, comments and version markers.
pub(crate) fn holds_no_value(line: &[u8]) -> bool {
    let mut cur = IonCursor::new(line);
    loop {
        cur.skip_ws();
        if cur.pos >= cur.buf.len() {
            return true;
        }
        if !cur.version_marker() {
            return false;
        }
    }
}

fn err(pos: usize, message: impl std::fmt::Display) -> DecodeErr {
    DecodeErr::malformed(pos, format!("invalid Ion: {message}"))
}

fn unsupported(pos: usize, what: &str) -> DecodeErr {
    DecodeErr::malformed(pos, format!("{what} is valid Ion but not a DynamoDB value (DynamoDB does not write it)"))
}

#[inline]
fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b'$'
}

#[inline]
fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// What may follow a number, a keyword or a blob (Ion's stop characters).
#[inline]
fn is_stop(b: Option<u8>) -> bool {
    match b {
        None => true,
        Some(b) => {
            matches!(b, b'{' | b'}' | b'[' | b']' | b'(' | b')' | b',' | b'"' | b'\'' | b'/')
                || b.is_ascii_whitespace()
                || b == 0x0b
        }
    }
}

const TYPED_NULLS: [&[u8]; 13] = [
    b"null",
    b"bool",
    b"int",
    b"float",
    b"decimal",
    b"timestamp",
    b"symbol",
    b"string",
    b"clob",
    b"blob",
    b"list",
    b"sexp",
    b"struct",
];

/// DynamoDB's set annotations.
fn set_annotation(name: &[u8]) -> Option<Desc> {
    match name {
        b"$dynamodb_SS" => Some(Desc::SS),
        b"$dynamodb_NS" => Some(Desc::NS),
        b"$dynamodb_BS" => Some(Desc::BS),
        _ => None,
    }
}

pub(crate) struct IonCursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> IonCursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        IonCursor { buf, pos: 0 }
    }

    #[inline]
    fn at(&self, i: usize) -> Option<u8> {
        self.buf.get(self.pos + i).copied()
    }

    #[inline]
    fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }

    /// The next byte after blanks and comments, not consumed.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        SyntaxCursor::skip_ws(self);
        self.at(0)
    }

    fn found(&self) -> String {
        match self.at(0) {
            Some(b) if b.is_ascii_graphic() => format!("`{}`", b as char),
            Some(b) => format!("byte 0x{b:02x}"),
            None => "the end of the line".into(),
        }
    }

    fn expect(&mut self, b: u8, wanted: &str) -> Result<(), DecodeErr> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(err(self.pos, format!("expected {wanted}, found {}", self.found())))
        }
    }

    /// Consume `$ion_1_0` if it is next (after blanks); refuse other versions.
    fn version_marker(&mut self) -> bool {
        let rest = self.rest();
        if rest.starts_with(b"$ion_1_0") && is_stop(rest.get(8).copied()) {
            self.pos += 8;
            return true;
        }
        false
    }

    /// An identifier at the cursor (`[A-Za-z_$][A-Za-z0-9_$]*`), consumed.
    fn identifier(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest();
        if !rest.first().is_some_and(|&b| is_ident_start(b)) {
            return None;
        }
        let n = rest.iter().position(|&b| !is_ident(b)).unwrap_or(rest.len());
        self.pos += n;
        Some(&rest[..n])
    }

    /// After an identifier or quoted symbol: is `::` next (an annotation)? Consumed if so.
    fn annotation_follows(&mut self) -> bool {
        let save = self.pos;
        SyntaxCursor::skip_ws(self);
        if self.rest().starts_with(b"::") {
            self.pos += 2;
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// The annotations before a value: none, or one of DynamoDB's set annotations.
    fn annotation(&mut self, scratch: &mut Vec<u8>) -> Result<Option<Desc>, DecodeErr> {
        let start = self.pos;
        let name: Vec<u8> = match self.at(0) {
            Some(b) if is_ident_start(b) => {
                let id = self.identifier().expect("an identifier starts here");
                if !self.annotation_follows() {
                    self.pos = start;
                    return Ok(None);
                }
                id.to_vec()
            }
            Some(b'\'') if !self.rest().starts_with(b"'''") => {
                let s = self.quoted(b'\'', scratch)?.to_vec();
                if !self.annotation_follows() {
                    self.pos = start;
                    return Ok(None);
                }
                s
            }
            _ => return Ok(None),
        };
        let Some(desc) = set_annotation(&name) else {
            return Err(DecodeErr::malformed(
                start,
                format!(
                    "unknown Ion annotation `{}`: DynamoDB writes only $dynamodb_SS, $dynamodb_NS and $dynamodb_BS, on lists",
                    String::from_utf8_lossy(&name)
                ),
            ));
        };
        let save = self.pos;
        let another = match self.peek() {
            Some(b) if is_ident_start(b) => self.identifier().is_some() && self.annotation_follows(),
            Some(b'\'') if !self.rest().starts_with(b"'''") => {
                self.quoted(b'\'', scratch).is_ok() && self.annotation_follows()
            }
            _ => false,
        };
        self.pos = save;
        if another {
            return Err(DecodeErr::malformed(start, "more than one annotation on a value"));
        }
        if self.peek() != Some(b'[') {
            return Err(DecodeErr::malformed(
                self.pos,
                format!("`{}::` annotates a list, found {}", String::from_utf8_lossy(&name), self.found()),
            ));
        }
        Ok(Some(desc))
    }

    /// A quoted text (`"…"` or `'…'`, by `quote`) at the cursor, unescaped.
    fn quoted<'s>(&mut self, quote: u8, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], DecodeErr>
    where
        'a: 's,
    {
        debug_assert_eq!(self.at(0), Some(quote));
        self.pos += 1;
        let start = self.pos;
        let rest = self.rest();
        match memchr::memchr2(quote, b'\\', rest) {
            Some(i) if rest[i] == quote => {
                self.pos += i + 1;
                Ok(&rest[..i])
            }
            Some(_) => {
                scratch.clear();
                self.unescape_until(quote, false, scratch)?;
                Ok(&scratch[..])
            }
            None => {
                self.pos = self.buf.len();
                Err(err(start, "unterminated string"))
            }
        }
    }

    /// Copy (unescaping) up to the closing `quote` (`'''` when `long`), consumed.
    fn unescape_until(&mut self, quote: u8, long: bool, out: &mut Vec<u8>) -> Result<(), DecodeErr> {
        let start = self.pos;
        loop {
            let rest = self.rest();
            let Some(i) = memchr::memchr2(quote, b'\\', rest) else {
                self.pos = self.buf.len();
                return Err(err(start, "unterminated string"));
            };
            out.extend_from_slice(&rest[..i]);
            self.pos += i;
            if rest[i] == quote {
                if !long {
                    self.pos += 1;
                    return Ok(());
                }
                if rest[i..].starts_with(b"'''") {
                    self.pos += 3;
                    return Ok(());
                }
                out.push(quote);
                self.pos += 1;
                continue;
            }
            self.escape(out)?;
        }
    }

    /// One escape sequence at the cursor (`\` included).
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), DecodeErr> {
        let at = self.pos;
        self.pos += 1;
        let Some(e) = self.at(0) else {
            return Err(err(at, "unterminated escape"));
        };
        self.pos += 1;
        let simple = match e {
            b'a' => 7,
            b'b' => 8,
            b't' => b'\t',
            b'n' => b'\n',
            b'f' => 12,
            b'r' => b'\r',
            b'v' => 11,
            b'0' => 0,
            b'?' | b'/' | b'"' | b'\'' | b'\\' => e,
            b'x' | b'u' | b'U' => {
                let n = match e {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let mut cp = self.hex(n, at)?;
                if (0xD800..0xDC00).contains(&cp) {
                    // A surrogate pair spelled as two escapes.
                    if e == b'u' && self.rest().starts_with(b"\\u") {
                        self.pos += 2;
                        let lo = self.hex(4, at)?;
                        if !(0xDC00..0xE000).contains(&lo) {
                            return Err(err(at, "unpaired surrogate in a \\u escape"));
                        }
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else {
                        return Err(err(at, "unpaired surrogate in an escape"));
                    }
                }
                let Some(c) = char::from_u32(cp) else {
                    return Err(err(at, format!("escape of an invalid code point 0x{cp:x}")));
                };
                let mut tmp = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                return Ok(());
            }
            // A backslash before a line break continues the string (only in long strings).
            b'\n' => return Ok(()),
            b'\r' => {
                if self.at(0) == Some(b'\n') {
                    self.pos += 1;
                }
                return Ok(());
            }
            other => return Err(err(at, format!("bad escape `\\{}`", other as char))),
        };
        out.push(simple);
        Ok(())
    }

    fn hex(&mut self, n: usize, at: usize) -> Result<u32, DecodeErr> {
        let digits = self.buf.get(self.pos..self.pos + n).ok_or_else(|| err(at, "short escape"))?;
        let v = std::str::from_utf8(digits).ok().and_then(|s| u32::from_str_radix(s, 16).ok());
        let v = v.filter(|_| digits.iter().all(u8::is_ascii_hexdigit)).ok_or_else(|| err(at, "bad hex escape"))?;
        self.pos += n;
        Ok(v)
    }

    /// A string value: `"…"`, or `'''…'''` pieces (concatenated).
    fn string<'s>(&mut self, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], DecodeErr>
    where
        'a: 's,
    {
        match self.peek() {
            Some(b'"') => self.quoted(b'"', scratch),
            Some(b'\'') if self.rest().starts_with(b"'''") => {
                scratch.clear();
                while self.rest().starts_with(b"'''") {
                    self.pos += 3;
                    self.unescape_until(b'\'', true, scratch)?;
                    // Adjacent long strings are one string.
                    let save = self.pos;
                    if self.peek() != Some(b'\'') || !self.rest().starts_with(b"'''") {
                        self.pos = save;
                        break;
                    }
                }
                Ok(&scratch[..])
            }
            _ => Err(self.wrong_type("a string (S)")),
        }
    }

    /// A number token: `N` text, respelled canonically when needed.
    fn number<'s>(&mut self, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], DecodeErr>
    where
        'a: 's,
    {
        SyntaxCursor::skip_ws(self);
        let start = self.pos;
        let rest = self.rest();
        let neg = rest.first() == Some(&b'-');
        let body = &rest[usize::from(neg)..];
        if !body.first().is_some_and(u8::is_ascii_digit) {
            return Err(self.wrong_type("a number (N)"));
        }
        if body.len() > 1 && body[0] == b'0' && matches!(body[1], b'x' | b'X' | b'b' | b'B') {
            return self.radix_int(start, neg, scratch);
        }
        // Digits (underscores between them), an optional fraction, an optional `d` exponent.
        let mut i = 0;
        let mut underscores = false;
        let digit_run = |i: &mut usize, underscores: &mut bool| -> bool {
            let s = *i;
            while *i < body.len() {
                match body[*i] {
                    b'0'..=b'9' => *i += 1,
                    b'_' if *i > s && body.get(*i + 1).is_some_and(u8::is_ascii_digit) => {
                        *underscores = true;
                        *i += 1;
                    }
                    _ => break,
                }
            }
            *i > s
        };
        digit_run(&mut i, &mut underscores);
        let int_len = i;
        if int_len > 1 && body[0] == b'0' {
            return Err(err(start, "a number with a leading zero"));
        }
        match body.get(i) {
            Some(b'-') | Some(b'T') if int_len == 4 || body[i] == b'T' => {
                return Err(unsupported(start, "an Ion timestamp"));
            }
            _ => {}
        }
        let mut plain = !underscores;
        let mut fraction_ends_zero = false;
        let mut has_point = false;
        if body.get(i) == Some(&b'.') {
            has_point = true;
            i += 1;
            let f = i;
            digit_run(&mut i, &mut underscores);
            fraction_ends_zero = i == f || body[i - 1] == b'0';
            plain &= !underscores;
        }
        match body.get(i) {
            Some(b'd' | b'D') => {
                plain = false;
                i += 1;
                if matches!(body.get(i), Some(b'+' | b'-')) {
                    i += 1;
                }
                let e = i;
                while body.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                if i == e {
                    return Err(err(start, "a decimal exponent without digits"));
                }
            }
            Some(b'e' | b'E') => {
                return Err(DecodeErr::malformed(
                    start,
                    "an Ion float (`e` exponent) is not a DynamoDB number (DynamoDB writes decimals); \
                     it is not read, to keep numbers exact",
                ));
            }
            _ => {}
        }
        if !is_stop(body.get(i).copied()) {
            self.pos = start + usize::from(neg) + i;
            return Err(err(self.pos, format!("malformed number, found {}", self.found())));
        }
        let text = &rest[..usize::from(neg) + i];
        self.pos = start + text.len();
        // Already DynamoDB's spelling: no exponent, no trailing fraction zero, not `-0`, short.
        let zero = text.iter().all(|&b| matches!(b, b'0' | b'-' | b'.'));
        if plain && !zero && text.len() <= PLAIN_MAX_CHARS {
            if !has_point || !fraction_ends_zero {
                return Ok(text);
            }
            // `103.`, how DynamoDB writes integers: the digits before the point.
            if text.last() == Some(&b'.') {
                return Ok(&text[..text.len() - 1]);
            }
        }
        scratch.clear();
        let cleaned: Vec<u8>;
        let spelled = if underscores {
            cleaned = text.iter().copied().filter(|&b| b != b'_').collect();
            &cleaned[..]
        } else {
            text
        };
        if !write_canonical(spelled, scratch) {
            return Err(err(start, format!("malformed number `{}`", String::from_utf8_lossy(text))));
        }
        Ok(&scratch[..])
    }

    /// `0x…` or `0b…` (underscores allowed), written in decimal.
    fn radix_int<'s>(&mut self, start: usize, neg: bool, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], DecodeErr> {
        self.pos = start + usize::from(neg) + 2;
        let radix = if matches!(self.buf[self.pos - 1], b'x' | b'X') { 16 } else { 2 };
        let mut v: u128 = 0;
        let mut n = 0;
        while let Some(b) = self.at(0) {
            if b == b'_' {
                self.pos += 1;
                continue;
            }
            let Some(d) = (b as char).to_digit(radix) else { break };
            v = v
                .checked_mul(u128::from(radix))
                .and_then(|v| v.checked_add(u128::from(d)))
                .ok_or_else(|| err(start, "an int too large for DynamoDB's 38 digits"))?;
            n += 1;
            self.pos += 1;
        }
        if n == 0 || !is_stop(self.at(0)) {
            return Err(err(start, "malformed int"));
        }
        scratch.clear();
        if neg && v != 0 {
            scratch.push(b'-');
        }
        scratch.extend_from_slice(v.to_string().as_bytes());
        if v.to_string().len() > 38 {
            return Err(err(start, "an int too large for DynamoDB's 38 digits"));
        }
        Ok(&scratch[..])
    }

    /// A blob's base64 text (`{{ … }}`, blanks inside dropped).
    fn blob<'s>(&mut self, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], DecodeErr>
    where
        'a: 's,
    {
        if self.peek() != Some(b'{') || self.at(1) != Some(b'{') {
            return Err(self.wrong_type("a blob (B)"));
        }
        let start = self.pos;
        self.pos += 2;
        let rest = self.rest();
        let Some(end) = memchr::memchr(b'}', rest) else {
            return Err(err(start, "unterminated blob"));
        };
        let inner = &rest[..end];
        let trimmed = inner.trim_ascii();
        if trimmed.first().is_some_and(|&b| b == b'"' || b == b'\'') {
            return Err(unsupported(start, "an Ion clob"));
        }
        if rest.get(end + 1) != Some(&b'}') {
            return Err(err(start + 2 + end, "a blob ends with `}}`"));
        }
        self.pos += end + 2;
        if !inner.iter().any(|b| b.is_ascii_whitespace()) {
            return Ok(inner);
        }
        scratch.clear();
        scratch.extend(inner.iter().copied().filter(|b| !b.is_ascii_whitespace()));
        Ok(&scratch[..])
    }

    /// A keyword (`true`, `null.string`, …) at the cursor, checked to end there.
    fn keyword(&mut self) -> Option<&'a [u8]> {
        let start = self.pos;
        let id = self.identifier()?;
        if id == b"null" && self.at(0) == Some(b'.') {
            self.pos += 1;
            let ty = self.identifier().unwrap_or_default();
            if !TYPED_NULLS.contains(&ty) {
                self.pos = start;
                return None;
            }
            let buf = self.buf;
            return is_stop(self.at(0)).then(|| &buf[start..self.pos]);
        }
        if !is_stop(self.at(0)) {
            self.pos = start;
            return None;
        }
        Some(id)
    }

    /// The error for a value of the wrong kind at the cursor, naming what it is.
    fn wrong_type(&mut self, wanted: &str) -> DecodeErr {
        let at = self.pos;
        let what = match self.peek() {
            Some(b'"') => "a string",
            Some(b'\'') if self.rest().starts_with(b"'''") => "a string",
            Some(b'\'') => "a symbol",
            Some(b'{') if self.at(1) == Some(b'{') => "a blob",
            Some(b'{') => "a struct",
            Some(b'[') => "a list",
            Some(b'(') => "an s-expression",
            Some(b'-' | b'0'..=b'9') => "a number",
            Some(b) if is_ident_start(b) => "a symbol or keyword",
            None => "the end of the line",
            _ => "something else",
        };
        err(at, format!("expected {wanted}, found {what}"))
    }

    /// Skip one value of any Ion type (annotations included), checking its structure.
    fn skip(&mut self, depth: usize) -> Result<(), DecodeErr> {
        if depth > 256 {
            return Err(err(self.pos, "nested too deeply"));
        }
        let mut scratch = Vec::new();
        loop {
            // Annotations: any, here (this value is not read).
            let save = self.pos;
            match self.peek() {
                Some(b) if is_ident_start(b) => {
                    self.identifier();
                    if self.annotation_follows() {
                        continue;
                    }
                }
                Some(b'\'') if !self.rest().starts_with(b"'''") => {
                    self.quoted(b'\'', &mut scratch)?;
                    if self.annotation_follows() {
                        continue;
                    }
                }
                _ => {}
            }
            self.pos = save;
            break;
        }
        match self.peek() {
            Some(b'"') | Some(b'\'') => {
                if self.rest().starts_with(b"'''") || self.at(0) == Some(b'"') {
                    self.string(&mut scratch)?;
                } else {
                    self.quoted(b'\'', &mut scratch)?;
                }
            }
            Some(b'{') if self.at(1) == Some(b'{') => {
                let start = self.pos;
                self.pos += 2;
                let rest = self.rest();
                match memchr::memmem::find(rest, b"}}") {
                    Some(i) => self.pos += i + 2,
                    None => return Err(err(start, "unterminated blob or clob")),
                }
            }
            Some(b'{') => {
                SyntaxCursor::open_struct(self)?;
                let mut first = true;
                while SyntaxCursor::next_member(self, &mut first, &mut scratch)?.is_some() {
                    self.skip(depth + 1)?;
                }
            }
            Some(b'[') => {
                self.pos += 1;
                let mut first = true;
                while SyntaxCursor::next_element(self, &mut first)? {
                    self.skip(depth + 1)?;
                }
            }
            Some(b'(') => {
                self.pos += 1;
                loop {
                    match self.peek() {
                        Some(b')') => {
                            self.pos += 1;
                            break;
                        }
                        None => return Err(err(self.pos, "unterminated s-expression")),
                        Some(b)
                            if b"!#%&*+-./;<=>?@^`|~".contains(&b)
                                && !self.at(1).is_some_and(|c| c.is_ascii_digit()) =>
                        {
                            self.pos += 1;
                        }
                        _ => self.skip(depth + 1)?,
                    }
                }
            }
            Some(_) => {
                // A scalar token: number, timestamp, keyword, symbol.
                let start = self.pos;
                while !is_stop(self.at(0)) {
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(err(start, format!("expected a value, found {}", self.found())));
                }
            }
            None => return Err(err(self.pos, "expected a value, found the end of the line")),
        }
        Ok(())
    }
}

impl<'a> SyntaxCursor<'a> for IonCursor<'a> {
    #[inline]
    fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    fn set_pos(&mut self, pos: usize) {
        self.pos = pos;
    }

    #[inline]
    fn skip_ws(&mut self) {
        loop {
            while let Some(&b) = self.buf.get(self.pos) {
                if b == b' ' || b == b'\t' || b == b'\n' || b == b'\r' || b == 0x0b || b == 0x0c {
                    self.pos += 1;
                } else {
                    break;
                }
            }
            match (self.at(0), self.at(1)) {
                (Some(b'/'), Some(b'/')) => self.pos = self.buf.len(),
                (Some(b'/'), Some(b'*')) => match memchr::memmem::find(&self.buf[self.pos + 2..], b"*/") {
                    Some(i) => self.pos += 2 + i + 2,
                    None => self.pos = self.buf.len(),
                },
                _ => return,
            }
        }
    }

    fn open_line(&mut self) -> Result<(), DecodeErr> {
        loop {
            self.skip_ws();
            if !self.version_marker() {
                break;
            }
        }
        let rest = self.rest();
        if rest.starts_with(b"$ion_") && rest.get(5).is_some_and(u8::is_ascii_digit) {
            return Err(err(self.pos, "an Ion version other than 1.0"));
        }
        if rest.starts_with(b"$ion_symbol_table") {
            return Err(unsupported(self.pos, "a local symbol table"));
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), DecodeErr> {
        if self.peek().is_some() {
            return Err(err(self.pos, format!("expected the end of the line, found {}", self.found())));
        }
        Ok(())
    }

    #[inline]
    fn open_struct(&mut self) -> Result<(), DecodeErr> {
        if self.peek() == Some(b'{') && self.at(1) != Some(b'{') {
            self.pos += 1;
            return Ok(());
        }
        Err(self.wrong_type("a struct"))
    }

    fn next_member<'s>(&mut self, first: &mut bool, scratch: &'s mut Vec<u8>) -> Result<Option<&'s [u8]>, DecodeErr>
    where
        'a: 's,
    {
        // DynamoDB writes `{name:…,name:…}`: take `,name:` in one step when the
        // name is a plain identifier (not `$…`, which may be a symbol ID).
        let (buf, mut i) = (self.buf, self.pos);
        if !*first && buf.get(i) == Some(&b',') {
            i += 1;
        }
        if (*first || i > self.pos) && buf.get(i).is_some_and(|&c| is_ident_start(c) && c != b'$') {
            let start = i;
            while buf.get(i).is_some_and(|&c| is_ident(c)) {
                i += 1;
            }
            if buf.get(i) == Some(&b':') && buf.get(i + 1) != Some(&b':') {
                self.pos = i + 1;
                *first = false;
                return Ok(Some(&buf[start..i]));
            }
        }
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') if !*first => {
                self.pos += 1;
                if self.peek() == Some(b'}') {
                    return Err(err(self.pos, "a field name after `,`"));
                }
            }
            _ if !*first => return Err(err(self.pos, format!("expected `,` or `}}`, found {}", self.found()))),
            _ => {}
        }
        *first = false;
        let at = self.pos;
        let name: &'s [u8] = match self.at(0) {
            Some(b'"') => self.quoted(b'"', scratch)?,
            Some(b'\'') if self.rest().starts_with(b"'''") => self.string(scratch)?,
            Some(b'\'') => self.quoted(b'\'', scratch)?,
            Some(b) if is_ident_start(b) => {
                let id = self.identifier().expect("an identifier starts here");
                if id.len() > 1 && id[0] == b'$' && id[1..].iter().all(u8::is_ascii_digit) {
                    return Err(unsupported(at, "a symbol ID (a field name that needs a symbol table)"));
                }
                id
            }
            _ => return Err(err(at, format!("expected a field name, found {}", self.found()))),
        };
        self.expect(b':', "`:` after a field name")?;
        if self.at(0) == Some(b':') {
            return Err(err(self.pos, "an annotated field name"));
        }
        Ok(Some(name))
    }

    #[inline]
    fn open_list(&mut self) -> Result<(), DecodeErr> {
        if self.peek() == Some(b'[') {
            self.pos += 1;
            return Ok(());
        }
        Err(self.wrong_type("a list"))
    }

    #[inline]
    fn next_element(&mut self, first: &mut bool) -> Result<bool, DecodeErr> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                Ok(false)
            }
            Some(b',') if !*first => {
                self.pos += 1;
                if self.peek() == Some(b']') {
                    return Err(err(self.pos, "a value after `,`"));
                }
                Ok(true)
            }
            Some(_) if *first => {
                *first = false;
                Ok(true)
            }
            _ => Err(err(self.pos, format!("expected `,` or `]`, found {}", self.found()))),
        }
    }

    fn open_value(&mut self, scratch: &mut Vec<u8>) -> Result<Desc, DecodeErr> {
        // The common openings, right at the cursor (compact lines).
        match self.at(0) {
            Some(b'"') => return Ok(Desc::S),
            Some(b'0'..=b'9') => return Ok(Desc::N),
            Some(b'[') => return Ok(Desc::L),
            Some(b'{') => return Ok(if self.at(1) == Some(b'{') { Desc::B } else { Desc::M }),
            _ => {}
        }
        let Some(b) = self.peek() else {
            return Err(err(self.pos, "expected a value, found the end of the line"));
        };
        if (is_ident_start(b) || b == b'\'')
            && let Some(set) = self.annotation(scratch)?
        {
            return Ok(set);
        }
        let b = self.at(0).expect("peeked");
        Ok(match b {
            b'"' => Desc::S,
            b'\'' if self.rest().starts_with(b"'''") => Desc::S,
            b'\'' => return Err(unsupported(self.pos, "an Ion symbol value")),
            b'{' if self.at(1) == Some(b'{') => Desc::B,
            b'{' => Desc::M,
            b'[' => Desc::L,
            b'(' => return Err(unsupported(self.pos, "an Ion s-expression")),
            b'-' | b'0'..=b'9' => {
                if self.rest().starts_with(b"-inf") {
                    return Err(unsupported(self.pos, "an Ion float (`-inf`)"));
                }
                Desc::N
            }
            b'+' if self.rest().starts_with(b"+inf") => return Err(unsupported(self.pos, "an Ion float (`+inf`)")),
            _ => {
                let at = self.pos;
                let kw = self.keyword();
                self.pos = at;
                match kw {
                    Some(b"true" | b"false") => Desc::Bool,
                    Some(k) if k.starts_with(b"null") => Desc::Null,
                    Some(b"nan") => return Err(unsupported(at, "an Ion float (`nan`)")),
                    Some(_) => return Err(unsupported(at, "an Ion symbol value")),
                    None => return Err(err(at, format!("expected a value, found {}", self.found()))),
                }
            }
        })
    }

    #[inline]
    fn close_value(&mut self) -> Result<(), DecodeErr> {
        Ok(())
    }

    #[inline]
    fn scalar<'s>(&mut self, desc: Desc, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], DecodeErr>
    where
        'a: 's,
    {
        match desc {
            Desc::N => self.number(scratch),
            Desc::B => self.blob(scratch),
            _ => self.string(scratch),
        }
    }

    fn plain_scalar<'s>(&mut self, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], DecodeErr>
    where
        'a: 's,
    {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.number(scratch),
            _ => self.string(scratch),
        }
    }

    fn boolean(&mut self) -> Result<bool, DecodeErr> {
        self.skip_ws();
        let at = self.pos;
        match self.keyword() {
            Some(b"true") => Ok(true),
            Some(b"false") => Ok(false),
            _ => {
                self.pos = at;
                Err(self.wrong_type("`true` or `false`"))
            }
        }
    }

    fn null(&mut self) -> Result<(), DecodeErr> {
        self.skip_ws();
        let at = self.pos;
        match self.keyword() {
            Some(k) if k.starts_with(b"null") => Ok(()),
            _ => {
                self.pos = at;
                Err(self.wrong_type("null"))
            }
        }
    }

    fn skip_any(&mut self) -> Result<(), DecodeErr> {
        self.skip(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> Result<String, String> {
        let mut c = IonCursor::new(text.as_bytes());
        let mut s = Vec::new();
        c.number(&mut s).map(|t| String::from_utf8(t.to_vec()).unwrap()).map_err(|e| e.message)
    }

    #[test]
    fn numbers_in_every_spelling() {
        for (i, o) in [
            ("103.", "103"),
            ("6d2", "600"),
            ("2d3", "2000"),
            ("1.5d-3", "0.0015"),
            ("15D-4", "0.0015"),
            ("0.0015", "0.0015"),
            ("-0d0", "0"),
            ("-0", "0"),
            ("0.", "0"),
            ("1_000", "1000"),
            ("0x1F", "31"),
            ("-0b101", "-5"),
            ("1702062202420", "1702062202420"),
            ("3937d1", "39370"),
            ("99.990", "99.99"),
            ("1d125", "1E+125"),
            ("-1d-130", "-1E-130"),
        ] {
            assert_eq!(n(i).as_deref(), Ok(o), "{i}");
        }
        for bad in ["007", "1e3", "1.5E2", "2007-01-01T", "2007T", "1d", "12abc", "1__0", "0x"] {
            assert!(n(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn strings_names_and_blobs() {
        let mut s = Vec::new();
        let mut c = IonCursor::new(br#""a\"b\x41\u00e9\U0001F381" '''x''' /* c */ '''y''' {{ aGVs bG8= }}"#);
        assert_eq!(c.string(&mut s).unwrap(), "a\"bAé🎁".as_bytes());
        assert_eq!(c.string(&mut s).unwrap(), b"xy");
        assert_eq!(c.blob(&mut s).unwrap(), b"aGVsbG8=");
        let mut c = IonCursor::new(br#"{a:1, 'b c':2, "d\te":3}"#);
        c.open_struct().unwrap();
        let mut first = true;
        let mut names = Vec::new();
        while let Some(k) = c.next_member(&mut first, &mut s).unwrap() {
            names.push(String::from_utf8(k.to_vec()).unwrap());
            c.skip_any().unwrap();
        }
        assert_eq!(names, ["a", "b c", "d\te"]);
    }

    #[test]
    fn descriptors() {
        let mut s = Vec::new();
        for (text, d) in [
            ("\"x\"", Desc::S),
            ("1.5", Desc::N),
            ("{{}}", Desc::B),
            ("true", Desc::Bool),
            ("null", Desc::Null),
            ("null.string", Desc::Null),
            ("{}", Desc::M),
            ("[]", Desc::L),
            ("$dynamodb_SS::[\"a\"]", Desc::SS),
            ("$dynamodb_NS :: [1]", Desc::NS),
            ("'$dynamodb_BS'::[{{AA==}}]", Desc::BS),
        ] {
            assert_eq!(IonCursor::new(text.as_bytes()).open_value(&mut s).unwrap(), d, "{text}");
        }
        for bad in ["foo", "'sym'", "nan", "+inf", "(a b)", "other::[1]", "$dynamodb_SS::\"a\"", "null.nothing"] {
            assert!(IonCursor::new(bad.as_bytes()).open_value(&mut s).is_err(), "{bad}");
        }
    }

    #[test]
    fn markers_and_binary() {
        assert!(holds_no_value(b"$ion_1_0"));
        assert!(holds_no_value(b"  // a comment"));
        assert!(!holds_no_value(b"$ion_1_0 {Item:{}}"));
        assert!(refuse_binary(&[0xE0, 0x01, 0x00, 0xEA, 0xEE], "f.ion.gz").is_err());
    }
}
