//! A DynamoDB attribute value as a plain tree.
//!
//! Not used on the decoding hot path (that parses straight into Arrow
//! buffers); this is for the generator, tests and small tools that need to
//! build or compare items.

use base64::Engine;

/// One DynamoDB attribute value, as its type descriptor says.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    S(String),
    /// The number's text exactly as DynamoDB stores it.
    N(String),
    B(Vec<u8>),
    Bool(bool),
    Null,
    /// Attribute order is kept (it is not meaningful to DynamoDB).
    M(Vec<(String, AttrValue)>),
    L(Vec<AttrValue>),
    SS(Vec<String>),
    NS(Vec<String>),
    BS(Vec<Vec<u8>>),
}

/// An item: attribute name → value.
pub type Item = Vec<(String, AttrValue)>;

impl AttrValue {
    /// The descriptor: `S`, `N`, `B`, `BOOL`, `NULL`, `M`, `L`, `SS`, `NS`, `BS`.
    pub fn descriptor(&self) -> &'static str {
        match self {
            AttrValue::S(_) => "S",
            AttrValue::N(_) => "N",
            AttrValue::B(_) => "B",
            AttrValue::Bool(_) => "BOOL",
            AttrValue::Null => "NULL",
            AttrValue::M(_) => "M",
            AttrValue::L(_) => "L",
            AttrValue::SS(_) => "SS",
            AttrValue::NS(_) => "NS",
            AttrValue::BS(_) => "BS",
        }
    }

    /// Append this value as DynamoDB JSON (`{"S":"x"}`).
    pub fn write_json(&self, out: &mut String) {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        out.push_str("{\"");
        out.push_str(self.descriptor());
        out.push_str("\":");
        match self {
            AttrValue::S(s) | AttrValue::N(s) => write_json_string(s, out),
            AttrValue::B(b) => write_json_string(&b64(b), out),
            AttrValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            AttrValue::Null => out.push_str("true"),
            AttrValue::M(m) => write_item(m, out),
            AttrValue::L(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            AttrValue::SS(v) | AttrValue::NS(v) => write_string_array(v.iter().map(String::as_str), out),
            AttrValue::BS(v) => {
                let enc: Vec<String> = v.iter().map(|b| b64(b)).collect();
                write_string_array(enc.iter().map(String::as_str), out)
            }
        }
        out.push('}');
    }

    pub fn to_json(&self) -> String {
        let mut s = String::new();
        self.write_json(&mut s);
        s
    }
}

/// Append an item (a map of attribute values) as DynamoDB JSON.
pub fn write_item(item: &[(String, AttrValue)], out: &mut String) {
    out.push('{');
    for (i, (k, v)) in item.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(k, out);
        out.push(':');
        v.write_json(out);
    }
    out.push('}');
}

fn write_string_array<'a>(items: impl Iterator<Item = &'a str>, out: &mut String) {
    out.push('[');
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(s, out);
    }
    out.push(']');
}

/// Append `s` as a JSON string literal.
pub fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => out.push_str(&format!("\\u{b:04x}")),
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}
