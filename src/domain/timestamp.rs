//! Timestamps in the envelope as RFC 3339 (`2026-01-01T00:00:00.123456789Z`): what Go's
//! `time.Time`, Java's ISO formatters and most JSON tooling write and read. Reading also
//! accepts any UTC offset and the struct form `{"secs_since_epoch":…,"nanos_since_epoch":…}`
//! that earlier versions of this crate wrote, so records already on topics still decode.
//! Use with `#[serde(with = "crate::domain::timestamp")]` on a `SystemTime` field.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserializer, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Parses an RFC 3339 timestamp with any offset.
pub(crate) fn from_rfc3339(text: &str) -> Option<SystemTime> {
    let dt = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    let nanos = dt.unix_timestamp_nanos();
    if nanos >= 0 {
        Some(UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).ok()?))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_nanos(u64::try_from(-nanos).ok()?))
    }
}

/// Seconds from the Unix epoch to 0000-01-01T00:00:00Z and to 10000-01-01T00:00:00Z.
const YEAR_0_SECS: u64 = 62_167_219_200;
const YEAR_10000_SECS: u64 = 253_402_300_800;

/// Whether `t` falls in RFC 3339's years 0000-9999 (the `time` crate panics outside its
/// range rather than failing).
fn in_rfc3339_range(t: SystemTime) -> bool {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs() < YEAR_10000_SECS,
        Err(before) => before.duration() <= Duration::from_secs(YEAR_0_SECS),
    }
}

/// The longest RFC 3339 text written here: `9999-12-31T23:59:59.999999999Z`.
const RFC3339_MAX: usize = 30;

/// Serializes `t` as an RFC 3339 string, formatted on the stack (this runs for every
/// message sent).
pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    if !in_rfc3339_range(*t) {
        return Err(serde::ser::Error::custom(
            "timestamp outside RFC 3339's years 0000-9999",
        ));
    }
    let mut buf = [0u8; RFC3339_MAX + 2];
    let mut out = &mut buf[..];
    let formatted = OffsetDateTime::from(*t).format_into(&mut out, &Rfc3339);
    // What was written is what the writer advanced past.
    let n = RFC3339_MAX + 2 - out.len();
    let written = formatted
        .ok()
        .and_then(|_| std::str::from_utf8(&buf[..n]).ok());
    match written {
        Some(text) => s.serialize_str(text),
        None => Err(serde::ser::Error::custom(
            "timestamp outside RFC 3339's years 0000-9999",
        )),
    }
}

/// Deserializes an RFC 3339 string or the legacy struct form.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
    d.deserialize_any(TimestampVisitor)
}

struct TimestampVisitor;

impl<'de> Visitor<'de> for TimestampVisitor {
    type Value = SystemTime;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 timestamp such as \"2026-01-01T00:00:00Z\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SystemTime, E> {
        from_rfc3339(v).ok_or_else(|| {
            E::custom(format!(
                "{v:?} is not an RFC 3339 timestamp (like \"2026-01-01T00:00:00Z\")"
            ))
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SystemTime, A::Error> {
        let (mut secs, mut nanos) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "secs_since_epoch" => secs = Some(map.next_value::<u64>()?),
                "nanos_since_epoch" => nanos = Some(map.next_value::<u32>()?),
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let secs = secs.ok_or_else(|| de::Error::missing_field("secs_since_epoch"))?;
        let nanos = nanos.ok_or_else(|| de::Error::missing_field("nanos_since_epoch"))?;
        if nanos >= 1_000_000_000 {
            return Err(de::Error::custom("nanos_since_epoch must be below 1e9"));
        }
        UNIX_EPOCH
            .checked_add(Duration::new(secs, nanos))
            .ok_or_else(|| de::Error::custom("timestamp out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_with_nanoseconds_in_utc() {
        let t = UNIX_EPOCH + Duration::new(1_767_225_600, 123_456_789);
        let text = as_text(t).unwrap();
        assert_eq!(text, "2026-01-01T00:00:00.123456789Z");
        assert_eq!(from_rfc3339(&text), Some(t));
    }

    fn as_text(t: SystemTime) -> Option<String> {
        match serialize(&t, serde_json::value::Serializer).ok()? {
            serde_json::Value::String(s) => Some(s),
            _ => None,
        }
    }

    #[test]
    fn the_longest_timestamp_fits_the_stack_buffer_and_later_ones_are_refused() {
        let last = UNIX_EPOCH + Duration::new(253_402_300_799, 999_999_999);
        let text = as_text(last).unwrap();
        assert_eq!(text, "9999-12-31T23:59:59.999999999Z");
        assert_eq!(text.len(), RFC3339_MAX);
        assert_eq!(as_text(last + Duration::from_nanos(1)), None);
        assert_eq!(as_text(last + Duration::from_secs(1 << 40)), None);
        let first = UNIX_EPOCH - Duration::from_secs(YEAR_0_SECS);
        assert_eq!(as_text(first).unwrap(), "0000-01-01T00:00:00Z");
        assert_eq!(as_text(first - Duration::from_secs(1)), None);
    }

    #[test]
    fn offsets_and_whole_seconds_are_read() {
        let utc = from_rfc3339("2026-01-01T00:00:00Z").unwrap();
        let paris = from_rfc3339("2026-01-01T01:00:00+01:00").unwrap();
        assert_eq!(utc, paris);
        assert_eq!(utc, UNIX_EPOCH + Duration::from_secs(1_767_225_600));
        assert!(from_rfc3339("1969-12-31T23:59:59Z").is_some());
        assert_eq!(from_rfc3339("yesterday"), None);
    }
}
