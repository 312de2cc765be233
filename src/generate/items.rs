//! The items of the generated `Orders` table, and their changes.

use crate::ddb::value::{AttrValue as V, Item};

/// splitmix64: small, fast, and the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

const STATUS: &[(&str, u64)] = &[("PENDING", 10), ("PAID", 20), ("SHIPPED", 25), ("DELIVERED", 40), ("CANCELLED", 5)];
const TAGS: &[&str] = &[
    "express",
    "fragile",
    "b2b",
    "marketplace",
    "subscription",
    "promo",
    "first-order",
    "vip",
    "international",
    "backorder",
    "gift-wrap",
    "eco-packaging",
];
const CITIES: &[(&str, &str)] = &[
    ("Seattle", "WA"),
    ("Portland", "OR"),
    ("Austin", "TX"),
    ("San José", "CA"),
    ("Coeur d'Alene", "ID"),
    ("New York", "NY"),
];
const NOTES: &[&str] = &[
    "Leave at the front door.",
    "Gift for mom \u{1F381}",
    "Déposer chez le voisin si absent.",
    "配達前に電話してください。",
    "Customer says: \"handle with care\"",
    "Back door\tgate code 4411",
    "Multi-line note\nsecond line",
    "Backslash in path C:\\orders\\incoming",
];
/// Numbers at the edges of what DynamoDB stores.
const PRECISE: &[&str] = &[
    "1E+125",
    "-1E-130",
    "12345678901234567890123456789012345678",
    "0.00000000000000000000000000000000000001",
    "9.9999999999999999999999999999999999999E+125",
    "0",
    "-0.0",
    "3.14159265358979323846264338327950288",
];

/// Format `units / 10^scale` as DynamoDB does: no trailing zeros, no `-0`.
fn decimal(units: i64, scale: u32) -> String {
    let neg = units < 0;
    let digits = units.unsigned_abs().to_string();
    let scale = scale as usize;
    let s = if scale == 0 {
        digits
    } else if digits.len() <= scale {
        format!("0.{}{}", "0".repeat(scale - digits.len()), digits)
    } else {
        format!("{}.{}", &digits[..digits.len() - scale], &digits[digits.len() - scale..])
    };
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    if neg && s != "0" { format!("-{s}") } else { s }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn s(x: impl Into<String>) -> V {
    V::S(x.into())
}

/// One order, created somewhere in `[t_lo, t_hi)` (epoch millis).
pub fn make_item(r: &mut Rng, t_lo: i64, t_hi: i64, awkward: bool) -> Item {
    let mut it: Item = Vec::with_capacity(24);
    let h = (r.next_u64(), r.next_u64());
    it.push((
        "orderId".into(),
        s(format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            h.0 >> 32,
            (h.0 >> 16) & 0xffff,
            h.0 & 0xfff,
            ((h.1 >> 48) & 0x3fff) | 0x8000,
            h.1 & 0xffff_ffff_ffff
        )),
    ));
    it.push(("createdAt".into(), s(iso(t_lo + r.below((t_hi - t_lo) as u64) as i64))));
    it.push(("customerId".into(), s(format!("cust_{:08}", r.below(1_000)))));
    let nlines = 1 + (r.unit() * r.unit() * 5.0) as usize;
    let mut total = 0i64;
    let mut qty_total = 0i64;
    let mut lines = Vec::with_capacity(nlines);
    for _ in 0..nlines {
        let q = 1 + (r.unit() * r.unit() * 6.0) as i64;
        let p = 99 + r.below(30_000) as i64;
        total += q * p;
        qty_total += q;
        lines.push(V::M(vec![
            ("sku".into(), s(format!("SKU-{:06}", r.below(1_000_000)))),
            ("qty".into(), V::N(q.to_string())),
            ("price".into(), V::N(decimal(p, 2))),
        ]));
    }
    it.push(("amount".into(), V::N(decimal(total, 2))));
    it.push(("quantity".into(), V::N(qty_total.to_string())));
    let mut x = r.below(100);
    let status = STATUS
        .iter()
        .find(|(_, w)| {
            if x < *w {
                true
            } else {
                x -= w;
                false
            }
        })
        .unwrap()
        .0;
    it.push(("status".into(), s(status)));
    if r.unit() < 0.3 {
        it.push(("isGift".into(), V::Bool(r.unit() < 0.5)));
    }
    let x = r.unit();
    if x < 0.45 {
        it.push(("notes".into(), s(*r.pick(NOTES))));
    } else if x < 0.55 {
        it.push(("notes".into(), V::Null));
    }
    if r.unit() < 0.6 {
        let mut tags: Vec<String> = (0..1 + r.below(4)).map(|_| r.pick(TAGS).to_string()).collect();
        tags.sort();
        tags.dedup();
        it.push(("tags".into(), V::SS(tags)));
    }
    let mut scores: Vec<String> =
        (0..1 + r.below(4)).map(|_| decimal(r.below(20_000) as i64 - 4_000, r.below(3) as u32)).collect();
    scores.sort();
    scores.dedup();
    it.push(("scores".into(), V::NS(scores)));
    let (city, state) = *r.pick(CITIES);
    it.push((
        "shipping".into(),
        V::M(vec![
            ("street".into(), s(format!("{} Main St", 1 + r.below(9999)))),
            ("city".into(), s(city)),
            ("state".into(), s(state)),
            ("zip".into(), s(format!("{:05}", r.below(100_000)))),
            (
                "geo".into(),
                V::M(vec![
                    ("lat".into(), V::N(decimal(25_000_000 + r.below(23_000_000) as i64, 6))),
                    ("lon".into(), V::N(decimal(-123_000_000 + r.below(52_000_000) as i64, 6))),
                ]),
            ),
        ]),
    ));
    it.push(("lines".into(), V::L(lines)));
    if r.unit() < 0.05 {
        let n = 16 + r.below(200) as usize;
        it.push(("thumbnail".into(), V::B(r.bytes(n))));
    }
    if r.unit() < 0.03 {
        let mut bs: Vec<Vec<u8>> = (0..1 + r.below(3))
            .map(|i| {
                let mut b = r.bytes(8);
                b[0] = i as u8;
                b
            })
            .collect();
        bs.dedup();
        it.push(("attachments".into(), V::BS(bs)));
    }
    let x = r.unit();
    if x < 0.25 {
        it.push(("legacyCode".into(), V::N(r.below(100_000).to_string())));
    } else if x < 0.40 {
        it.push(("legacyCode".into(), s(format!("LC-{:05}", r.below(100_000)))));
    }
    if r.unit() < 0.1 {
        // Keys that are data: dates.
        let days: Vec<(String, V)> = (0..1 + r.below(5))
            .map(|d| (format!("2024-05-{:02}", 1 + d * 3 + r.below(3)), V::N(r.below(500).to_string())))
            .collect();
        it.push(("dailyViews".into(), V::M(days)));
    }
    if r.unit() < 0.05 {
        it.push(("history".into(), V::L(vec![s("created"), V::N(r.below(10).to_string()), V::Bool(true)])));
    }
    if r.unit() < 0.03 {
        let v = if r.unit() < 0.5 {
            s("raw")
        } else {
            V::M(vec![("k".into(), V::N("1".into())), ("empty".into(), V::L(vec![]))])
        };
        it.push(("payload".into(), v));
    }
    if r.unit() < 0.02 {
        it.push(("precise".into(), V::N(r.pick(PRECISE).to_string())));
    }
    if r.unit() < 0.01 {
        it.push((
            "emptyThings".into(),
            V::M(vec![("s".into(), s("")), ("b".into(), V::B(vec![])), ("m".into(), V::M(vec![]))]),
        ));
    }
    if awkward {
        for (name, v) in [
            ("URL", s("https://example.com/a")),
            ("Url", s("https://example.com/b")),
            ("item.price", V::N("1.5".into())),
            ("ship-to city", s("Paris")),
            ("größe", V::N("42".into())),
            ("select", V::Bool(true)),
            ("9lives", V::N("9".into())),
            ("a:b", s("colon")),
        ] {
            if r.unit() < 0.7 {
                it.push((name.into(), v));
            }
        }
    }
    it
}

