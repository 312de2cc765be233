//! One attribute value into one column buffer: the type dispatch.
//!
//! A value that is well formed but does not fit the column's type returns a
//! *mismatch* (the caller rolls the column back and sends the attribute to the
//! catch-all); anything malformed returns a *malformed* error (the item is
//! rejected). Numbers never pass through `f64` unless the column is `double`.

use super::builder::{Builder, TextKind, append};
use super::shadow::{Shadow, ShadowKind};
use super::syntax::{Member, SyntaxCursor};
use super::walk::{self, Walk};
use super::{DecodeErr, time};
use crate::ddb::json::same_name;
use crate::ddb::number::Number;
use crate::ddb::{Desc, MAX_DEPTH};
use crate::schema::TimestampSource;
use crate::schema::infer::NumStats;

/// Scratch space reused across values.
pub(crate) struct Ctx {
    pub scratch: Vec<u8>,
    pub walk: Walk,
}

/// Decode the attribute value at the cursor into `b`, counting it in `st`
/// (inference statistics, see [`super::shadow`]) when given. `ctx.walk.order`
/// is the value's order key, as the inference walk would have it.
///
/// A scalar into a scalar column (most of an item's values) is decoded here,
/// inline where values are decoded; everything else goes out of line
/// ([`decode_any`]), which keeps this path free of the big function's frame.
#[inline(always)]
pub(crate) fn decode_value<'a, C: SyntaxCursor<'a>>(
    b: &mut Builder,
    cur: &mut C,
    ctx: &mut Ctx,
    depth: usize,
    mut st: Option<&mut Shadow>,
) -> Result<(), DecodeErr> {
    if depth <= MAX_DEPTH && b.is_scalar() {
        let desc = cur.open_value(&mut ctx.scratch)?;
        if let Some(s) = st.as_deref_mut() {
            s.at(ctx.walk.order).count(desc);
        }
        if matches!(desc, Desc::S | Desc::N | Desc::B) {
            let text = cur.scalar(desc, &mut ctx.scratch)?;
            push_scalar(b, desc, text, cur.pos(), &mut ctx.walk.bytes, st.map(|s| &mut s.stats.num))?;
            return cur.close_value();
        }
        return decode_opened(b, cur, ctx, depth, st, desc);
    }
    decode_any(b, cur, ctx, depth, st)
}

/// [`decode_value`] for any column: nesting, maps, JSON columns.
#[inline(never)]
fn decode_any<'a, C: SyntaxCursor<'a>>(
    b: &mut Builder,
    cur: &mut C,
    ctx: &mut Ctx,
    depth: usize,
    mut st: Option<&mut Shadow>,
) -> Result<(), DecodeErr> {
    if depth > MAX_DEPTH {
        return Err(DecodeErr::malformed(cur.pos(), format!("nested deeper than DynamoDB's {MAX_DEPTH} levels")));
    }
    if let (Builder::Map { .. }, Some(s)) = (&*b, st.as_deref_mut()) {
        // A map's keys are data: decode, then let the inference walk count the same value.
        cur.skip_ws();
        let start = cur.pos();
        decode_value(b, cur, ctx, depth, None)?;
        let end = cur.pos();
        cur.set_pos(start);
        let order = ctx.walk.order;
        ctx.walk.value(cur, Some(s.at(order)), depth)?;
        debug_assert_eq!(cur.pos(), end);
        return Ok(());
    }
    if let Builder::Text { kind: TextKind::Json, offsets, data, valid } = b {
        // Kept as canonical DynamoDB JSON, after the same checks as any value; NULL is null.
        cur.skip_ws();
        let start = cur.pos();
        if cur.open_value(&mut ctx.scratch)? == Desc::Null {
            cur.null()?;
            cur.close_value()?;
            offsets.push(data.len() as i32);
            valid.push(false);
            if let Some(s) = st {
                s.at(ctx.walk.order).count(Desc::Null);
            }
            return Ok(());
        }
        cur.set_pos(start);
        let order = ctx.walk.order;
        ctx.walk.value(cur, st.map(|s| s.at(order)), depth)?;
        cur.write_canonical(start, data)?;
        offsets.push(data.len() as i32);
        valid.push(true);
        return Ok(());
    }
    let desc = cur.open_value(&mut ctx.scratch)?;
    if let Some(s) = st.as_deref_mut() {
        s.at(ctx.walk.order).count(desc);
    }
    decode_opened(b, cur, ctx, depth, st, desc)
}

