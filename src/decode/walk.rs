//! A checking walk over one DynamoDB attribute value, optionally recording
//! statistics for schema inference.
//!
//! The same walk validates values that go to the catch-all column (so nothing
//! malformed slips through unseen) and gathers inference statistics, so the
//! two can never disagree about what a valid value is.

use base64::Engine;

use super::DecodeErr;
use super::syntax::SyntaxCursor;
use crate::ddb::number::Number;
use crate::ddb::{Desc, MAX_DEPTH};
use crate::schema::infer::{InferOptions, Stats};

/// Check a number's text.
#[inline]
pub(crate) fn number(pos: usize, text: &[u8]) -> Result<Number, DecodeErr> {
    Number::parse(text)
        .ok_or_else(|| DecodeErr::malformed(pos, format!("malformed number `{}`", String::from_utf8_lossy(text))))
}

/// Check base64 text, decoding it into `out`.
#[inline]
pub(crate) fn base64_into(pos: usize, text: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeErr> {
    base64::engine::general_purpose::STANDARD.decode_vec(text, out).map_err(|e| {
        let shown: String = String::from_utf8_lossy(&text[..text.len().min(40)]).into();
        DecodeErr::malformed(pos, format!("bad base64 in B value `{shown}`: {e}"))
    })
}

pub(crate) struct Walk {
    pub opts: InferOptions,
    pub order: u64,
    pub scratch: Vec<u8>,
    pub bytes: Vec<u8>,
    set_texts: Vec<u8>,
}

impl Walk {
    pub fn new(opts: InferOptions) -> Self {
        Walk { opts, order: 0, scratch: Vec::new(), bytes: Vec::new(), set_texts: Vec::new() }
    }

    /// Walk the attribute value at the cursor.
    pub fn value<'a, C: SyntaxCursor<'a>>(
        &mut self,
        cur: &mut C,
        mut stats: Option<&mut Stats>,
        depth: usize,
    ) -> Result<(), DecodeErr> {
        if depth > MAX_DEPTH {
            return Err(DecodeErr::malformed(cur.pos(), format!("nested deeper than DynamoDB's {MAX_DEPTH} levels")));
        }
        let desc = cur.open_value(&mut self.scratch)?;
        if let Some(s) = stats.as_deref_mut() {
            s.count(desc);
        }
        match desc {
            Desc::S => {
                cur.scalar(desc, &mut self.scratch)?;
            }
            Desc::N => {
                let text = cur.scalar(desc, &mut self.scratch)?;
                let n = number(cur.pos(), text)?;
                if let Some(s) = stats {
                    s.num.add(&n);
                }
            }
            Desc::B => {
                let text = cur.scalar(desc, &mut self.scratch)?;
                self.bytes.clear();
                base64_into(cur.pos(), text, &mut self.bytes)?;
            }
            Desc::Bool => {
                cur.boolean()?;
            }
            Desc::Null => cur.null()?,
            Desc::M => {
                cur.open_struct()?;
                let mut first = true;
                let mut key = Vec::new();
                let base = self.order;
                let mut pos = 0u64;
                while let Some(k) = cur.next_member(&mut first, &mut self.scratch)? {
                    key.clear();
                    key.extend_from_slice(k);
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
                cur.open_list()?;
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
        cur.close_value()
    }

    fn set<'a, C: SyntaxCursor<'a>>(
        &mut self,
        cur: &mut C,
        desc: Desc,
        mut stats: Option<&mut Stats>,
    ) -> Result<(), DecodeErr> {
        cur.open_list()?;
        let mut first = true;
        // Members are compared as their text (strings) or decoded bytes
        // (binary), kept end to end in one buffer, or, for numbers, as parsed
        // values: no allocation per member.
        let mut texts = std::mem::take(&mut self.set_texts);
        texts.clear();
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut nums: Vec<(bool, u128, i32, u32)> = Vec::new();
        let member = desc.set_member().expect("a set");
        let mut i = 0;
        while cur.next_element(&mut first)? {
            let text = cur.scalar(member, &mut self.scratch).map_err(|e| e.at_index(i))?;
            let start = texts.len();
            match desc {
                Desc::NS => {
                    let n = number(cur.pos(), text).map_err(|e| e.at_index(i))?;
                    if let Some(s) = stats.as_deref_mut() {
                        s.count(Desc::N);
                        s.num.add(&n);
                    }
                    if n.too_long {
                        // Canonical spellings (DynamoDB's) compare as text.
                        texts.extend_from_slice(text);
                        spans.push((start, texts.len()));
                    } else {
                        nums.push((n.neg, n.mantissa, n.exp, n.digits));
                    }
                }
                Desc::BS => {
                    base64_into(cur.pos(), text, &mut texts).map_err(|e| e.at_index(i))?;
                    if let Some(s) = stats.as_deref_mut() {
                        s.count(Desc::B);
                    }
                    spans.push((start, texts.len()));
                }
                _ => {
                    if let Some(s) = stats.as_deref_mut() {
                        s.count(Desc::S);
                    }
                    texts.extend_from_slice(text);
                    spans.push((start, texts.len()));
                }
            }
            i += 1;
        }
        let mut members: Vec<&[u8]> = spans.iter().map(|&(a, b)| &texts[a..b]).collect();
        members.sort_unstable();
        nums.sort_unstable();
        let duplicate = members.windows(2).any(|w| w[0] == w[1]) || nums.windows(2).any(|w| w[0] == w[1]);
        drop(members);
        self.set_texts = texts;
        if duplicate {
            return Err(DecodeErr::malformed(cur.pos(), format!("{} set holds a duplicate member", desc.name())));
        }
        Ok(())
    }
}
