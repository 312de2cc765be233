//! Timestamps from ISO-8601 text or epoch numbers, as microseconds since the epoch (UTC).

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use crate::ddb::number::Number;
use crate::schema::TimestampSource;

/// `2024-06-01T03:00:00.123Z`, `2024-06-01T03:00:00+02:00`, `2024-06-01 03:00:00`
/// (taken as UTC) or `2024-06-01`.
pub fn parse_iso8601(text: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(text).ok()?.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros());
    }
    None
}

/// An epoch number in the given unit, exactly, as microseconds. Fractions
/// finer than a microsecond do not fit.
pub fn from_epoch(n: &Number, source: TimestampSource) -> Option<i64> {
    let shift: u32 = match source {
        TimestampSource::EpochSeconds => 6,
        TimestampSource::EpochMillis => 3,
        TimestampSource::EpochMicros => 0,
        TimestampSource::Iso8601 => return None,
    };
    let v = n.to_decimal(38, shift)?;
    i64::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(parse_iso8601(b"1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(parse_iso8601(b"1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_iso8601(b"1970-01-02"), Some(86_400_000_000));
        assert_eq!(parse_iso8601(b"yesterday"), None);
        let n = Number::parse(b"1700000000.25").unwrap();
        assert_eq!(from_epoch(&n, TimestampSource::EpochSeconds), Some(1_700_000_000_250_000));
        let n = Number::parse(b"1700000000123").unwrap();
        assert_eq!(from_epoch(&n, TimestampSource::EpochMillis), Some(1_700_000_000_123_000));
    }
}
