//! A minimal, allocation-free JSON cursor over one line.
//!
//! DynamoDB JSON is a narrow dialect: objects keyed by attribute names whose
//! values are one-member objects `{"<descriptor>": value}`. The decoders walk
//! it with this cursor and write straight into column buffers, so no tree is
//! built per item. Strings without escapes are returned as slices of the input.

use super::Desc;

/// A failure at a byte offset of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub offset: usize,
    pub message: String,
}

pub type JResult<T> = Result<T, JsonError>;

pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    pub fn set_pos(&mut self, pos: usize) {
        self.pos = pos;
    }

    #[inline]
    pub fn slice(&self, from: usize, to: usize) -> &'a [u8] {
        &self.buf[from..to]
    }

    pub fn err<T>(&self, message: impl Into<String>) -> JResult<T> {
        Err(JsonError { offset: self.pos, message: message.into() })
    }

    #[inline]
    pub fn skip_ws(&mut self) {
        while let Some(&b) = self.buf.get(self.pos) {
            if b == b' ' || b == b'\n' || b == b'\r' || b == b'\t' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// The next non-blank byte, not consumed.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        match self.buf.get(self.pos) {
            Some(&b) if b > b' ' => Some(b),
            _ => {
                self.skip_ws();
                self.buf.get(self.pos).copied()
            }
        }
    }

    #[inline(always)]
    pub fn expect(&mut self, b: u8) -> JResult<()> {
        // Exports are compact JSON: the byte is usually right there.
        if self.buf.get(self.pos) == Some(&b) {
            self.pos += 1;
            return Ok(());
        }
        self.expect_slow(b)
    }

    /// Blanks first, or an error: kept out of line so `expect` inlines.
    #[cold]
    #[inline(never)]
    fn expect_slow(&mut self, b: u8) -> JResult<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            self.unexpected(&format!("`{}`", b as char))
        }
    }

    /// Consume `b` if it is next.
    #[inline]
    pub fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub fn unexpected<T>(&self, wanted: &str) -> JResult<T> {
        match self.buf.get(self.pos) {
            Some(&b) => self.err(format!("invalid JSON: expected {wanted}, found `{}`", b as char)),
            None => self.err(format!("invalid JSON: expected {wanted}, found the end of the line")),
        }
    }

    /// After `{` or `,` in an object: is there another member? Consumes `}` or `,`.
    #[inline]
    pub fn next_member(&mut self, first: &mut bool) -> JResult<bool> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                Ok(false)
            }
            Some(b',') if !*first => {
                self.pos += 1;
                Ok(true)
            }
            Some(b'"') if *first => {
                *first = false;
                Ok(true)
            }
            _ => self.unexpected(if *first { "`\"` or `}`" } else { "`,` or `}`" }),
        }
    }

    /// Like `next_member`, for arrays.
    #[inline]
    pub fn next_element(&mut self, first: &mut bool) -> JResult<bool> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                Ok(false)
            }
            Some(b',') if !*first => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) if *first => {
                *first = false;
                Ok(true)
            }
            _ => self.unexpected("`,` or `]`"),
        }
    }

    /// A string; returns the raw bytes between the quotes when there are no
    /// escapes, else unescapes into `scratch` and returns that.
    #[inline]
    pub fn string<'s>(&mut self, scratch: &'s mut Vec<u8>) -> JResult<&'s [u8]>
    where
        'a: 's,
    {
        self.expect(b'"')?;
        let start = self.pos;
        match quote_or_backslash(&self.buf[start..]) {
            Some(i) if self.buf[start + i] == b'"' => {
                self.pos = start + i + 1;
                Ok(&self.buf[start..start + i])
            }
            Some(i) => {
                scratch.clear();
                scratch.extend_from_slice(&self.buf[start..start + i]);
                self.pos = start + i;
                self.unescape_rest(scratch)?;
                Ok(&scratch[..])
            }
            None => {
                self.pos = self.buf.len();
                self.err("invalid JSON: unterminated string")
            }
        }
    }

    /// [`string`](Self::string) for values, inlined where they are decoded:
    /// a string without escapes right at the cursor is taken here; anything
    /// else (blanks, escapes, an error) goes through `string`.
    #[inline(always)]
    pub fn value_string<'s>(&mut self, scratch: &'s mut Vec<u8>) -> JResult<&'s [u8]>
    where
        'a: 's,
    {
        if self.buf.get(self.pos) == Some(&b'"') {
            let start = self.pos + 1;
            if let Some(i) = quote_or_backslash(&self.buf[start..])
                && self.buf[start + i] == b'"'
            {
                self.pos = start + i + 1;
                return Ok(&self.buf[start..start + i]);
            }
        }
        self.string(scratch)
    }

    fn unescape_rest(&mut self, out: &mut Vec<u8>) -> JResult<()> {
        loop {
            let rest = &self.buf[self.pos..];
            let Some(i) = memchr::memchr2(b'"', b'\\', rest) else {
                self.pos = self.buf.len();
                return self.err("invalid JSON: unterminated string");
            };
            out.extend_from_slice(&rest[..i]);
            self.pos += i;
            if self.buf[self.pos] == b'"' {
                self.pos += 1;
                return Ok(());
            }
            self.pos += 1; // the backslash
            let Some(&e) = self.buf.get(self.pos) else {
                return self.err("invalid JSON: unterminated escape");
            };
            self.pos += 1;
            match e {
                b'"' => out.push(b'"'),
                b'\\' => out.push(b'\\'),
                b'/' => out.push(b'/'),
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'u' => {
                    let mut cp = self.hex4()?;
                    if (0xD800..0xDC00).contains(&cp) {
                        if self.buf.get(self.pos) == Some(&b'\\') && self.buf.get(self.pos + 1) == Some(&b'u') {
                            self.pos += 2;
                            let lo = self.hex4()?;
                            if !(0xDC00..0xE000).contains(&lo) {
                                return self.err("invalid JSON: unpaired surrogate in \\u escape");
                            }
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        } else {
                            return self.err("invalid JSON: unpaired surrogate in \\u escape");
                        }
                    } else if (0xDC00..0xE000).contains(&cp) {
                        return self.err("invalid JSON: unpaired surrogate in \\u escape");
                    }
                    let c = char::from_u32(cp).unwrap_or('\u{fffd}');
                    let mut tmp = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
                other => return self.err(format!("invalid JSON: bad escape `\\{}`", other as char)),
            }
        }
    }

    fn hex4(&mut self) -> JResult<u32> {
        let Some(h) = self.buf.get(self.pos..self.pos + 4) else {
            return self.err("invalid JSON: short \\u escape");
        };
        let s = std::str::from_utf8(h).ok().and_then(|s| u32::from_str_radix(s, 16).ok());
        match s {
            Some(v) => {
                self.pos += 4;
                Ok(v)
            }
            None => self.err("invalid JSON: bad \\u escape"),
        }
    }

    /// The member name `"name":` right at the cursor (compact, no blanks),
    /// consumed; returns the name as it stands in the line. `name` must be
    /// [plain](crate::decode) (no quote, backslash or control byte), else a
    /// match would not be its spelling.
    #[inline(always)]
    pub fn eat_name(&mut self, name: &[u8]) -> Option<&'a [u8]> {
        let n = name.len();
        let rest = self.buf.get(self.pos..self.pos + n + 3)?;
        if rest[0] == b'"' && rest[n + 1] == b'"' && rest[n + 2] == b':' && same_name(&rest[1..n + 1], name) {
            self.pos += n + 3;
            Some(&rest[1..n + 1])
        } else {
            None
        }
    }

    /// A type descriptor written plainly (`"S"`, `"BOOL"`, …), consumed; `None`
    /// (nothing consumed) for anything else, which the caller reads the slow way.
    #[inline]
    pub fn descriptor_fast(&mut self) -> Option<Desc> {
        let rest = self.buf.get(self.pos..)?;
        let (d, n) = match rest {
            [b'"', b'S', b'"', ..] => (Desc::S, 3),
            [b'"', b'N', b'"', ..] => (Desc::N, 3),
            [b'"', b'M', b'"', ..] => (Desc::M, 3),
            [b'"', b'L', b'"', ..] => (Desc::L, 3),
            [b'"', b'B', b'"', ..] => (Desc::B, 3),
            [b'"', b'S', b'S', b'"', ..] => (Desc::SS, 4),
            [b'"', b'N', b'S', b'"', ..] => (Desc::NS, 4),
            [b'"', b'B', b'S', b'"', ..] => (Desc::BS, 4),
            [b'"', b'B', b'O', b'O', b'L', b'"', ..] => (Desc::Bool, 6),
            [b'"', b'N', b'U', b'L', b'L', b'"', ..] => (Desc::Null, 6),
            _ => return None,
        };
        self.pos += n;
        Some(d)
    }

    /// `{"S":`, `{"N":` or `{"B":` right at the cursor (no blanks), followed by
    /// the value's opening quote: consumes up to the colon and returns the
    /// descriptor. `None` (nothing consumed) for anything else.
    #[inline(always)]
    pub fn compact_scalar_opening(&mut self) -> Option<Desc> {
        let rest = self.buf.get(self.pos..self.pos + 6)?;
        if rest[0] != b'{' || rest[1] != b'"' || rest[3] != b'"' || rest[4] != b':' || rest[5] != b'"' {
            return None;
        }
        let d = match rest[2] {
            b'S' => Desc::S,
            b'N' => Desc::N,
            b'B' => Desc::B,
            _ => return None,
        };
        self.pos += 5;
        Some(d)
    }

    /// A descriptor (`"S"`, `"N"`, …) after the opening `{` of an attribute value.
    #[inline]
    pub fn descriptor(&mut self, scratch: &mut Vec<u8>) -> JResult<Desc> {
        // Every value has one: match the common spellings byte by byte.
        if let Some(d) = self.descriptor_fast() {
            return Ok(d);
        }
        let d = self.string(scratch)?;
        match Desc::parse(d) {
            Some(x) => Ok(x),
            None => self.err(format!(
                "unknown type descriptor `{}`; expected S, N, B, BOOL, NULL, M, L, SS, NS or BS",
                String::from_utf8_lossy(d)
            )),
        }
    }

    /// `NULL`'s value, which must be `true`.
    #[inline]
    pub fn null_true(&mut self) -> JResult<()> {
        if self.boolean()? { Ok(()) } else { self.err("NULL must be `true`") }
    }

    /// `true` or `false`.
    pub fn boolean(&mut self) -> JResult<bool> {
        self.skip_ws();
        let rest = &self.buf[self.pos..];
        if rest.starts_with(b"true") {
            self.pos += 4;
            Ok(true)
        } else if rest.starts_with(b"false") {
            self.pos += 5;
            Ok(false)
        } else {
            self.unexpected("`true` or `false`")
        }
    }

    /// Skip any JSON value, checking that it is well formed; returns its span.
    pub fn skip_value(&mut self) -> JResult<(usize, usize)> {
        self.skip_ws();
        let start = self.pos;
        let mut scratch = Vec::new();
        self.skip_inner(&mut scratch, 0)?;
        Ok((start, self.pos))
    }

    fn skip_inner(&mut self, scratch: &mut Vec<u8>, depth: usize) -> JResult<()> {
        if depth > 256 {
            return self.err("invalid JSON: nested too deeply");
        }
        match self.peek() {
            Some(b'"') => {
                self.string(scratch)?;
            }
            Some(b'{') => {
                // Most skipped values are compact scalars, `{"S":"…"}`: the
                // string, then the closing brace. Anything else (a second
                // member, blanks) goes the general way from the start.
                let at = self.pos;
                if self.compact_scalar_opening().is_some() {
                    self.string(scratch)?;
                    if self.buf.get(self.pos) == Some(&b'}') {
                        self.pos += 1;
                        return Ok(());
                    }
                    self.pos = at;
                }
                self.pos += 1;
                let mut first = true;
                while self.next_member(&mut first)? {
                    self.string(scratch)?;
                    self.expect(b':')?;
                    self.skip_inner(scratch, depth + 1)?;
                }
            }
            Some(b'[') => {
                self.pos += 1;
                let mut first = true;
                while self.next_element(&mut first)? {
                    self.skip_inner(scratch, depth + 1)?;
                }
            }
            Some(b't') | Some(b'f') => {
                self.boolean()?;
            }
            Some(b'n') if self.buf[self.pos..].starts_with(b"null") => self.pos += 4,
            Some(b'-' | b'0'..=b'9') => {
                while let Some(&b) = self.buf.get(self.pos) {
                    if b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E') {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
            }
            _ => return self.unexpected("a JSON value"),
        }
        Ok(())
    }

    /// Only blanks may follow.
    pub fn end(&mut self) -> JResult<()> {
        if self.peek().is_some() {
            return self.unexpected("the end of the line");
        }
        Ok(())
    }
}