/// The value whose descriptor `desc` was just read (and counted) into `b`.
#[inline(never)]
fn decode_opened<'a, C: SyntaxCursor<'a>>(
    b: &mut Builder,
    cur: &mut C,
    ctx: &mut Ctx,
    depth: usize,
    st: Option<&mut Shadow>,
    desc: Desc,
) -> Result<(), DecodeErr> {
    match desc {
        Desc::Null => {
            cur.null()?;
            b.push_null();
        }
        Desc::S | Desc::N | Desc::B => {
            let text = cur.scalar(desc, &mut ctx.scratch)?;
            push_scalar(b, desc, text, cur.pos(), &mut ctx.walk.bytes, st.map(|s| &mut s.stats.num))?;
        }
        Desc::Bool => {
            let v = cur.boolean()?;
            match b {
                Builder::Boolean { values, valid } => {
                    values.push(v);
                    valid.push(true);
                }
                Builder::Text { kind: TextKind::String, offsets, data, valid } => {
                    data.extend_from_slice(if v { b"true" } else { b"false" });
                    offsets.push(data.len() as i32);
                    valid.push(true);
                }
                _ => return Err(mismatch(cur.pos(), desc, b)),
            }
        }
        Desc::M => match b {
            Builder::Struct { children, lookup, names, plain, valid, .. } => {
                let row = valid.len();
                let mut members = st.map(|s| match &mut s.kind {
                    ShadowKind::Struct(m) => m,
                    _ => unreachable!("a struct's shadow is a struct"),
                });
                let base = ctx.walk.order;
                cur.open_struct()?;
                let mut first = true;
                let mut pos = 0;
                // Keys borrow the line (no copy) unless they hold escapes.
                let mut unescaped = Vec::new();
                loop {
                    // Members usually come in schema order: try that before hashing.
                    let guess = names.get(pos).filter(|_| plain[pos]).map(|n| &n[..]);
                    let (key, hit) = match cur.next_member_guess(&mut first, guess, &mut unescaped)? {
                        Member::End => break,
                        Member::Guessed(key) => (key, Some(pos)),
                        Member::Other(key) => (key, names.get(pos).filter(|n| same_name(n, key)).map(|_| pos)),
                    };
                    // Members are ordered by where they first appear in their map (as the walk does).
                    let order = (base & !0xfff) | (pos as u64).min(0xfff);
                    pos += 1;
                    let Some(i) = hit.or_else(|| lookup.get(key).copied()) else {
                        let name = String::from_utf8_lossy(key).into_owned();
                        return Err(DecodeErr::mismatch(
                            cur.pos(),
                            format!("map member `{name}` is not in the schema"),
                        ));
                    };
                    let child = &mut children[i];
                    if child.len() != row {
                        return Err(DecodeErr::malformed(cur.pos(), "a map member appears twice").at_key(key));
                    }
                    ctx.walk.order = order;
                    let shadow = members.as_deref_mut().map(|m| &mut m[i].1);
                    let r = decode_value(child, cur, ctx, depth + 1, shadow).map_err(|e| e.at_key(key));
                    ctx.walk.order = base;
                    r?;
                }
                for c in children.iter_mut() {
                    if c.len() == row {
                        c.push_null();
                    }
                }
                valid.push(true);
            }
            Builder::Map { offsets, keys, values, valid, .. } => {
                cur.open_struct()?;
                let mut first = true;
                let mut n = 0i32;
                let mut unescaped = Vec::new();
                while let Some(key) = cur.next_member(&mut first, &mut unescaped)? {
                    if let Builder::Text { offsets, data, valid, .. } = keys.as_mut() {
                        data.extend_from_slice(key);
                        offsets.push(data.len() as i32);
                        valid.push(true);
                    }
                    decode_value(values, cur, ctx, depth + 1, None).map_err(|e| e.at_key(key))?;
                    n += 1;
                }
                offsets.push(offsets.last().unwrap() + n);
                valid.push(true);
            }
            _ => return Err(mismatch(cur.pos(), desc, b)),
        },
        Desc::L => match b {
            Builder::List { set: false, offsets, child, valid, .. } => {
                let mut elem = elem_shadow(st, ctx.walk.order);
                cur.open_list()?;
                let mut first = true;
                let mut n = 0i32;
                while cur.next_element(&mut first)? {
                    decode_value(child, cur, ctx, depth + 1, elem.as_deref_mut())
                        .map_err(|e| e.at_index(n as usize))?;
                    n += 1;
                }
                offsets.push(offsets.last().unwrap() + n);
                valid.push(true);
            }
            _ => return Err(mismatch(cur.pos(), desc, b)),
        },
        Desc::SS | Desc::NS | Desc::BS => {
            let member = match desc {
                Desc::SS => Desc::S,
                Desc::NS => Desc::N,
                _ => Desc::B,
            };
            match b {
                Builder::List { set: true, offsets, child, valid, .. } => {
                    let mut elem = elem_shadow(st, ctx.walk.order);
                    let start = child.len();
                    cur.open_list()?;
                    let mut first = true;
                    let mut n = 0i32;
                    while cur.next_element(&mut first)? {
                        let text = cur.scalar(member, &mut ctx.scratch).map_err(|e| e.at_index(n as usize))?;
                        let num = elem.as_deref_mut().map(|s| {
                            s.stats.count(member);
                            &mut s.stats.num
                        });
                        push_scalar(child, member, text, cur.pos(), &mut ctx.walk.bytes, num)
                            .map_err(|e| e.at_index(n as usize))?;
                        n += 1;
                    }
                    if has_duplicates(child, start) {
                        return Err(DecodeErr::malformed(
                            cur.pos(),
                            format!("{} set holds a duplicate member", desc.name()),
                        ));
                    }
                    offsets.push(offsets.last().unwrap() + n);
                    valid.push(true);
                }
                _ => return Err(mismatch(cur.pos(), desc, b)),
            }
        }
    }
    cur.close_value()
}

