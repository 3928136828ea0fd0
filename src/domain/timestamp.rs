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

/// `t` as RFC 3339 in UTC with nanoseconds (`None` if out of RFC 3339's years 0–9999).
pub(crate) fn to_rfc3339(t: SystemTime) -> Option<String> {
    let dt = OffsetDateTime::from(t);
    dt.format(&Rfc3339).ok()
}

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

/// Serializes `t` as an RFC 3339 string.
pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    match to_rfc3339(*t) {
        Some(text) => s.serialize_str(&text),
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
        let text = to_rfc3339(t).unwrap();
        assert_eq!(text, "2026-01-01T00:00:00.123456789Z");
        assert_eq!(from_rfc3339(&text), Some(t));
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