/// Change records (incremental export lines) touching `item` at `ts_us`:
/// an update (90%) or a delete (10%), sometimes followed by a brand-new item.
pub fn changes(r: &mut Rng, item: &Item, ts_us: i64, format: crate::export::OutputFormat) -> Vec<String> {
    let keys: Item = item.iter().filter(|(k, _)| k == "orderId" || k == "createdAt").cloned().collect();
    let mut out = Vec::new();
    let mut rec = |keys: &Item, old: Option<&Item>, new: Option<&Item>, ts: i64| {
        out.push(super::change_line(format, keys, old, new, ts));
    };
    if r.unit() < 0.1 {
        rec(&keys, Some(item), None, ts_us);
    } else {
        let mut new = item.clone();
        for (k, v) in new.iter_mut() {
            if k == "status" {
                *v = s(if r.unit() < 0.1 { "CANCELLED" } else { "DELIVERED" });
            }
        }
        new.retain(|(k, _)| k != "notes" || r.unit() < 0.7);
        new.push(("updatedAt".into(), s(iso(ts_us / 1000))));
        rec(&keys, Some(item), Some(&new), ts_us);
    }
    if r.unit() < 0.1 {
        let new = make_item(r, ts_us / 1000 - 1000, ts_us / 1000, false);
        let keys: Item = new.iter().filter(|(k, _)| k == "orderId" || k == "createdAt").cloned().collect();
        rec(&keys, None, Some(&new), ts_us + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimals_are_normalised_like_dynamodb() {
        assert_eq!(decimal(1999, 2), "19.99");
        assert_eq!(decimal(2000, 2), "20");
        assert_eq!(decimal(5, 3), "0.005");
        assert_eq!(decimal(-10, 1), "-1");
        assert_eq!(decimal(0, 2), "0");
        assert_eq!(decimal(-0, 2), "0");
    }
}
