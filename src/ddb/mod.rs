//! The DynamoDB data model, on the ground floor: every step of the pipeline
//! may use it and it uses nothing of theirs.
//!
//! - [`Desc`]: the ten type descriptors;
//! - [`number`]: the exact `N` (never through `f64`) and its canonical spelling;
//! - [`value`]: an attribute value as a plain tree (generator, tests, tools);
//! - [`json`]: the DynamoDB JSON grammar (a cursor over one line);
//! - [`plain`]: canonical DynamoDB JSON → plain JSON.
//!
//! Whatever syntax an export is written in (DynamoDB JSON or Ion), values the
//! schema cannot type (the catch-all column, `json` columns) are kept in one
//! spelling: canonical DynamoDB JSON, `{"N":"600"}`. That is what [`plain`]
//! and the writers read.

pub mod json;
pub mod number;
pub mod plain;
pub mod value;

/// DynamoDB nests at most 32 levels.
pub const MAX_DEPTH: usize = 32;

/// Type descriptors, in a fixed order.
pub const DESCRIPTORS: [&str; 10] = ["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Desc {
    S = 0,
    N = 1,
    B = 2,
    Bool = 3,
    Null = 4,
    M = 5,
    L = 6,
    SS = 7,
    NS = 8,
    BS = 9,
}

impl Desc {
    pub fn parse(s: &[u8]) -> Option<Desc> {
        Some(match s {
            b"S" => Desc::S,
            b"N" => Desc::N,
            b"B" => Desc::B,
            b"BOOL" => Desc::Bool,
            b"NULL" => Desc::Null,
            b"M" => Desc::M,
            b"L" => Desc::L,
            b"SS" => Desc::SS,
            b"NS" => Desc::NS,
            b"BS" => Desc::BS,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        DESCRIPTORS[self as usize]
    }
    /// The members' type of a set (`SS` → `S`); `None` for the others.
    pub fn set_member(self) -> Option<Desc> {
        match self {
            Desc::SS => Some(Desc::S),
            Desc::NS => Some(Desc::N),
            Desc::BS => Some(Desc::B),
            _ => None,
        }
    }
}
