//! Client authentication with a signed JWT, `private_key_jwt` (RFC 7523 §2.2, OIDC Core §9).
//!
//! An app that registers the public half of its key pair (`jwks`) never holds a shared secret:
//! it proves itself by signing a short-lived assertion. That is what enterprise and
//! machine-to-machine clients (and FAPI profiles) ask for, because a leaked database or config
//! backup then yields nothing that can authenticate as the app.
//!
//! `client_secret_jwt` (an HMAC over the client secret) is deliberately absent: Tessera keeps
//! only the SHA-256 of each secret, so it could not verify such a signature, and keeping the
//! secrets in a readable form would weaken every app to offer it to some.
//!
//! What is checked, and why:
//! - only asymmetric algorithms (no `HS*`, no `none`): a public key must never double as an
//!   HMAC secret (algorithm confusion);
//! - `iss` = `sub` = the app's `client_id`, and `aud` names this issuer or one of its endpoints
//!   that authenticate clients;
//! - `exp` is required and at most [`MAX_LIFETIME_S`] away, so a `jti` need be remembered only
//!   that long; each `jti` is accepted once per app (a replayed assertion is refused even on
//!   another instance: the store's primary key decides).

use crate::client::Client;
use crate::{OpError, OpResult, Provider};
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tessera_core::crypto;

/// `client_assertion_type` for a JWT assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The signature algorithms accepted for assertions (and announced in discovery).
pub const ASSERTION_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// How far in the future an assertion may expire. Libraries sign for 60 s (openid-client) to
/// 5 min; a longer-lived assertion is a bearer credential worth stealing.
pub const MAX_LIFETIME_S: i64 = 600;

/// Clock difference tolerated between the app and this server.
const LEEWAY_S: u64 = 30;

/// An assertion is a few hundred bytes; this bounds the work an anonymous caller can cause.
const MAX_ASSERTION_LEN: usize = 8 * 1024;

/// At most this many keys per app: enough for rotation, small enough to try each.
const MAX_KEYS: usize = 10;

fn alg_of(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// Checks an app's registered `jwks` and returns it in its stored form. Only public keys of
/// the asymmetric kinds are taken; a private or symmetric key is refused, because whoever
/// pasted it has just leaked it (and a symmetric key would allow algorithm confusion).
pub fn check_jwks(jwks: &Value) -> Result<Value, String> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("`jwks` must be a JWK Set: an object with a `keys` array (RFC 7517 §5)")?;
    if keys.is_empty() {
        return Err("`jwks.keys` is empty: register at least one public key".into());
    }
    if keys.len() > MAX_KEYS {
        return Err(format!(
            "`jwks.keys` holds {} keys; at most {MAX_KEYS} are accepted (remove retired keys)",
            keys.len()
        ));
    }
    for (i, key) in keys.iter().enumerate() {
        check_public_jwk(key, &format!("`jwks.keys[{i}]`"))?;
    }
    let kids: Vec<&str> = keys
        .iter()
        .filter_map(|k| k.get("kid").and_then(Value::as_str))
        .collect();
    for (i, kid) in kids.iter().enumerate() {
        if kids[..i].contains(kid) {
            return Err(format!(
                "`jwks`: two keys have the kid `{kid}`; kids must be unique"
            ));
        }
    }
    Ok(jwks.clone())
}

