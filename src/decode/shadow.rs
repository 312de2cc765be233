//! Inference statistics gathered while decoding.
//!
//! Without a schema file, `convert` decodes with a schema inferred from the
//! first items of the export and, on the same read, gathers the statistics an
//! exact inference pass would have gathered. A [`Shadow`] mirrors a column
//! buffer and counts what each value was; it follows the inference walk
//! ([`super::walk`]) rule for rule: same counts, same number statistics, same
//! order keys. When the schema those statistics call for is the one the data
//! was decoded with, one read was enough; otherwise the job reads again with
//! the exact schema. Either way the result is the exact schema.
//!
//! Maps and JSON columns are not mirrored member by member: their values are
//! walked again with the inference walk itself (their keys are data).

use super::builder::{Builder, TextKind};
use crate::schema::infer::{Desc, Stats};

/// Statistics mirroring one column buffer.
#[derive(Debug)]
pub(crate) struct Shadow {
    /// Counts and number statistics of the values; `order` is `u64::MAX`
    /// until the first value.
    pub stats: Stats,
    pub kind: ShadowKind,
}

#[derive(Debug)]
pub(crate) enum ShadowKind {
    Leaf,
    /// Struct members, by field index: attribute name and statistics.
    Struct(Vec<(String, Shadow)>),
    /// Elements of a list or a set.
    Elem(Box<Shadow>),
    /// Maps and JSON columns: the inference walk fills `stats`.
    Walked,
}

impl Shadow {
    pub fn new(b: &Builder) -> Shadow {
        let kind = match b {
            Builder::Struct { children, names, .. } => ShadowKind::Struct(
                names
                    .iter()
                    .zip(children)
                    .map(|(n, c)| (String::from_utf8_lossy(n).into_owned(), Shadow::new(c)))
                    .collect(),
            ),
            Builder::List { child, .. } => ShadowKind::Elem(Box::new(Shadow::new(child))),
            Builder::Map { .. } | Builder::Text { kind: TextKind::Json, .. } => ShadowKind::Walked,
            _ => ShadowKind::Leaf,
        };
        Shadow { stats: Stats::with_order(u64::MAX), kind }
    }

    /// A value is seen at `order`: the statistics to count it in.
    #[inline]
    pub fn at(&mut self, order: u64) -> &mut Stats {
        self.stats.order = self.stats.order.min(order);
        &mut self.stats
    }

    /// Nothing was seen.
    pub fn is_unseen(&self) -> bool {
        self.stats.counts.iter().all(|&n| n == 0)
    }

    /// The statistics an inference walk over the same values would hold.
    pub fn into_stats(self) -> Stats {
        let mut s = self.stats;
        match self.kind {
            ShadowKind::Leaf | ShadowKind::Walked => {}
            ShadowKind::Struct(members) => {
                // The walk creates a member's statistics when it first sees the key.
                let seen: Vec<(String, Shadow)> = members.into_iter().filter(|(_, m)| !m.is_unseen()).collect();
                if !seen.is_empty() {
                    let m = s.members.get_or_insert_with(Default::default);
                    for (name, shadow) in seen {
                        m.by_key.insert(name, shadow.into_stats());
                    }
                }
            }
            ShadowKind::Elem(e) => {
                // The walk creates element statistics with the first list or set, even an empty one.
                let lists = [Desc::L, Desc::SS, Desc::NS, Desc::BS].iter().map(|d| s.counts[*d as usize]).sum::<u64>();
                if lists > 0 {
                    s.elem = Some(Box::new(e.into_stats()));
                }
            }
        }
        s
    }
}
