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
    json_escape(s.as_bytes(), |piece| match piece {
        // Pieces end at ASCII bytes, so they are whole characters of `s`.
        Piece::Plain(a, b) => out.push_str(&s[a..b]),
        Piece::Escape(e) => out.push_str(e),
        Piece::Control(b) => out.push_str(&format!("\\u{b:04x}")),
    });
    out.push('"');
}

/// [`write_json_string`] for UTF-8 bytes (a value read from a line), into a byte buffer.
pub fn write_json_bytes(text: &[u8], out: &mut Vec<u8>) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    json_escape(text, |piece| match piece {
        Piece::Plain(a, b) => out.extend_from_slice(&text[a..b]),
        Piece::Escape(e) => out.extend_from_slice(e.as_bytes()),
        Piece::Control(b) => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
    });
    out.push(b'"');
}

enum Piece {
    Plain(usize, usize),
    Escape(&'static str),
    Control(u8),
}

/// The one JSON string escaping rule: the text as runs to copy and escapes between them.
fn json_escape(bytes: &[u8], mut f: impl FnMut(Piece)) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let piece = match b {
            b'"' => Piece::Escape("\\\""),
            b'\\' => Piece::Escape("\\\\"),
            b'\n' => Piece::Escape("\\n"),
            b'\r' => Piece::Escape("\\r"),
            b'\t' => Piece::Escape("\\t"),
            0..=0x1f => Piece::Control(b),
            _ => continue,
        };
        if start < i {
            f(Piece::Plain(start, i));
        }
        f(piece);
        start = i + 1;
    }
    if start < bytes.len() {
        f(Piece::Plain(start, bytes.len()));
    }
}

/// Ion text, as DynamoDB's ION export writes it (`outputFormat: ION`):
/// strings, decimals, blobs, structs, lists, and sets as lists annotated
/// `$dynamodb_SS::` / `$dynamodb_NS::` / `$dynamodb_BS::`.
impl AttrValue {
    /// Append this value as Ion text (`"x"`, `6d2`, `$dynamodb_SS::["a"]`).
    pub fn write_ion(&self, out: &mut String) {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        match self {
            AttrValue::S(s) => write_ion_string(s, out),
            AttrValue::N(n) => write_ion_decimal(n, out),
            AttrValue::B(b) => {
                out.push_str("{{");
                out.push_str(&b64(b));
                out.push_str("}}");
            }
            AttrValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            AttrValue::Null => out.push_str("null"),
            AttrValue::M(m) => write_item_ion(m, out),
            AttrValue::L(l) => write_ion_list("", l, out, |v, out| v.write_ion(out)),
            AttrValue::SS(v) => write_ion_list("$dynamodb_SS::", v, out, |s, out| write_ion_string(s, out)),
            AttrValue::NS(v) => write_ion_list("$dynamodb_NS::", v, out, |n, out| write_ion_decimal(n, out)),
            AttrValue::BS(v) => write_ion_list("$dynamodb_BS::", v, out, |b, out| {
                out.push_str("{{");
                out.push_str(&b64(b));
                out.push_str("}}");
            }),
        }
    }
}

/// `annotation[a,b,…]`.
fn write_ion_list<T>(annotation: &str, items: &[T], out: &mut String, write: impl Fn(&T, &mut String)) {
    out.push_str(annotation);
    out.push('[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write(x, out);
    }
    out.push(']');
}

/// Append an item as an Ion struct (`{pk:"1",'a b':2.}`).
pub fn write_item_ion(item: &[(String, AttrValue)], out: &mut String) {
    out.push('{');
    for (i, (k, v)) in item.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_ion_field_name(k, out);
        out.push(':');
        v.write_ion(out);
    }
    out.push('}');
}

/// A field name: an identifier when it is one (and not a keyword), else a quoted symbol.
pub fn write_ion_field_name(name: &str, out: &mut String) {
    let b = name.as_bytes();
    let identifier = b.first().is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_')
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
        && !matches!(name, "null" | "true" | "false" | "nan");
    if identifier {
        out.push_str(name);
    } else {
        write_ion_quoted(name, '\'', out);
    }
}

/// Append `s` as an Ion string literal.
pub fn write_ion_string(s: &str, out: &mut String) {
    write_ion_quoted(s, '"', out);
}

fn write_ion_quoted(s: &str, quote: char, out: &mut String) {
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Append DynamoDB number text as an Ion decimal, spelled as DynamoDB's ION
/// export spells it: `103.` for 103, `6d2` for 600, `0.0015`, `1d-130`.
/// Text that is not a number is written as it is (the reader will refuse it).
pub fn write_ion_decimal(n: &str, out: &mut String) {
    let mut canon = Vec::new();
    if !super::number::write_canonical(n.as_bytes(), &mut canon) {
        out.push_str(n);
        return;
    }
    let canon = String::from_utf8(canon).expect("digits");
    let (sign, body) = match canon.strip_prefix('-') {
        Some(b) => ("-", b),
        None => ("", canon.as_str()),
    };
    out.push_str(sign);
    if let Some((mantissa, exp)) = body.split_once('E') {
        // `d.dddE+n`: digits and the exponent of the last one.
        let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
        let exp: i64 = exp.parse().expect("canonical exponent");
        out.push_str(&format!("{digits}d{}", exp - (digits.len() as i64 - 1)));
    } else if body.contains('.') {
        out.push_str(body);
    } else {
        let zeros = body.len() - body.trim_end_matches('0').len();
        if zeros == 0 || body == "0" {
            out.push_str(body);
            out.push('.');
        } else {
            out.push_str(&format!("{}d{zeros}", &body[..body.len() - zeros]));
        }
    }
}

#[cfg(test)]
mod ion_tests {
    use super::*;

    #[test]
    fn json_strings_as_the_value_writer_spells_them() {
        for s in ["", "plain", "quote \" back \\ nl \n cr \r tab \t bell \u{7} é 🎁", "\u{1f}\u{0}"] {
            let mut want = String::new();
            write_json_string(s, &mut want);
            let mut got = Vec::new();
            write_json_bytes(s.as_bytes(), &mut got);
            assert_eq!(String::from_utf8(got).unwrap(), want);
        }
    }

    #[test]
    fn decimals_as_dynamodb_spells_them() {
        for (n, ion) in [
            ("103", "103."),
            ("600", "6d2"),
            ("2000", "2d3"),
            ("0.0015", "0.0015"),
            ("-0.0", "0."),
            ("0", "0."),
            ("-99.99", "-99.99"),
            ("1E+125", "1d125"),
            ("-1E-130", "-1d-130"),
            ("9.99E+125", "999d123"),
        ] {
            let mut out = String::new();
            write_ion_decimal(n, &mut out);
            assert_eq!(out, ion, "{n}");
        }
    }

    #[test]
    fn values_and_names() {
        let item = vec![
            ("pk".to_string(), AttrValue::S("a\"b\n".into())),
            ("a b".to_string(), AttrValue::SS(vec!["x".into()])),
            ("null".to_string(), AttrValue::NS(vec!["1.50".into()])),
            ("bin".to_string(), AttrValue::BS(vec![vec![0, 1]])),
        ];
        let mut out = String::new();
        write_item_ion(&item, &mut out);
        assert_eq!(
            out,
            r#"{pk:"a\"b\n",'a b':$dynamodb_SS::["x"],'null':$dynamodb_NS::[1.5],bin:$dynamodb_BS::[{{AAE=}}]}"#
        );
    }
}
