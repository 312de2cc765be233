//! SDK attribute values → DynamoDB JSON, the text of export data files.
//!
//! The DynamoDB and Streams SDKs each have their own `AttributeValue` type
//! with the same shape; one macro writes both. Map members are written in
//! name order, so the same item always gives the same line (a resumed scan
//! writes what an uninterrupted one would). Numbers stay the strings DynamoDB
//! sent; binary values are base64, as in exports.

use std::collections::HashMap;

use base64::Engine;

use crate::error::{Error, Result};

macro_rules! writer {
    ($name:ident, $ty:ty) => {
        /// Append `item` as a DynamoDB JSON object (`{"pk":{"S":"a"},…}`).
        pub fn $name(out: &mut Vec<u8>, item: &HashMap<String, $ty>) -> Result<()> {
            fn value(out: &mut Vec<u8>, v: &$ty) -> Result<()> {
                use $ty as V;
                let b64 = |out: &mut Vec<u8>, b: &[u8]| {
                    out.push(b'"');
                    out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(b).as_bytes());
                    out.push(b'"');
                };
                match v {
                    V::S(s) => tagged(out, "S", |o| string(o, s)),
                    V::N(n) => tagged(out, "N", |o| string(o, n)),
                    V::B(b) => tagged(out, "B", |o| b64(o, b.as_ref())),
                    V::Bool(b) => tagged(out, "BOOL", |o| o.extend_from_slice(if *b { b"true" } else { b"false" })),
                    V::Null(_) => tagged(out, "NULL", |o| o.extend_from_slice(b"true")),
                    V::Ss(v) => tagged(out, "SS", |o| list(o, v, |o, s| string(o, s))),
                    V::Ns(v) => tagged(out, "NS", |o| list(o, v, |o, s| string(o, s))),
                    V::Bs(v) => tagged(out, "BS", |o| list(o, v, |o, b| b64(o, b.as_ref()))),
                    V::L(items) => {
                        out.extend_from_slice(b"{\"L\":[");
                        for (i, x) in items.iter().enumerate() {
                            if i > 0 {
                                out.push(b',');
                            }
                            value(out, x)?;
                        }
                        out.extend_from_slice(b"]}");
                    }
                    V::M(m) => {
                        out.extend_from_slice(b"{\"M\":");
                        map(out, m)?;
                        out.push(b'}');
                    }
                    other => {
                        return Err(Error::Usage(format!(
                            "the AWS SDK returned an attribute type this version of dynolake does not know: {other:?}"
                        )));
                    }
                }
                Ok(())
            }
            fn map(out: &mut Vec<u8>, m: &HashMap<String, $ty>) -> Result<()> {
                let mut names: Vec<&String> = m.keys().collect();
                names.sort_unstable();
                out.push(b'{');
                for (i, k) in names.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    string(out, k);
                    out.push(b':');
                    value(out, &m[k])?;
                }
                out.push(b'}');
                Ok(())
            }
            map(out, item)
        }
    };
}

writer!(write_item, aws_sdk_dynamodb::types::AttributeValue);
writer!(write_stream_image, aws_sdk_dynamodbstreams::types::AttributeValue);

fn tagged(out: &mut Vec<u8>, tag: &str, body: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(b"\":");
    body(out);
    out.push(b'}');
}

fn list<T>(out: &mut Vec<u8>, v: &[T], mut each: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, x);
    }
    out.push(b']');
}

/// A JSON string literal (serde_json's escaping: exact for every Unicode string).
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::AttributeValue as V;

    #[test]
    fn every_type_as_in_exports() {
        let item = HashMap::from([
            ("s".to_string(), V::S("a\"\u{e9}\n".into())),
            ("n".to_string(), V::N("12345678901234567890.123456789".into())),
            ("b".to_string(), V::B(Blob::new(vec![0u8, 255]))),
            ("t".to_string(), V::Bool(true)),
            ("z".to_string(), V::Null(true)),
            ("ss".to_string(), V::Ss(vec!["x".into(), "y".into()])),
            ("ns".to_string(), V::Ns(vec!["1".into(), "-2.5".into()])),
            ("bs".to_string(), V::Bs(vec![Blob::new(vec![1u8])])),
            ("l".to_string(), V::L(vec![V::N("1".into()), V::M(HashMap::from([("k".into(), V::S("v".into()))]))])),
        ]);
        let mut out = Vec::new();
        write_item(&mut out, &item).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            r#"{"b":{"B":"AP8="},"bs":{"BS":["AQ=="]},"l":{"L":[{"N":"1"},{"M":{"k":{"S":"v"}}}]},"n":{"N":"12345678901234567890.123456789"},"ns":{"NS":["1","-2.5"]},"s":{"S":"a\"é\n"},"ss":{"SS":["x","y"]},"t":{"BOOL":true},"z":{"NULL":true}}"#
        );
        // The escaping round-trips.
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["s"]["S"], "a\"é\n");
    }
}
