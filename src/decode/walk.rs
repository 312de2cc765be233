//! A checking walk over one DynamoDB attribute value, optionally recording
//! statistics for schema inference.
//!
//! The same walk validates values that go to the catch-all column (so nothing
//! malformed slips through unseen) and gathers inference statistics, so the
//! two can never disagree about what a valid value is.

use base64::Engine;

use super::json::Cursor;
use super::number::Number;
use super::{DecodeErr, MAX_DEPTH};
use crate::schema::infer::{Desc, InferOptions, Stats};

/// Read a descriptor (`"S"`, `"N"`, …) after the opening `{` of an attribute value.
#[inline]
pub(crate) fn descriptor(cur: &mut Cursor, scratch: &mut Vec<u8>) -> Result<Desc, DecodeErr> {
    // Every value has one: match the common spellings byte by byte.
    if let Some(d) = cur.descriptor_fast() {
        return Ok(d);
    }
    let d = cur.string(scratch)?;
    match Desc::parse(d) {
        Some(x) => Ok(x),
        None => Err(DecodeErr::malformed(
            cur.pos(),
            format!(
                "unknown type descriptor `{}`; expected S, N, B, BOOL, NULL, M, L, SS, NS or BS",
                String::from_utf8_lossy(d)
            ),
        )),
    }
}

/// Check a number's text.
#[inline]
pub(crate) fn number(cur: &Cursor, text: &[u8]) -> Result<Number, DecodeErr> {
    Number::parse(text)
        .ok_or_else(|| DecodeErr::malformed(cur.pos(), format!("malformed number `{}`", String::from_utf8_lossy(text))))
}

/// Check base64 text, decoding it into `out`.
#[inline]
pub(crate) fn base64_into(cur: &Cursor, text: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeErr> {
    base64::engine::general_purpose::STANDARD.decode_vec(text, out).map_err(|e| {
        let shown: String = String::from_utf8_lossy(&text[..text.len().min(40)]).into();
        DecodeErr::malformed(cur.pos(), format!("bad base64 in B value `{shown}`: {e}"))
    })
}

/// `NULL` must be `true`.
#[inline]
pub(crate) fn null_true(cur: &mut Cursor) -> Result<(), DecodeErr> {
    if cur.boolean()? { Ok(()) } else { Err(DecodeErr::malformed(cur.pos(), "NULL must be `true`")) }
}

pub(crate) struct Walk {
    pub opts: InferOptions,
    pub order: u64,
    pub scratch: Vec<u8>,
    pub bytes: Vec<u8>,
}

impl Walk {
    pub fn new(opts: InferOptions) -> Self {
        Walk { opts, order: 0, scratch: Vec::new(), bytes: Vec::new() }
    }

    /// Walk `{"<desc>": value}` at the cursor.
    pub fn value(&mut self, cur: &mut Cursor, mut stats: Option<&mut Stats>, depth: usize) -> Result<(), DecodeErr> {
        if depth > MAX_DEPTH {
            return Err(DecodeErr::malformed(cur.pos(), format!("nested deeper than DynamoDB's {MAX_DEPTH} levels")));
        }
        cur.expect(b'{')?;
        let desc = descriptor(cur, &mut self.scratch)?;
        cur.expect(b':')?;
        if let Some(s) = stats.as_deref_mut() {
            s.count(desc);
        }
        match desc {
            Desc::S => {
                cur.string(&mut self.scratch)?;
            }
            Desc::N => {
                let text = cur.string(&mut self.scratch)?;
                let n = number(cur, text)?;
                if let Some(s) = stats {
                    s.num.add(&n);
                }
            }
            Desc::B => {
                let text = cur.string(&mut self.scratch)?;
                self.bytes.clear();
                base64_into(cur, text, &mut self.bytes)?;
            }
            Desc::Bool => {
                cur.boolean()?;
            }
            Desc::Null => null_true(cur)?,
            Desc::M => {
                cur.expect(b'{')?;
                let mut first = true;
                let mut key = Vec::new();
                let base = self.order;
                let mut pos = 0u64;
                while cur.next_member(&mut first)? {
                    let k = cur.string(&mut self.scratch)?;
                    key.clear();
                    key.extend_from_slice(k);
                    cur.expect(b':')?;
                    // Keys were UTF-8-checked with the line.
                    let name = std::str::from_utf8(&key).unwrap_or_default();
                    // Members are ordered by where they first appear in their map.
                    let order = (base & !0xfff) | pos.min(0xfff);
                    pos += 1;
                    let child = match stats.as_deref_mut() {
                        Some(s) => Some(s.member(name, order, &self.opts)),
                        None => None,
                    };
                    self.order = order;
                    self.value(cur, child, depth + 1).map_err(|e| e.at_key(&key))?;
                    self.order = base;
                }
            }
            Desc::L => {
                cur.expect(b'[')?;
                let mut first = true;
                let mut i = 0;
                let order = self.order;
                let mut elem = stats.map(|s| s.elem(order));
                while cur.next_element(&mut first)? {
                    self.value(cur, elem.as_deref_mut(), depth + 1).map_err(|e| e.at_index(i))?;
                    i += 1;
                }
            }
            Desc::SS | Desc::NS | Desc::BS => {
                let order = self.order;
                let elem = stats.map(|s| s.elem(order));
                self.set(cur, desc, elem)?;
            }
        }
        cur.expect(b'}')?;
        Ok(())
    }

    fn set(&mut self, cur: &mut Cursor, desc: Desc, mut stats: Option<&mut Stats>) -> Result<(), DecodeErr> {
        cur.expect(b'[')?;
        let mut first = true;
        // Members are compared as their JSON text (DynamoDB writes canonical
        // JSON) or, for numbers, as parsed values: no allocation per member.
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut nums: Vec<(bool, u128, i32, u32)> = Vec::new();
        let mut i = 0;
        while cur.next_element(&mut first)? {
            cur.skip_ws();
            let start = cur.pos();
            let text = cur.string(&mut self.scratch)?;
            match desc {
                Desc::NS => {
                    let n = number(cur, text).map_err(|e| e.at_index(i))?;
                    if let Some(s) = stats.as_deref_mut() {
                        s.count(Desc::N);
                        s.num.add(&n);
                    }
                    if n.too_long {
                        spans.push((start, cur.pos()));
                    } else {
                        nums.push((n.neg, n.mantissa, n.exp, n.digits));
                    }
                }
                Desc::BS => {
                    self.bytes.clear();
                    base64_into(cur, text, &mut self.bytes).map_err(|e| e.at_index(i))?;
                    if let Some(s) = stats.as_deref_mut() {
                        s.count(Desc::B);
                    }
                    spans.push((start, cur.pos()));
                }
                _ => {
                    if let Some(s) = stats.as_deref_mut() {
                        s.count(Desc::S);
                    }
                    spans.push((start, cur.pos()));
                }
            }
            i += 1;
        }
        let mut texts: Vec<&[u8]> = spans.iter().map(|&(a, b)| cur.slice(a, b)).collect();
        texts.sort_unstable();
        nums.sort_unstable();
        if texts.windows(2).any(|w| w[0] == w[1]) || nums.windows(2).any(|w| w[0] == w[1]) {
            return Err(DecodeErr::malformed(cur.pos(), format!("{} set holds a duplicate member", desc.name())));
        }
        Ok(())
    }
}
