//! Per-app subjects (seed 001) and the user claims an app receives.
//!
//! `subject` is `id` (the identity ID), `pairwise` (a per-sector HMAC of the identity ID), or an
//! expression over the identity: `traits.<path>`, `metadata_public.<path>`,
//! `metadata_admin.<path>`, or `credentials.oidc.<provider id>` — the subject the identity is
//! linked with at that upstream (IDaaS's `identityProviderUserMap.{idpId}.identityProviderUserId`).
//! An expression with no value for an identity is an error naming what is missing; it never
//! yields an empty `sub`.

use crate::Client;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tessera_core::identity::{CREDENTIAL_OIDC, Identity};

/// Why an app's subject has no value for an identity: a sentence for the error page.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingSubject(pub String);

fn path_value<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root, |v, key| v.get(key))
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The sector of a pairwise subject: the host of the app's redirect URIs (OIDC Core §8.1), or
/// its client id when it has none.
pub fn sector(client: &Client) -> String {
    client
        .redirect_uris
        .first()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| client.client_id.clone())
}

/// The `sub` this app sees for this identity. `identity` must carry its credentials when the
/// subject reads them.
pub fn resolve(client: &Client, identity: &Identity, salt: &str) -> Result<String, MissingSubject> {
    let expr = client.subject.as_str();
    if expr == "id" {
        return Ok(identity.id.to_string());
    }
    if expr == "pairwise" {
        let mut mac = Hmac::<Sha256>::new_from_slice(salt.as_bytes())
            .map_err(|_| MissingSubject("the pairwise salt is unusable".into()))?;
        mac.update(sector(client).as_bytes());
        mac.update(b"\0");
        mac.update(identity.id.to_string().as_bytes());
        return Ok(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
    }
    let missing = |what: String| MissingSubject(what);
    if let Some(provider) = expr.strip_prefix("credentials.oidc.") {
        let prefix = format!("{provider}:");
        let linked = identity.credential(CREDENTIAL_OIDC).and_then(|c| {
            c.identifiers
                .iter()
                .find_map(|i| i.strip_prefix(&prefix).map(str::to_string))
        });
        return linked.filter(|s| !s.is_empty()).ok_or_else(|| {
            missing(format!(
                "your account is not linked with `{provider}`, and this app identifies you by your `{provider}` account (subject `{expr}`)"
            ))
        });
    }
    let (root, path) = if let Some(p) = expr.strip_prefix("traits.") {
        (&identity.traits, p)
    } else if let Some(p) = expr.strip_prefix("metadata_public.") {
        (&identity.metadata_public, p)
    } else if let Some(p) = expr.strip_prefix("metadata_admin.") {
        (&identity.metadata_admin, p)
    } else {
        return Err(missing(format!(
            "the subject expression `{expr}` is not valid"
        )));
    };
    path_value(root, path).and_then(scalar).ok_or_else(|| {
        missing(format!(
            "your account has no value for `{expr}`, which this app uses to identify you"
        ))
    })
}

fn trait_str(identity: &Identity, keys: &[&str]) -> Option<Value> {
    keys.iter()
        .find_map(|k| path_value(&identity.traits, k).and_then(scalar))
        .map(Value::String)
}

/// Standard claims by scope (OIDC Core §5.4), read from the identity's traits.
pub fn scope_claims(identity: &Identity, scopes: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    let has = |s: &str| scopes.contains(&s);
    if has("email")
        && let Some(email) = trait_str(identity, &["email", "emails.0"])
    {
        let verified = identity
            .verifiable_addresses
            .iter()
            .any(|a| a.verified && Some(a.value.as_str()) == email.as_str());
        out.insert("email".into(), email);
        out.insert("email_verified".into(), json!(verified));
    }
    if has("profile") {
        let first = trait_str(identity, &["name.first", "given_name", "first_name"]);
        let last = trait_str(identity, &["name.last", "family_name", "last_name"]);
        let full = trait_str(identity, &["name"]).or_else(|| {
            let parts: Vec<String> = [&first, &last]
                .iter()
                .filter_map(|p| p.as_ref().and_then(Value::as_str).map(str::to_string))
                .collect();
            (!parts.is_empty()).then(|| Value::String(parts.join(" ")))
        });
        for (k, v) in [
            ("name", full),
            ("given_name", first),
            ("family_name", last),
            (
                "preferred_username",
                trait_str(identity, &["username", "nickname"]),
            ),
            ("picture", trait_str(identity, &["picture", "avatar"])),
        ] {
            if let Some(v) = v {
                out.insert(k.into(), v);
            }
        }
    }
    if has("phone")
        && let Some(p) = trait_str(identity, &["phone", "phone_number"])
    {
        out.insert("phone_number".into(), p);
    }
    out
}

/// What an app's claims mapper sees as `std.extVar('claims')`.
pub fn mapper_input(client: &Client, identity: &Identity, sub: &str, scopes: &[&str]) -> Value {
    json!({
        "sub": sub,
        "client_id": client.client_id,
        "scope": scopes.join(" "),
        "identity": {
            "id": identity.id,
            "traits": identity.traits,
            "metadata_public": identity.metadata_public,
        },
    })
}
