//! Schema inference: statistics gathered per attribute, and the lattice that
//! turns them into column types.
//!
//! The lattice, per attribute (and per nested map member, list element):
//!
//! - `NULL` joins anything (it becomes a SQL null); only `NULL` seen → `string`.
//! - `N` alone: all integers within i64 → `bigint`; else all fit 18
//!   significant digits at one scale → `decimal(18,s)` with the largest scale
//!   seen (stored as INT64 in Parquet); else 38 digits → `decimal(38,s)`
//!   (16-byte); else `number` (the exact decimal text). Never `double`. Only
//!   these two precisions are inferred, so a column's type does not change
//!   with every new largest value.
//! - `S`, `B`, `BOOL` alone → `string`, `binary`, `boolean`.
//! - Several of `S`, `N`, `B`, `BOOL` → `string` (numbers as their exact
//!   text, booleans as `true`/`false`, binary as base64).
//! - `M` alone → `struct` when its keys form a stable set; `map` when there
//!   are more distinct keys than the map threshold, or every key starts with a
//!   digit (dates, ids). Members unify recursively.
//! - `L` alone → `list<T>` of the unified element type; when the elements do
//!   not unify (a mix involving `M`, `L` or sets), the list is `json`.
//! - `SS` / `NS` / `BS` alone → `set<string>` / `set<number type>` / `set<binary>`.
//! - Any other mix (involving `M`, `L` or a set) → `json`: the value's
//!   DynamoDB JSON text, lossless.
//!
//! Statistics merge associatively, so files are scanned in parallel and the
//! result does not depend on which thread read what. Field order is the order
//! of first appearance (file, line, position), hence deterministic.

use std::collections::{BTreeMap, HashSet};

use rustc_hash::FxHashMap as HashMap;

use crate::ddb::number::{Digits, Number};
pub use crate::ddb::{DESCRIPTORS, Desc};

use super::names;
use super::{ColumnType, Field, Schema};

/// Options of inference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InferOptions {
    /// An `M` with more distinct keys than this becomes a map.
    pub map_threshold: usize,
    /// At most this many top-level columns: attributes beyond them (in order
    /// of first appearance) go to the catch-all column, counted. An item with
    /// 10⁵ attributes would otherwise make 10⁵ column builders.
    pub max_columns: usize,
    /// Lines longer than this are refused with their file and line, so one
    /// line without a newline cannot take unbounded memory. DynamoDB items
    /// are at most 400 KB; their DynamoDB JSON can be several times that
    /// (`{"NULL":true}` for a 1-byte list element).
    pub max_line_bytes: usize,
}

pub const DEFAULT_MAX_COLUMNS: usize = 10_000;
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 << 20;

impl Default for InferOptions {
    fn default() -> Self {
        InferOptions { map_threshold: 100, max_columns: DEFAULT_MAX_COLUMNS, max_line_bytes: DEFAULT_MAX_LINE_BYTES }
    }
}

/// What the numbers of one attribute look like.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NumStats {
    pub count: u64,
    pub not_int64: u64,
    pub max_scale: u32,
    pub max_int_digits: u32,
    pub too_long: bool,
}

impl NumStats {
    pub fn add(&mut self, n: &Number) {
        self.count += 1;
        if n.to_i64().is_none() {
            self.not_int64 += 1;
        }
        self.max_scale = self.max_scale.max(n.scale());
        self.max_int_digits = self.max_int_digits.max(n.int_digits());
        self.too_long |= n.too_long;
    }

    /// [`NumStats::add`] for an integer that fits i64 (the decoder's fast path).
    #[inline]
    pub fn add_int(&mut self, v: i64) {
        self.count += 1;
        let digits = if v == 0 { 0 } else { v.unsigned_abs().ilog10() + 1 };
        self.max_int_digits = self.max_int_digits.max(digits);
    }

    /// [`NumStats::add`] from a number's [`Digits`]
    /// (the decoder's fast path for plain decimals of up to 18 digits).
    #[inline]
    pub fn add_digits(&mut self, d: Digits) {
        self.count += 1;
        if d.scale > 0 {
            self.not_int64 += 1;
        }
        self.max_scale = self.max_scale.max(d.scale);
        self.max_int_digits = self.max_int_digits.max(d.int_digits);
    }

