//! The `std.extVar('claims')` object every mapper reads (seed 004): the standard claim keys at
//! the top level, everything else the upstream said under `raw_claims`.

use serde_json::{Map, Value};

/// Claim keys that stay at the top level; all others move into `raw_claims`.
pub const STANDARD_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "name",
    "given_name",
    "family_name",
    "last_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "email",
    "email_verified",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "phone_number",
    "phone_number_verified",
    "updated_at",
    "hd",
    "team",
    "username",
];

/// Splits an upstream's claims into the mapper's shape. Null values are dropped, so a mapper's
/// `'email' in claims` means "the upstream gave an email". `extra_raw` is merged into
/// `raw_claims` (providers use it for data outside the claims, e.g. DingTalk's `corpId`).
pub fn normalize_claims(
    upstream: &Map<String, Value>,
    extra_raw: Option<&Map<String, Value>>,
) -> Value {
    let mut top = Map::new();
    let mut raw = Map::new();
    for (k, v) in upstream {
        if v.is_null() {
            continue;
        }
        if STANDARD_CLAIMS.contains(&k.as_str()) {
            top.insert(k.clone(), v.clone());
        } else {
            raw.insert(k.clone(), v.clone());
        }
    }
    if let Some(extra) = extra_raw {
        for (k, v) in extra {
            raw.insert(k.clone(), v.clone());
        }
    }
    // Kratos fills `last_name` from `family_name` for mappers written against either.
    if !top.contains_key("last_name")
        && let Some(f) = top.get("family_name").cloned()
    {
        top.insert("last_name".into(), f);
    }
    top.insert("raw_claims".into(), Value::Object(raw));
    Value::Object(top)
}

/// The profile of a verified OpenID Connect sign-in: the id_token's claims (and userinfo's,
/// when merged in) without the token's own protocol claims, which describe the token rather
/// than the person, with `sub` as the subject.
pub(crate) fn id_token_profile(
    mut claims: Map<String, Value>,
    tokens: crate::provider::Tokens,
) -> Result<crate::provider::Profile, crate::upstream::UpstreamError> {
    for k in [
        "aud",
        "exp",
        "iat",
        "nbf",
        "nonce",
        "azp",
        "at_hash",
        "c_hash",
        "auth_time",
        "sid",
        "jti",
    ] {
        claims.remove(k);
    }
    let subject = claims.get("sub").and_then(subject_string).ok_or_else(|| {
        crate::upstream::UpstreamError::IdToken("`sub` is missing or empty".into())
    })?;
    Ok(crate::provider::Profile {
        subject,
        claims: normalize_claims(&claims, None),
        tokens,
    })
}

/// Sets a claim when the upstream had a value for it.
pub fn put_text(claims: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        claims.insert(key.into(), v.into());
    }
}

/// The subject as a string: numeric ids (VK, GitHub) are rendered without quotes or decimals.
pub fn subject_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn standard_keys_stay_and_the_rest_goes_to_raw_claims() {
        let up =
            json!({"sub": "1", "email": "a@b.c", "groups": ["x"], "nonce": "n", "locale": null});
        let c = normalize_claims(up.as_object().unwrap(), None);
        assert_eq!(c["sub"], "1");
        assert_eq!(c["email"], "a@b.c");
        assert_eq!(c["raw_claims"]["groups"], json!(["x"]));
        assert!(c.get("groups").is_none());
        assert!(c.get("locale").is_none(), "null claims are dropped");
    }

    #[test]
    fn numeric_subjects_render_plainly() {
        assert_eq!(subject_string(&json!(123456)).as_deref(), Some("123456"));
        assert_eq!(subject_string(&json!("abc")).as_deref(), Some("abc"));
        assert_eq!(subject_string(&json!("")), None);
        assert_eq!(subject_string(&json!(null)), None);
    }
}