/// The element statistics of a list or set value (created by its first value, even an empty one).
#[inline]
fn elem_shadow(st: Option<&mut Shadow>, order: u64) -> Option<&mut Shadow> {
    st.map(|s| match &mut s.kind {
        ShadowKind::Elem(e) => {
            e.at(order);
            e.as_mut()
        }
        _ => unreachable!("a list's shadow has elements"),
    })
}

fn mismatch(pos: usize, desc: Desc, b: &Builder) -> DecodeErr {
    DecodeErr::mismatch(pos, format!("a {} value does not fit a {} column", desc.name(), kind_name(b)))
}

fn kind_name(b: &Builder) -> &'static str {
    match b {
        Builder::Text { kind: TextKind::String, .. } => "string",
        Builder::Text { kind: TextKind::Number, .. } => "number",
        Builder::Text { kind: TextKind::Json, .. } => "json",
        Builder::Binary { .. } => "binary",
        Builder::Int64 { .. } => "bigint",
        Builder::Decimal { .. } => "decimal",
        Builder::Float64 { .. } => "double",
        Builder::Boolean { .. } => "boolean",
        Builder::Timestamp { .. } => "timestamp",
        Builder::List { set: true, .. } => "set",
        Builder::List { .. } => "list",
        Builder::Struct { .. } => "struct",
        Builder::Map { .. } => "map",
    }
}

/// An `S`, `N` or `B` value's text into a scalar column; an `N` is counted
/// in `num` when given.
#[inline(always)]
fn push_scalar(
    b: &mut Builder,
    desc: Desc,
    text: &[u8],
    pos: usize,
    bytes: &mut Vec<u8>,
    num: Option<&mut NumStats>,
) -> Result<(), DecodeErr> {
    // The most common case (a string into a string column) inline; the rest
    // out of line, which keeps the caller's frame small.
    if let (Builder::Text { kind: TextKind::String, offsets, data, valid }, Desc::S) = (&mut *b, desc) {
        append(data, text);
        offsets.push(data.len() as i32);
        valid.push(true);
        return Ok(());
    }
    push_other_scalar(b, desc, text, pos, bytes, num)
}