    fn merge(&mut self, o: &NumStats) {
        self.count += o.count;
        self.not_int64 += o.not_int64;
        self.max_scale = self.max_scale.max(o.max_scale);
        self.max_int_digits = self.max_int_digits.max(o.max_int_digits);
        self.too_long |= o.too_long;
    }

    fn column_type(&self) -> (ColumnType, Option<String>) {
        if self.not_int64 == 0 {
            (ColumnType::Int64, None)
        } else if !self.too_long && self.max_int_digits + self.max_scale <= 38 {
            // Two widths only, so the type stays put from one export to the next.
            let precision = if self.max_int_digits + self.max_scale <= 18 { 18 } else { 38 };
            (ColumnType::Decimal { precision, scale: self.max_scale as u8 }, None)
        } else {
            let note = format!(
                "numbers need {} integer and {} fractional digits, more than decimal(38,s) holds: kept as exact text",
                self.max_int_digits, self.max_scale
            );
            (ColumnType::Number, Some(note))
        }
    }
}

/// Statistics of one attribute (or map member, or list element).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub counts: [u64; 10],
    pub num: NumStats,
    /// Members of `M` values.
    pub members: Option<Box<Members>>,
    /// Elements of `L` values and sets.
    pub elem: Option<Box<Stats>>,
    /// Where it was first seen (smaller is earlier).
    pub order: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Members {
    pub by_key: HashMap<String, Stats>,
    /// Set once there were more keys than the map threshold: every value merged.
    pub collapsed: Option<Stats>,
}

/// An order key: file index, line, position in the item.
pub fn order_key(file: usize, line: u64, pos: usize) -> u64 {
    ((file as u64).min((1 << 20) - 1) << 44) | (line.min((1 << 32) - 1) << 12) | (pos as u64).min(4095)
}

impl Stats {
    pub fn with_order(order: u64) -> Stats {
        Stats { order, ..Default::default() }
    }

    #[inline]
    pub fn count(&mut self, d: Desc) {
        self.counts[d as usize] += 1;
    }

    pub fn elem(&mut self, order: u64) -> &mut Stats {
        let e = self.elem.get_or_insert_with(|| Box::new(Stats::with_order(order)));
        e.order = e.order.min(order);
        e
    }

    /// The statistics of member `key` of an `M` value.
    pub fn member(&mut self, key: &str, order: u64, opts: &InferOptions) -> &mut Stats {
        let members = self.members.get_or_insert_with(Default::default);
        // The size first: a member already seen then costs one lookup here, not two.
        if members.collapsed.is_none()
            && members.by_key.len() >= opts.map_threshold
            && !members.by_key.contains_key(key)
        {
            let mut all = Stats::with_order(order);
            for (_, s) in members.by_key.drain() {
                all.merge(s);
            }
            members.collapsed = Some(all);
        }
        if let Some(c) = members.collapsed.as_mut() {
            return c;
        }
        if !members.by_key.contains_key(key) {
            members.by_key.insert(key.to_string(), Stats::with_order(order));
        }
        // The earliest sighting, not the first one read: a later element of
        // the same list can hold the member at an earlier position, and a
        // worker may read a later file first.
        let m = members.by_key.get_mut(key).expect("just inserted");
        m.order = m.order.min(order);
        m
    }

    pub fn merge(&mut self, o: Stats) {
        for (a, b) in self.counts.iter_mut().zip(o.counts) {
            *a += b;
        }
        self.num.merge(&o.num);
        self.order = self.order.min(o.order);
        if let Some(e) = o.elem {
            match self.elem.as_mut() {
                Some(mine) => mine.merge(*e),
                None => self.elem = Some(e),
            }
        }
        if let Some(m) = o.members {
            let mine = self.members.get_or_insert_with(Default::default);
            let threshold_hit = mine.collapsed.is_some() || m.collapsed.is_some();
            for (k, s) in m.by_key {
                match mine.by_key.get_mut(&k) {
                    Some(x) => x.merge(s),
                    None => {
                        mine.by_key.insert(k, s);
                    }
                }
            }
            if let Some(c) = m.collapsed {
                match mine.collapsed.as_mut() {
                    Some(x) => x.merge(c),
                    None => mine.collapsed = Some(c),
                }
            }
            if threshold_hit {
                let mut all = mine.collapsed.take().unwrap_or_default();
                for (_, s) in mine.by_key.drain() {
                    all.merge(s);
                }
                mine.collapsed = Some(all);
            }
        }
    }

