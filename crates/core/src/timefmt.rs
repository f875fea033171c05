//! Timestamps: stored as Unix milliseconds (portable across SQLite and PostgreSQL), shown as
//! RFC 3339 like Kratos.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub type Millis = i64;

pub fn now_ms() -> Millis {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn to_rfc3339(ms: Millis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Serde adapter so model structs hold milliseconds but serialise RFC 3339 strings.
pub mod rfc3339 {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_rfc3339(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        let s = String::deserialize(d)?;
        parse_rfc3339(&s).ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 timestamp"))
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(ms: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
            match ms {
                Some(ms) => s.serialize_str(&to_rfc3339(*ms)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
            let s = Option::<String>::deserialize(d)?;
            s.map(|s| {
                parse_rfc3339(&s)
                    .ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 timestamp"))
            })
            .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let ms = 1_700_000_000_123;
        let s = to_rfc3339(ms);
        assert_eq!(s, "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_rfc3339(&s), Some(ms));
    }
}