/// Checks one public key (`at` names it in messages): the kinds and sizes accepted, no private
/// or symmetric material, `use` `sig`, an accepted `alg`.
pub(crate) fn check_public_jwk(key: &Value, at: &str) -> Result<(), String> {
    let Some(obj) = key.as_object() else {
        return Err(format!("{at} is not a JSON object"));
    };
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        if obj.contains_key(private) {
            return Err(format!(
                "{at} holds private or symmetric key material (`{private}`): only the public half of a key pair belongs here; replace this key, it has been exposed"
            ));
        }
    }
    match obj.get("kty").and_then(Value::as_str) {
        Some("RSA" | "EC" | "OKP") => {}
        Some(other) => {
            return Err(format!(
                "{at}: key type `{other}` is not accepted; use RSA, EC or OKP (Ed25519)"
            ));
        }
        None => return Err(format!("{at} has no `kty`")),
    }
    if let Some(alg) = obj.get("alg").and_then(Value::as_str)
        && alg_of(alg).is_none()
    {
        return Err(format!(
            "{at}: `alg` `{alg}` is not accepted; use one of {}",
            ASSERTION_ALGS.join(", ")
        ));
    }
    if obj
        .get("use")
        .and_then(Value::as_str)
        .is_some_and(|u| u != "sig")
    {
        return Err(format!("{at}: `use` must be `sig` (or absent)"));
    }
    key_material(obj).map_err(|why| format!("{at}: {why}"))?;
    let jwk: Jwk =
        serde_json::from_value(key.clone()).map_err(|e| format!("{at} is not a valid JWK: {e}"))?;
    DecodingKey::from_jwk(&jwk).map_err(|e| format!("{at} is not a usable public key: {e}"))?;
    Ok(())
}

/// Checks that a public key's numbers have the sizes its type needs (and, for P-256, that the
/// point is on the curve): the JWK parser takes any bytes, and a broken key registered now
/// would only fail, unexplained, at the app's first sign-in.
fn key_material(key: &serde_json::Map<String, Value>) -> Result<(), String> {
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        let text = key
            .get(name)
            .and_then(Value::as_str)
            .ok_or(format!("`{name}` is missing"))?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| format!("`{name}` is not base64url without padding"))
    };
    let crv = key.get("crv").and_then(Value::as_str).unwrap_or_default();
    match key.get("kty").and_then(Value::as_str) {
        Some("RSA") => {
            let n = bytes("n")?;
            bytes("e")?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < 2048 {
                return Err(format!(
                    "the RSA modulus has about {bits} bits; at least 2048 are required"
                ));
            }
        }
        Some("EC") => {
            let size = match crv {
                "P-256" => 32,
                "P-384" => 48,
                other => {
                    return Err(format!(
                        "curve `{other}` is not accepted; use P-256 or P-384"
                    ));
                }
            };
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != size || y.len() != size {
                return Err(format!("`x` and `y` of a {crv} key are {size} bytes each"));
            }
            if crv == "P-256" {
                let mut sec1 = vec![4u8];
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                p256::PublicKey::from_sec1_bytes(&sec1)
                    .map_err(|_| "the point (`x`, `y`) is not on the P-256 curve".to_string())?;
            }
        }
        Some("OKP") => {
            if crv != "Ed25519" {
                return Err(format!("curve `{crv}` is not accepted; use Ed25519"));
            }
            if bytes("x")?.len() != 32 {
                return Err("`x` of an Ed25519 key is 32 bytes".into());
            }
        }
        _ => {}
    }
    Ok(())
}

/// Verifies a JWT signed by an app with one of its registered keys: the claims, or the last
/// verification error (`None` when no key matched at all). A `kid` picks the key; keys
/// registered without one are tried too, so an app whose library adds a kid the admin did not
/// paste still works. Shared by client assertions and request objects (JAR).
pub(crate) fn verify_with_keys(
    set: &JwkSet,
    kid: Option<&str>,
    jwt: &str,
    validation: &Validation,
) -> (Option<Value>, Option<jsonwebtoken::errors::Error>) {
    let mut last = None;
    let candidates = set.keys.iter().filter(|k| match (kid, &k.common.key_id) {
        (Some(kid), Some(registered)) => kid == registered,
        _ => true,
    });
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        match jsonwebtoken::decode::<Value>(jwt, &key, validation) {
            Ok(data) => return (Some(data.claims), None),
            Err(e) => last = Some(e),
        }
    }
    (None, last)
}