    fn seen(&self) -> BTreeMap<String, u64> {
        DESCRIPTORS.iter().zip(self.counts).filter(|(_, n)| *n > 0).map(|(d, n)| (d.to_string(), n)).collect()
    }

    fn non_null(&self) -> u64 {
        self.counts.iter().sum::<u64>() - self.counts[Desc::Null as usize]
    }

    /// The lattice (see the module docs).
    pub fn column_type(&self, opts: &InferOptions) -> (ColumnType, Option<String>) {
        let kinds: Vec<Desc> = [Desc::S, Desc::N, Desc::B, Desc::Bool, Desc::M, Desc::L, Desc::SS, Desc::NS, Desc::BS]
            .into_iter()
            .filter(|d| self.counts[*d as usize] > 0)
            .collect();
        let seen_list = || kinds.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ");
        match kinds.as_slice() {
            [] => (ColumnType::String, Some("only NULL seen".into())),
            [Desc::N] => self.num.column_type(),
            [Desc::S] => (ColumnType::String, None),
            [Desc::B] => (ColumnType::Binary, None),
            [Desc::Bool] => (ColumnType::Boolean, None),
            [Desc::M] => self.map_type(opts),
            [Desc::L] => match &self.elem {
                None => (ColumnType::List(Box::new(ColumnType::String)), Some("only empty lists seen".into())),
                Some(e) => match e.column_type(opts) {
                    (ColumnType::Json, _) => (
                        ColumnType::Json,
                        Some(format!("list elements do not unify ({}): kept as DynamoDB JSON", e.kinds())),
                    ),
                    (t, note) => (ColumnType::List(Box::new(t)), note.map(|n| format!("elements: {n}"))),
                },
            },
            [Desc::SS] => (ColumnType::Set(Box::new(ColumnType::String)), None),
            [Desc::BS] => (ColumnType::Set(Box::new(ColumnType::Binary)), None),
            [Desc::NS] => {
                let (t, note) = self.elem.as_ref().map(|e| e.num.column_type()).unwrap_or((ColumnType::Int64, None));
                (ColumnType::Set(Box::new(t)), note)
            }
            ks if ks.iter().all(|d| matches!(d, Desc::S | Desc::N | Desc::B | Desc::Bool)) => {
                (ColumnType::String, Some(format!("scalar types differ ({}): kept as text", seen_list())))
            }
            _ => (ColumnType::Json, Some(format!("types differ ({}): kept as DynamoDB JSON", seen_list()))),
        }
    }

