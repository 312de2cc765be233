//! Line framing shared by the decoder and the inferrer: chunks may split a line
//! anywhere, so a partial line is carried over to the next chunk.

use crate::error::Result;

/// A line longer than the limit. The lines framed before it in the same
/// call went to the caller's `f`, so the caller's line count + 1 is its line.
#[derive(Debug)]
pub(crate) struct TooLong;

/// Call `f` on every complete line of `buf`, first completing a line carried
/// from earlier chunks; a trailing partial line is carried. `f` returns whether
/// to go on. Returns how many bytes of `buf` were consumed (fewer than all when
/// `f` asked to stop). A line (carried or not) longer than `max` bytes stops
/// the framing with [`TooLong`] instead of growing the carry without bound.
pub(crate) fn for_each_line(
    carry: &mut Vec<u8>,
    buf: &[u8],
    max: usize,
    mut f: impl FnMut(&[u8]) -> Result<bool>,
) -> Result<Result<usize, TooLong>> {
    let mut pos = 0;
    if !carry.is_empty() {
        let Some(i) = memchr::memchr(b'\n', buf) else {
            if carry.len() + buf.len() > max {
                return Ok(Err(TooLong));
            }
            carry.extend_from_slice(buf);
            return Ok(Ok(buf.len()));
        };
        if carry.len() + i > max {
            return Ok(Err(TooLong));
        }
        carry.extend_from_slice(&buf[..i]);
        let go_on = f(carry)?;
        carry.clear();
        pos = i + 1;
        if !go_on {
            return Ok(Ok(pos));
        }
    }
    while pos < buf.len() {
        let Some(i) = memchr::memchr(b'\n', &buf[pos..]) else {
            if buf.len() - pos > max {
                return Ok(Err(TooLong));
            }
            carry.extend_from_slice(&buf[pos..]);
            return Ok(Ok(buf.len()));
        };
        if i > max {
            return Ok(Err(TooLong));
        }
        let go_on = f(&buf[pos..pos + i])?;
        pos += i + 1;
        if !go_on {
            break;
        }
    }
    Ok(Ok(pos))
}

/// The error for a line over the limit.
pub(crate) fn too_long(file: &str, line: u64, max: usize) -> crate::Error {
    crate::Error::Decode {
        position: crate::error::Position { file: file.to_string(), line, path: String::new() },
        message: format!(
            "the line is longer than {max} bytes (--max-line-bytes); DynamoDB items are at most 400 KB, \
             so this is not an export line (a missing newline?)"
        ),
    }
}
