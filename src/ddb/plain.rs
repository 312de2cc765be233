//! Canonical DynamoDB JSON → plain JSON: descriptors unwrapped, numbers left
//! exact (as JSON number text, never through `f64`), sets as arrays, binary as
//! base64 strings, `NULL` as `null`. Used by JSON Lines and CSV output for
//! `json` columns and the catch-all (which hold canonical DynamoDB JSON
//! whatever the export's syntax).

use super::json::{Cursor, JResult};
use super::number::Number;
use super::{Desc, MAX_DEPTH};

/// Convert one attribute value (`{"M":{…}}`) to plain JSON.
pub fn value_to_plain(text: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let mut cur = Cursor::new(text);
    let mut scratch = Vec::new();
    attr(&mut cur, &mut scratch, out, 0).map_err(|e| e.message)
}

/// Convert an object of attribute values (`{"a":{"S":"x"}}`, the catch-all) to plain JSON.
pub fn item_to_plain(text: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let mut cur = Cursor::new(text);
    let mut scratch = Vec::new();
    members(&mut cur, &mut scratch, out, 0).map_err(|e| e.message)
}

fn members(cur: &mut Cursor, scratch: &mut Vec<u8>, out: &mut Vec<u8>, depth: usize) -> JResult<()> {
    cur.expect(b'{')?;
    out.push(b'{');
    let mut first = true;
    while cur.next_member(&mut first)? {
        if out.last() != Some(&b'{') {
            out.push(b',');
        }
        let start = cur.pos();
        cur.string(scratch)?;
        out.extend_from_slice(cur.slice(start, cur.pos()).trim_ascii_start());
        cur.expect(b':')?;
        out.push(b':');
        attr(cur, scratch, out, depth + 1)?;
    }
    out.push(b'}');
    Ok(())
}

fn attr(cur: &mut Cursor, scratch: &mut Vec<u8>, out: &mut Vec<u8>, depth: usize) -> JResult<()> {
    if depth > MAX_DEPTH + 1 {
        return cur.err("nested too deeply");
    }
    cur.expect(b'{')?;
    let desc = cur.descriptor(scratch)?;
    cur.expect(b':')?;
    cur.skip_ws();
    match desc {
        Desc::S | Desc::B => {
            let start = cur.pos();
            cur.string(scratch)?;
            out.extend_from_slice(cur.slice(start, cur.pos()));
        }
        Desc::N => {
            let text = cur.string(scratch)?;
            number(cur, text)?;
            super::number::write_json_number(text, out);
        }
        Desc::Bool => out.extend_from_slice(if cur.boolean()? { b"true" } else { b"false" }),
        Desc::Null => {
            cur.null_true()?;
            out.extend_from_slice(b"null");
        }
        Desc::M => members(cur, scratch, out, depth)?,
        Desc::L => {
            cur.expect(b'[')?;
            out.push(b'[');
            let mut first = true;
            while cur.next_element(&mut first)? {
                if out.last() != Some(&b'[') {
                    out.push(b',');
                }
                attr(cur, scratch, out, depth + 1)?;
            }
            out.push(b']');
        }
        Desc::SS | Desc::BS | Desc::NS => {
            cur.expect(b'[')?;
            out.push(b'[');
            let mut first = true;
            while cur.next_element(&mut first)? {
                if out.last() != Some(&b'[') {
                    out.push(b',');
                }
                cur.skip_ws();
                let start = cur.pos();
                let text = cur.string(scratch)?;
                if desc == Desc::NS {
                    number(cur, text)?;
                    super::number::write_json_number(text, out);
                } else {
                    out.extend_from_slice(cur.slice(start, cur.pos()));
                }
            }
            out.push(b']');
        }
    }
    cur.expect(b'}')?;
    Ok(())
}

fn number(cur: &Cursor, text: &[u8]) -> JResult<()> {
    match Number::parse(text) {
        Some(_) => Ok(()),
        None => cur.err(format!("malformed number `{}`", String::from_utf8_lossy(text))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwraps_everything() {
        let mut out = Vec::new();
        item_to_plain(
            br#"{"a":{"M":{"n":{"N":"1E+125"},"s":{"SS":["x","y"]},"l":{"L":[{"NULL":true},{"BOOL":false},{"B":"AA=="}]}}}}"#,
            &mut out,
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a":{"n":1E+125,"s":["x","y"],"l":[null,false,"AA=="]}}"#);
    }
}