    fn kinds(&self) -> String {
        DESCRIPTORS
            .iter()
            .zip(self.counts)
            .filter(|(d, n)| *n > 0 && **d != "NULL")
            .map(|(d, _)| *d)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn map_type(&self, opts: &InferOptions) -> (ColumnType, Option<String>) {
        let Some(m) = &self.members else {
            return (ColumnType::Map(Box::new(ColumnType::Json)), Some("only empty maps seen".into()));
        };
        let data_keys = !m.by_key.is_empty() && m.by_key.keys().all(|k| k.starts_with(|c: char| c.is_ascii_digit()));
        if m.collapsed.is_some() || data_keys || m.by_key.is_empty() {
            let mut all = m.collapsed.clone().unwrap_or_default();
            for s in m.by_key.values() {
                all.merge(s.clone());
            }
            let (t, _) = all.column_type(opts);
            let why = if m.collapsed.is_some() {
                format!("more than {} distinct keys: a map", opts.map_threshold)
            } else if data_keys {
                "keys look like data (they start with a digit): a map".to_string()
            } else {
                "only empty maps seen".to_string()
            };
            return (ColumnType::Map(Box::new(t)), Some(why));
        }
        (ColumnType::Struct(fields_of(&m.by_key, self.counts[Desc::M as usize], opts)), None)
    }
}

/// Fields in order of first appearance, with safe, unique column names.
fn fields_of(by_key: &HashMap<String, Stats>, parent_count: u64, opts: &InferOptions) -> Vec<Field> {
    fields_with_reserved(by_key, parent_count, opts, &mut HashSet::new())
}

fn fields_with_reserved(
    by_key: &HashMap<String, Stats>,
    parent_count: u64,
    opts: &InferOptions,
    taken: &mut HashSet<String>,
) -> Vec<Field> {
    let mut entries: Vec<(&String, &Stats)> = by_key.iter().collect();
    entries.sort_by(|a, b| a.1.order.cmp(&b.1.order).then_with(|| a.0.cmp(b.0)));
    let mut cols: Vec<String> = entries.iter().map(|(k, _)| names::safe_name(k)).collect();
    names::dedupe(&mut cols, taken);
    entries
        .into_iter()
        .zip(cols)
        .map(|((k, s), column)| {
            let (ty, note) = s.column_type(opts);
            Field { attribute: k.clone(), column, ty, nullable: s.non_null() < parent_count, seen: s.seen(), note }
        })
        .collect()
}

/// Statistics of a whole table: one [`Stats`] per top-level attribute.
#[derive(Debug, Clone, Default)]
pub struct TableStats {
    pub items: u64,
    pub attrs: HashMap<String, Stats>,
    /// Values of attributes left out by the column cap.
    pub over_cap: u64,
}

impl TableStats {
    /// Like [`attr`](Self::attr), but `None` for an attribute new beyond `max` columns.
    pub fn attr_capped(&mut self, name: &str, order: u64, max: usize) -> Option<&mut Stats> {
        if self.attrs.len() >= max && !self.attrs.contains_key(name) {
            self.over_cap += 1;
            return None;
        }
        Some(self.attr(name, order))
    }

    pub fn attr(&mut self, name: &str, order: u64) -> &mut Stats {
        // Look up before inserting: the common case must not allocate the key.
        if !self.attrs.contains_key(name) {
            self.attrs.insert(name.to_string(), Stats::with_order(order));
        }
        let a = self.attrs.get_mut(name).expect("just inserted");
        a.order = a.order.min(order);
        a
    }

    pub fn merge(&mut self, o: TableStats) {
        self.items += o.items;
        self.over_cap += o.over_cap;
        for (k, s) in o.attrs {
            match self.attrs.get_mut(&k) {
                Some(x) => x.merge(s),
                None => {
                    self.attrs.insert(k, s);
                }
            }
        }
    }

    /// The schema these statistics call for.
    pub fn schema(&self, opts: &InferOptions) -> Schema {
        let mut taken = HashSet::new();
        taken.insert(super::CATCH_ALL.to_string());
        // Reserved everywhere, so a table's full export and its changes name columns alike.
        taken.extend(super::CHANGE_COLUMNS.map(String::from));
        // Workers cap their columns separately: cap the union the same way
        // (the first attributes to appear), the rest go to the catch-all.
        let capped: HashMap<String, Stats>;
        let attrs = if self.attrs.len() > opts.max_columns {
            let mut by_order: Vec<(&String, &Stats)> = self.attrs.iter().collect();
            by_order.sort_by_key(|(k, s)| (s.order, k.as_str()));
            capped = by_order.into_iter().take(opts.max_columns).map(|(k, s)| (k.clone(), s.clone())).collect();
            &capped
        } else {
            &self.attrs
        };
        let mut s = Schema::new(fields_with_reserved(attrs, self.items, opts, &mut taken));
        s.items = self.items;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ddb::number::Number;

    #[test]
    fn add_int_counts_like_add() {
        for v in [0i64, 1, -1, 9, 10, 100, -120, 999_999, 1_000_000, i64::MAX, i64::MIN, -i64::MAX] {
            let (mut a, mut b) = (NumStats::default(), NumStats::default());
            a.add_int(v);
            b.add(&Number::parse(v.to_string().as_bytes()).unwrap());
            assert_eq!(a, b, "{v}");
        }
    }
}
