//! Line framing shared by the decoder and the inferrer: chunks may split a line
//! anywhere, so a partial line is carried over to the next chunk.

use crate::error::Result;

/// Call `f` on every complete line of `buf`, first completing a line carried
/// from earlier chunks; a trailing partial line is carried. `f` returns whether
/// to go on. Returns how many bytes of `buf` were consumed (fewer than all when
/// `f` asked to stop).
pub(crate) fn for_each_line(
    carry: &mut Vec<u8>,
    buf: &[u8],
    mut f: impl FnMut(&[u8]) -> Result<bool>,
) -> Result<usize> {
    let mut pos = 0;
    if !carry.is_empty() {
        let Some(i) = memchr::memchr(b'\n', buf) else {
            carry.extend_from_slice(buf);
            return Ok(buf.len());
        };
        carry.extend_from_slice(&buf[..i]);
        let go_on = f(carry)?;
        carry.clear();
        pos = i + 1;
        if !go_on {
            return Ok(pos);
        }
    }
    while pos < buf.len() {
        let Some(i) = memchr::memchr(b'\n', &buf[pos..]) else {
            carry.extend_from_slice(&buf[pos..]);
            return Ok(buf.len());
        };
        let go_on = f(&buf[pos..pos + i])?;
        pos += i + 1;
        if !go_on {
            break;
        }
    }
    Ok(pos)
}
