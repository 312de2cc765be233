//! Safe column names.
//!
//! DynamoDB attribute names are case-sensitive and may hold any character;
//! Athena and Glue want lower-case `[a-z0-9_]` names of at most 255
//! characters, and Athena's JSON SerDe folds case. One rule, applied
//! everywhere (schema files, Parquet, DDL):
//!
//! 1. camelCase and PascalCase boundaries become `_` (`orderId` → `order_id`,
//!    `HTTPStatus` → `http_status`);
//! 2. everything is lower-cased; any character outside `[a-z0-9_]` becomes `_`
//!    (runs of them collapse to one; leading and trailing `_` are trimmed);
//! 3. a name that is empty or starts with a digit gets a leading `_`;
//! 4. names are cut to 255 bytes;
//! 5. collisions among siblings (`URL` and `Url`) are resolved in field order:
//!    the first keeps the name, later ones get `_2`, `_3`, ….
//!
//! The original attribute name is always kept (schema file, field metadata),
//! so the mapping can be reversed.

use std::collections::HashSet;

pub const MAX_LEN: usize = 255;

/// The safe form of one attribute name (rules 1–4).
pub fn safe_name(attr: &str) -> String {
    let chars: Vec<char> = attr.chars().collect();
    let mut out = String::with_capacity(attr.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = if i > 0 { Some(chars[i - 1]) } else { None };
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    // Collapse runs of `_` and trim them at the ends.
    let mut collapsed = String::with_capacity(out.len());
    for c in out.chars() {
        if c == '_' && collapsed.ends_with('_') {
            continue;
        }
        collapsed.push(c);
    }
    let mut name = collapsed.trim_matches('_').to_string();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name.truncate(MAX_LEN);
    name
}

/// Make `names` unique in order (rule 5); `taken` holds names already in use.
pub fn dedupe(names: &mut [String], taken: &mut HashSet<String>) {
    for name in names.iter_mut() {
        if taken.insert(name.clone()) {
            continue;
        }
        let mut k = 2;
        loop {
            let suffix = format!("_{k}");
            let mut base = name.clone();
            base.truncate(MAX_LEN - suffix.len());
            let candidate = base + &suffix;
            if taken.insert(candidate.clone()) {
                *name = candidate;
                break;
            }
            k += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        let cases = [
            ("orderId", "order_id"),
            ("createdAt", "created_at"),
            ("HTTPStatus", "http_status"),
            ("URL", "url"),
            ("Url", "url"),
            ("item.price", "item_price"),
            ("ship-to city", "ship_to_city"),
            ("größe", "gr_e"),
            ("9lives", "_9lives"),
            ("a:b", "a_b"),
            ("__x__", "x"),
            ("", "_"),
            ("日本", "_"),
            ("sku2Id", "sku2_id"),
        ];
        for (a, want) in cases {
            assert_eq!(safe_name(a), want, "{a}");
        }
        assert_eq!(safe_name(&"a".repeat(70_000)).len(), MAX_LEN);
    }

    #[test]
    fn collisions_resolve_in_order() {
        let mut names: Vec<String> = ["URL", "Url", "url", "url_2"].iter().map(|s| safe_name(s)).collect();
        dedupe(&mut names, &mut HashSet::new());
        assert_eq!(names, ["url", "url_2", "url_3", "url_2_2"]);
    }
}