/// Byte-slice equality for the short names of attributes and members, without
/// a call to `memcmp` (this runs once per attribute of every item).
#[inline(always)]
pub fn same_name(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("eight bytes"));
    match n {
        0..8 => a.iter().zip(b).all(|(x, y)| x == y),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// The first `"` or `\` in `s`. Most strings of an export are short (type
/// descriptors, names, codes): eight bytes at a time with word arithmetic
/// beats setting up a vector search; longer strings go to `memchr`.
#[inline]
fn quote_or_backslash(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Bytes equal to `b` get their high bit set (the lowest such byte is exact).
    #[inline(always)]
    fn matches(w: u64, b: u8) -> u64 {
        let x = w ^ (ONES * u64::from(b));
        x.wrapping_sub(ONES) & !x & HIGHS
    }
    let mut i = 0;
    while i + 8 <= s.len() && i < 32 {
        let w = u64::from_le_bytes(s[i..i + 8].try_into().expect("eight bytes"));
        let m = matches(w, b'"') | matches(w, b'\\');
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    if i < 32 {
        return s[i..].iter().position(|&b| b == b'"' || b == b'\\').map(|j| i + j);
    }
    memchr::memchr2(b'"', b'\\', &s[i..]).map(|j| i + j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_is_equality() {
        let names: Vec<Vec<u8>> = (0..40).map(|n| (0..n).map(|i| b'a' + (i % 26) as u8).collect()).collect();
        for a in &names {
            for b in &names {
                assert_eq!(same_name(a, b), a == b);
                for k in 0..b.len() {
                    let mut c = b.clone();
                    c[k] ^= 1;
                    assert_eq!(same_name(a, &c), *a == c);
                }
            }
        }
    }

    #[test]
    fn quote_or_backslash_finds_the_first() {
        let naive = |s: &[u8]| s.iter().position(|&b| b == b'"' || b == b'\\');
        for len in 0..80 {
            for at in 0..=len {
                for (c, other) in [(b'"', b'\\'), (b'\\', b'"')] {
                    // Bytes next to the target in value (0x21, 0x5B, 0x5D, 0xA2) must not match.
                    let mut s: Vec<u8> = (0..len).map(|i| [b'a', 0x21, 0x5B, 0x5D, 0xA2, b'#'][i % 6]).collect();
                    if at < len {
                        s[at] = c;
                        if at + 3 < len {
                            s[at + 3] = other;
                        }
                    }
                    assert_eq!(quote_or_backslash(&s), naive(&s), "len {len} at {at}");
                }
            }
        }
    }

    #[test]
    fn strings_with_and_without_escapes() {
        let mut s = Vec::new();
        let mut c = Cursor::new(br#""plain" "a\"b\\c\u00e9\ud83c\udf81\n""#);
        assert_eq!(c.string(&mut s).unwrap(), b"plain");
        assert_eq!(c.string(&mut s).unwrap(), "a\"b\\cé🎁\n".as_bytes());
        assert!(Cursor::new(br#""open"#).string(&mut s).is_err());
        assert!(Cursor::new(br#""\ud800x""#).string(&mut s).is_err());
    }

    #[test]
    fn a_value_string_reads_as_a_string() {
        // The inlined path and the general one agree on every kind of string:
        // plain ones of every length around the word and memchr steps,
        // escaped ones, blanks before the quote, and broken ones.
        let mut lines: Vec<Vec<u8>> = (0..70).map(|n| format!("\"{}\"}}", "x".repeat(n)).into_bytes()).collect();
        lines.extend(
            [&br#""a\"b"}"#[..], br#"  "x"}"#, br#""\u00e9t\u00e9"}"#, br#""open"#, br#"x"#, br#""bad\q"}"#, b""]
                .map(|l| l.to_vec()),
        );
        for line in &lines {
            let (mut s1, mut s2) = (Vec::new(), Vec::new());
            let (mut a, mut b) = (Cursor::new(line), Cursor::new(line));
            let (ra, rb) = (a.value_string(&mut s1).map(<[u8]>::to_vec), b.string(&mut s2).map(<[u8]>::to_vec));
            assert_eq!(ra, rb, "{}", String::from_utf8_lossy(line));
            assert_eq!(a.pos(), b.pos(), "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn a_guessed_name_is_taken_only_as_spelled() {
        let mut c = Cursor::new(br#""id":1"#);
        assert_eq!(c.eat_name(b"id"), Some(&b"id"[..]));
        assert_eq!(c.pos(), 5);
        // A longer name, another name, blanks, an escape, the line's end: nothing consumed.
        for line in [&br#""idx":1"#[..], br#""ix":1"#, br#" "id":1"#, br#""id" :1"#, br#""i\u0064":1"#, br#""id""#] {
            let mut c = Cursor::new(line);
            assert_eq!(c.eat_name(b"id"), None, "{}", String::from_utf8_lossy(line));
            assert_eq!(c.pos(), 0);
        }
        // Names up to and past the word-sized comparisons.
        for n in ["a", "abcdefgh", "abcdefghijklmnop", "abcdefghijklmnopq"] {
            let line = format!("\"{n}\":1");
            assert!(Cursor::new(line.as_bytes()).eat_name(n.as_bytes()).is_some(), "{n}");
            let other = format!("\"{}x\":1", &n[..n.len() - 1]);
            assert!(Cursor::new(other.as_bytes()).eat_name(n.as_bytes()).is_none(), "{n}");
        }
    }

    #[test]
    fn skip_checks_structure() {
        let mut c = Cursor::new(br#"{"a":[1,{"b":null}],"c":"d"} tail"#);
        let (a, b) = c.skip_value().unwrap();
        assert_eq!(&c.slice(a, b)[..5], br#"{"a":"#);
        assert!(Cursor::new(br#"{"a":[1,}"#).skip_value().is_err());
    }

    #[test]
    fn skipping_compact_scalars_and_what_only_starts_like_one() {
        // Each skips to the end of its value exactly, fast path or not.
        for v in [
            r#"{"S":"a"}"#,
            r#"{"N":"-1.5e3"}"#,
            r#"{"S":"q\"\\}"}"#,
            r#"{"S":"a" }"#,
            r#"{"S":"a","x":{"S":"b"}}"#,
            r#"{"M":{"k":{"S":"v"},"l":{"L":[{"N":"1"},{"B":"AA=="}]}}}"#,
        ] {
            let line = format!("{v}  ,");
            let mut c = Cursor::new(line.as_bytes());
            let (a, b) = c.skip_value().unwrap();
            assert_eq!(c.slice(a, b), v.as_bytes(), "{v}");
        }
        for bad in [r#"{"S":"a"#, r#"{"S":"q"\}"}"#, r#"{"S":"a",}"#, r#"{"S":"a" x}"#, r#"{"S":"a""#] {
            assert!(Cursor::new(bad.as_bytes()).skip_value().is_err(), "{bad}");
        }
    }
}
