//! Arrow values as text, for CSV cells and JSON Lines.
//!
//! Numbers are written exactly: decimals as DynamoDB writes them (no trailing
//! zeros), `number` columns as their stored text; nothing goes through `f64`
//! except `double` columns. `json` columns and the catch-all hold DynamoDB
//! JSON and are written as plain JSON. Sets and lists are JSON arrays, maps
//! and structs JSON objects keyed by column name, binary is base64, and
//! timestamps are ISO-8601 UTC.

use arrow::array::{Array, AsArray, Decimal128Array};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use base64::Engine;

use crate::schema::arrow::META_TYPE;

/// A decimal as DynamoDB would write it: `20`, `19.9`, `-0.005`.
pub fn decimal_text(a: &Decimal128Array, i: usize) -> String {
    let v = a.value(i);
    let scale = a.scale().max(0) as usize;
    let digits = v.unsigned_abs().to_string();
    let s = if scale == 0 {
        digits
    } else if digits.len() <= scale {
        format!("0.{}{digits}", "0".repeat(scale - digits.len()))
    } else {
        format!("{}.{}", &digits[..digits.len() - scale], &digits[digits.len() - scale..])
    };
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    if v < 0 { format!("-{s}") } else { s }
}

fn meta_type(field: &Field) -> &str {
    field.metadata().get(META_TYPE).map(String::as_str).unwrap_or("")
}

fn json_string(s: &str, out: &mut Vec<u8>) {
    let mut tmp = String::with_capacity(s.len() + 2);
    crate::ddb::value::write_json_string(s, &mut tmp);
    out.extend_from_slice(tmp.as_bytes());
}

fn iso_micros(v: i64) -> String {
    chrono::DateTime::from_timestamp_micros(v)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_else(|| v.to_string())
}

/// Append row `i` of `a` as a JSON value.
pub fn write_json(a: &dyn Array, field: &Field, i: usize, out: &mut Vec<u8>) {
    if a.is_null(i) {
        out.extend_from_slice(b"null");
        return;
    }
    match a.data_type() {
        DataType::Utf8 => {
            let s = a.as_string::<i32>().value(i);
            match meta_type(field) {
                "json" => {
                    if crate::ddb::plain::value_to_plain(s.as_bytes(), out).is_err() {
                        json_string(s, out);
                    }
                }
                "catch-all" => {
                    if crate::ddb::plain::item_to_plain(s.as_bytes(), out).is_err() {
                        json_string(s, out);
                    }
                }
                "number" => crate::ddb::number::write_json_number(s.as_bytes(), out),
                _ => json_string(s, out),
            }
        }
        DataType::Int64 => out.extend_from_slice(a.as_primitive::<Int64Type>().value(i).to_string().as_bytes()),
        DataType::Decimal128(_, _) => out.extend_from_slice(decimal_text(a.as_primitive(), i).as_bytes()),
        DataType::Float64 => {
            let v = a.as_primitive::<Float64Type>().value(i);
            if v.is_finite() {
                out.extend_from_slice(v.to_string().as_bytes());
            } else {
                out.extend_from_slice(b"null");
            }
        }
        DataType::Boolean => out.extend_from_slice(if a.as_boolean().value(i) { b"true" } else { b"false" }),
        DataType::Binary => {
            let b = base64::engine::general_purpose::STANDARD.encode(a.as_binary::<i32>().value(i));
            json_string(&b, out);
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            json_string(&iso_micros(a.as_primitive::<TimestampMicrosecondType>().value(i)), out)
        }
        DataType::List(child) => {
            let l = a.as_list::<i32>();
            let values = l.values();
            let offs = l.value_offsets();
            out.push(b'[');
            for (k, j) in (offs[i] as usize..offs[i + 1] as usize).enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                write_json(values.as_ref(), child, j, out);
            }
            out.push(b']');
        }
        DataType::Struct(fields) => {
            let s = a.as_struct();
            out.push(b'{');
            let mut first = true;
            for (f, c) in fields.iter().zip(s.columns()) {
                if c.is_null(i) {
                    continue; // absent members stay absent
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                json_string(f.name(), out);
                out.push(b':');
                write_json(c.as_ref(), f, i, out);
            }
            out.push(b'}');
        }
        DataType::Map(entry, _) => {
            let m = a.as_map();
            let DataType::Struct(ef) = entry.data_type() else { unreachable!() };
            let keys = m.keys().as_string::<i32>();
            let values = m.values();
            let offs = m.value_offsets();
            out.push(b'{');
            for (k, j) in (offs[i] as usize..offs[i + 1] as usize).enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                json_string(keys.value(j), out);
                out.push(b':');
                write_json(values.as_ref(), &ef[1], j, out);
            }
            out.push(b'}');
        }
        other => json_string(&format!("<unsupported {other}>"), out),
    }
}

/// Append row `i` of `a` as a CSV cell's text (before quoting); null is empty.
pub fn write_cell(a: &dyn Array, field: &Field, i: usize, out: &mut Vec<u8>) {
    if a.is_null(i) {
        return;
    }
    match a.data_type() {
        DataType::Utf8 if !matches!(meta_type(field), "json" | "catch-all") => {
            out.extend_from_slice(a.as_string::<i32>().value(i).as_bytes())
        }
        DataType::Binary => out.extend_from_slice(
            base64::engine::general_purpose::STANDARD.encode(a.as_binary::<i32>().value(i)).as_bytes(),
        ),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            out.extend_from_slice(iso_micros(a.as_primitive::<TimestampMicrosecondType>().value(i)).as_bytes())
        }
        _ => write_json(a, field, i, out),
    }
}

/// Append `cell` to a CSV line, quoted per RFC 4180 when it needs to be.
pub fn csv_quote(cell: &[u8], out: &mut Vec<u8>) {
    if cell.iter().any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        for &b in cell {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(cell);
    }
}