/// Checks `token_endpoint_auth_signing_alg`.
pub fn check_alg(alg: &str) -> Result<(), String> {
    match alg_of(alg) {
        Some(_) => Ok(()),
        None => Err(format!(
            "`token_endpoint_auth_signing_alg` `{alg}` is not accepted; use one of {}",
            ASSERTION_ALGS.join(", ")
        )),
    }
}

/// The `sub` (or `iss`) of an assertion, read *before* its signature is checked, only to find
/// which app's keys to check it with. Nothing read here is trusted.
fn claimed_client(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("sub")
        .or_else(|| v.get("iss"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

impl Provider {
    /// Authenticates an app by its `client_assertion`. `form_id` is the `client_id` sent beside
    /// it, if any; it must name the same app.
    pub(crate) async fn authenticate_assertion(
        &self,
        assertion: &str,
        form_id: Option<&str>,
    ) -> OpResult<Client> {
        let refuse =
            |why: &str| OpError::invalid_client(format!("Client assertion refused: {why}"));
        if assertion.len() > MAX_ASSERTION_LEN {
            return Err(refuse("it is longer than 8 KiB."));
        }
        let header = jsonwebtoken::decode_header(assertion)
            .map_err(|e| refuse(&format!("it is not a signed JWT ({e}).")))?;
        let alg_name = format!("{:?}", header.alg);
        if !ASSERTION_ALGS.contains(&alg_name.as_str()) {
            return Err(refuse(&format!(
                "its algorithm `{alg_name}` is not accepted; sign with one of {}.",
                ASSERTION_ALGS.join(", ")
            )));
        }
        let client_id = match (claimed_client(assertion), form_id) {
            (Some(sub), Some(id)) if sub != id => {
                return Err(refuse("its `sub` differs from the client_id sent with it."));
            }
            (Some(sub), _) => sub,
            (None, _) => return Err(refuse("it has no `sub` naming the app.")),
        };
        let unknown = || refuse("unknown client, or a key it has not registered.");
        let client = self.client(&client_id).await?.ok_or_else(unknown)?;
        if client.token_endpoint_auth_method != crate::AuthMethod::PrivateKeyJwt {
            return Err(OpError::invalid_client(format!(
                "App `{client_id}` authenticates with `{}`, not with a client assertion.",
                client.token_endpoint_auth_method
            )));
        }
        if let Some(want) = &client.token_endpoint_auth_signing_alg
            && *want != alg_name
        {
            return Err(refuse(&format!(
                "the app is registered to sign with `{want}`, this assertion uses `{alg_name}`."
            )));
        }
        let set: JwkSet = client
            .jwks
            .as_ref()
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .ok_or_else(unknown)?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_S;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        validation.set_issuer(&[&client_id]);
        validation.sub = Some(client_id.clone());
        let d = self.discovery();
        validation.set_audience(&[
            d.issuer.as_str(),
            d.token_endpoint.as_str(),
            d.introspection_endpoint.as_str(),
            d.revocation_endpoint.as_str(),
            d.pushed_authorization_request_endpoint.as_str(),
        ]);
        let (claims, last) = verify_with_keys(&set, header.kid.as_deref(), assertion, &validation);
        let Some(claims) = claims else {
            use jsonwebtoken::errors::ErrorKind as K;
            return Err(match last.as_ref().map(|e| e.kind()) {
                None => refuse(&match &header.kid {
                    Some(kid) => {
                        format!("app `{client_id}` has no registered key with kid `{kid}`.")
                    }
                    None => format!("app `{client_id}` has no registered key for `{alg_name}`."),
                }),
                Some(K::ExpiredSignature) => refuse("it has expired (`exp`)."),
                Some(K::ImmatureSignature) => refuse("it is not valid yet (`nbf`)."),
                Some(K::InvalidAudience) => refuse(&format!(
                    "its `aud` must name this issuer `{}` or its token endpoint.",
                    d.issuer
                )),
                Some(K::InvalidIssuer | K::InvalidSubject) => {
                    refuse("its `iss` and `sub` must both be the app's client_id.")
                }
                Some(K::MissingRequiredClaim(c)) => refuse(&format!("it has no `{c}` claim.")),
                Some(_) => refuse(&format!(
                    "its signature does not verify with the keys registered for app `{client_id}`."
                )),
            });
        };
        let now = crate::now_ms() / 1000;
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        if exp - now > MAX_LIFETIME_S {
            return Err(refuse(&format!(
                "it expires more than {MAX_LIFETIME_S} s from now; sign assertions for a few minutes at most."
            )));
        }
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| refuse("it has no `jti` (a unique id of up to 256 characters)."))?;
        let first_use = self
            .store
            .op_use_jti(
                &crypto::token_hash(&format!("client_assertion\n{client_id}\n{jti}")),
                now * 1000,
                (exp + LEEWAY_S as i64) * 1000,
            )
            .await?;
        if !first_use {
            return Err(refuse(
                "its `jti` was already used; sign a new assertion for every request.",
            ));
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ec_key() -> Value {
        json!({"kty": "EC", "crv": "P-256", "kid": "k1",
               "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
               "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
    }

    #[test]
    fn a_public_key_set_is_accepted() {
        let set = json!({"keys": [ec_key()]});
        assert_eq!(check_jwks(&set), Ok(set.clone()));
    }

    #[test]
    fn private_symmetric_and_malformed_keys_are_refused() {
        let mut private = ec_key();
        private["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
        let oct = json!({"kty": "oct", "k": "c2VjcmV0"});
        let cases = [
            (
                json!({"keys": [private]}),
                "private or symmetric key material (`d`)",
            ),
            (
                json!({"keys": [oct]}),
                "private or symmetric key material (`k`)",
            ),
            (json!({"keys": []}), "empty"),
            (json!([ec_key()]), "a JWK Set"),
            (
                json!({"keys": [ec_key(), ec_key()]}),
                "two keys have the kid `k1`",
            ),
            (
                json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}),
                "32 bytes each",
            ),
            (
                json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"}]}),
                "not on the P-256 curve",
            ),
            (
                json!({"keys": [{"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"}]}),
                "curve `secp256k1`",
            ),
            (
                json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}),
                "at least 2048",
            ),
            (
                json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AA"}]}),
                "32 bytes",
            ),
            (
                json!({"keys": [{"kty": "RSA", "alg": "HS256", "n": "AQAB", "e": "AQAB"}]}),
                "`alg` `HS256` is not accepted",
            ),
            (
                json!({"keys": [{"kty": "EC", "use": "enc", "crv": "P-256", "x": "AA", "y": "AA"}]}),
                "`use` must be `sig`",
            ),
            (
                json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "f8!", "y": "AA"}]}),
                "not base64url",
            ),
        ];
        for (set, want) in cases {
            let got = check_jwks(&set).err().unwrap_or_default();
            assert!(got.contains(want), "{set}: {got}");
        }
    }

    #[test]
    fn the_claimed_client_is_read_from_sub_then_iss() {
        let enc = |v: Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let jwt = |v: Value| format!("{}.{}.sig", enc(json!({"alg": "ES256"})), enc(v));
        assert_eq!(
            claimed_client(&jwt(json!({"sub": "a", "iss": "b"}))).as_deref(),
            Some("a")
        );
        assert_eq!(
            claimed_client(&jwt(json!({"iss": "b"}))).as_deref(),
            Some("b")
        );
        assert_eq!(claimed_client(&jwt(json!({"sub": 5}))), None);
        assert_eq!(claimed_client("not a jwt"), None);
    }

    #[test]
    fn only_asymmetric_algorithms_are_accepted() {
        assert!(check_alg("ES256").is_ok());
        for bad in ["HS256", "none", "es256", ""] {
            assert!(check_alg(bad).is_err(), "{bad}");
        }
    }
}