#[inline(never)]
fn push_other_scalar(
    b: &mut Builder,
    desc: Desc,
    text: &[u8],
    pos: usize,
    bytes: &mut Vec<u8>,
    num: Option<&mut NumStats>,
) -> Result<(), DecodeErr> {
    let count = |num: Option<&mut NumStats>, n: &Number| {
        if let Some(s) = num {
            s.add(n);
        }
    };
    match (b, desc) {
        (Builder::Text { kind: TextKind::String, offsets, data, valid }, _) => {
            match desc {
                Desc::N => {
                    count(num, &walk::number(pos, text)?);
                }
                Desc::B => {
                    bytes.clear();
                    walk::base64_into(pos, text, bytes)?;
                }
                _ => {}
            }
            append(data, text);
            offsets.push(data.len() as i32);
            valid.push(true);
        }
        (Builder::Text { kind: TextKind::Number, offsets, data, valid }, Desc::N) => {
            count(num, &walk::number(pos, text)?);
            append(data, text);
            offsets.push(data.len() as i32);
            valid.push(true);
        }
        (Builder::Binary { offsets, data, valid }, Desc::B) => {
            walk::base64_into(pos, text, data)?;
            offsets.push(data.len() as i32);
            valid.push(true);
        }
        (Builder::Int64 { values, valid }, Desc::N) => {
            let v = match int64(text) {
                Some(v) => {
                    if let Some(s) = num {
                        s.add_int(v);
                    }
                    v
                }
                None => {
                    let n = walk::number(pos, text)?;
                    let v = n.to_i64().ok_or_else(|| does_not_fit(pos, text, "bigint"))?;
                    count(num, &n);
                    v
                }
            };
            values.push(v);
            valid.push(true);
        }
        (Builder::Decimal { precision, scale, values, valid }, Desc::N) => {
            let (precision, scale) = (u32::from(*precision), u32::from(*scale));
            let v = match crate::ddb::number::plain_decimal(text, precision, scale) {
                Some((v, digits)) => {
                    if let Some(s) = num {
                        s.add_digits(digits);
                    }
                    v
                }
                None => {
                    let n = walk::number(pos, text)?;
                    let v = n
                        .to_decimal(precision, scale)
                        .ok_or_else(|| does_not_fit(pos, text, &format!("decimal({precision},{scale})")))?;
                    count(num, &n);
                    v
                }
            };
            values.push(v);
            valid.push(true);
        }
        (Builder::Float64 { values, valid }, Desc::N) => {
            let n = walk::number(pos, text)?;
            count(num, &n);
            // Checked to be a number; Rust's parse is correctly rounded, and so is the fast path.
            let v = n
                .to_f64_fast()
                .unwrap_or_else(|| std::str::from_utf8(text).ok().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN));
            values.push(v);
            valid.push(true);
        }
        (Builder::Timestamp { source, values, valid }, d) => {
            let source = *source;
            let v = match (source, d) {
                (TimestampSource::Iso8601, Desc::S) => time::parse_iso8601(text),
                (TimestampSource::Iso8601, _) => None,
                (_, Desc::N) => {
                    let n = walk::number(pos, text)?;
                    let v = time::from_epoch(&n, source);
                    count(num, &n);
                    v
                }
                _ => None,
            };
            let v = v.ok_or_else(|| does_not_fit(pos, text, "timestamp"))?;
            values.push(v);
            valid.push(true);
        }
        (b, d) => return Err(mismatch(pos, d, b)),
    }
    Ok(())
}

/// Fast path for plain integers (`-?[0-9]{1,18}`); anything else goes the long way.
#[inline]
fn int64(text: &[u8]) -> Option<i64> {
    let (neg, digits) = match text.first()? {
        b'-' => (true, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 18 || (digits[0] == b'0' && digits.len() > 1) {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(if neg { -v } else { v })
}

fn does_not_fit(pos: usize, text: &[u8], ty: &str) -> DecodeErr {
    DecodeErr::mismatch(pos, format!("value `{}` does not fit {ty}", String::from_utf8_lossy(text)))
}

/// Did the last set appended to `child` (from row `start`) repeat a member?
fn has_duplicates(child: &Builder, start: usize) -> bool {
    let n = child.len() - start;
    if n < 2 {
        return false;
    }
    match child {
        Builder::Text { offsets, data, .. } | Builder::Binary { offsets, data, .. } => {
            let item = |i: usize| &data[offsets[i] as usize..offsets[i + 1] as usize];
            if n <= SMALL_SET {
                return (start..child.len()).any(|i| (i + 1..child.len()).any(|j| same_name(item(i), item(j))));
            }
            let mut v: Vec<&[u8]> = (start..child.len()).map(item).collect();
            v.sort_unstable();
            v.windows(2).any(|w| w[0] == w[1])
        }
        Builder::Int64 { values, .. } | Builder::Timestamp { values, .. } => repeats(&values[start..]),
        Builder::Decimal { values, .. } => repeats(&values[start..]),
        _ => false,
    }
}

/// Sets are usually small: compare pairs without allocating up to this size.
const SMALL_SET: usize = 16;

fn repeats<T: Ord + Copy>(v: &[T]) -> bool {
    if v.len() <= SMALL_SET {
        return (0..v.len()).any(|i| v[i + 1..].contains(&v[i]));
    }
    let mut v = v.to_vec();
    v.sort_unstable();
    v.windows(2).any(|w| w[0] == w[1])
}

/// Exposed for tests of the number path.
pub fn parse_number(text: &str) -> Option<Number> {
    Number::parse(text.as_bytes())
}
