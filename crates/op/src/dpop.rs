//! DPoP (RFC 9449): tokens bound to a key the app holds, so a stolen access or refresh token is
//! useless without the private key. The app signs a short proof for every request; the token
//! endpoint binds what it issues to the proof key's thumbprint (`jkt`): JWT access tokens carry
//! `cnf.jkt`, stored tokens keep it in their row, and userinfo accepts a bound token only as
//! `Authorization: DPoP` with a fresh proof over that token (`ath`).
//!
//! Server nonces are always required (§8): a proof must carry a `nonce` this server handed out
//! in a `DPoP-Nonce` header within the last few minutes, so proofs cannot be made in advance
//! by someone who once had the key. Nonces are stateless: an HMAC of the time window under a
//! key derived from `secrets.cipher`, so every instance accepts every instance's nonces. A
//! first request without one is answered `use_dpop_nonce` with a nonce; clients such as
//! openid-client retry with it on their own.

use crate::assertion::{ASSERTION_ALGS, check_public_jwk};
use crate::{ErrorCode, OpError, OpResult, Provider};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_core::crypto;

/// The algorithms a proof may be signed with (asymmetric only, as for client assertions).
pub const DPOP_ALGS: &[&str] = ASSERTION_ALGS;

/// A proof is a few hundred bytes; this bounds the work an anonymous caller can cause.
const MAX_PROOF_LEN: usize = 8 * 1024;

/// How old a proof's `iat` may be, and how far ahead of this server's clock.
const MAX_AGE_S: i64 = 300;
const FUTURE_SKEW_S: i64 = 60;

/// A nonce is valid in the window it was made in and the next one: 5 to 10 minutes.
const NONCE_WINDOW_S: i64 = 300;

/// How a request presented DPoP: the `DPoP` header (if any), and the HTTP method and the URL
/// of the endpoint it was sent to, as the proof must name them (`htm`, `htu`).
#[derive(Debug, Clone, Copy)]
pub struct DpopRequest<'a> {
    pub proof: Option<&'a str>,
    pub method: &'a str,
}

/// How an access token came to a resource endpoint (userinfo).
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    /// `Authorization: DPoP <token>` rather than `Bearer`.
    pub dpop_scheme: bool,
    pub dpop: DpopRequest<'a>,
}

/// The JWK SHA-256 thumbprint (RFC 7638): the required members of the key, in lexicographic
/// order, without white space.
pub fn thumbprint(jwk: &Value) -> Result<String, String> {
    let s = |k: &str| -> Result<String, String> {
        jwk.get(k)
            .and_then(Value::as_str)
            .map(|v| Value::String(v.into()).to_string())
            .ok_or(format!("the key has no `{k}`"))
    };
    let canonical = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            s("crv")?,
            s("x")?,
            s("y")?
        ),
        Some("RSA") => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, s("e")?, s("n")?),
        Some("OKP") => format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, s("crv")?, s("x")?),
        _ => return Err("the key type must be EC, RSA or OKP".into()),
    };
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

fn proof_error(why: impl std::fmt::Display) -> OpError {
    OpError::new(
        ErrorCode::InvalidDpopProof,
        format!("DPoP proof refused: {why}"),
    )
}

/// `htu` compared as RFC 9449 §4.3 says: without query and fragment.
fn same_target(htu: &str, endpoint: &str) -> bool {
    match url::Url::parse(htu) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.as_str() == endpoint
        }
        Err(_) => false,
    }
}

impl Provider {
    fn nonce_for(&self, window: i64) -> Option<String> {
        let key = self.at_keys.first()?;
        let mac = crate::token::cc_mac(key, &format!("dpop-nonce.{window}"));
        Some(format!("{window}.{}", &mac[..22.min(mac.len())]))
    }

    /// A nonce for the `DPoP-Nonce` header (None without `secrets.cipher`).
    pub fn dpop_nonce(&self) -> Option<String> {
        self.nonce_for(crate::now_ms() / 1000 / NONCE_WINDOW_S)
    }

    fn nonce_ok(&self, nonce: &str) -> bool {
        let now = crate::now_ms() / 1000 / NONCE_WINDOW_S;
        [now, now - 1].iter().any(|w| {
            self.nonce_for(*w)
                .is_some_and(|n| crypto::constant_time_eq(&n, nonce))
        })
    }

    /// Checks a DPoP proof for a request to `endpoint` (`access_token`: the token it must cover
    /// with `ath`, at resource endpoints). Returns the proof key's thumbprint.
    pub(crate) async fn check_dpop(
        &self,
        proof: &str,
        method: &str,
        endpoint: &str,
        access_token: Option<&str>,
    ) -> OpResult<String> {
        if proof.len() > MAX_PROOF_LEN {
            return Err(proof_error("it is longer than 8 KiB."));
        }
        let header: Value = proof
            .split('.')
            .next()
            .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| proof_error("it is not a JWT."))?;
        if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
            return Err(proof_error("its header must have `typ` `dpop+jwt`."));
        }
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        if !DPOP_ALGS.contains(&alg) {
            return Err(proof_error(format!(
                "its algorithm `{alg}` is not accepted; sign with one of {}.",
                DPOP_ALGS.join(", ")
            )));
        }
        let jwk = header
            .get("jwk")
            .ok_or_else(|| proof_error("its header has no `jwk` (the public key)."))?;
        check_public_jwk(jwk, "its `jwk`").map_err(proof_error)?;
        let jkt = thumbprint(jwk).map_err(proof_error)?;
        let key = serde_json::from_value::<Jwk>(jwk.clone())
            .ok()
            .and_then(|k| DecodingKey::from_jwk(&k).ok())
            .ok_or_else(|| proof_error("its `jwk` is not a usable public key."))?;
        let alg = jsonwebtoken::decode_header(proof)
            .map_err(|e| proof_error(format!("its header is malformed ({e}).")))?
            .alg;
        let mut v = Validation::new(alg);
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Value>(proof, &key, &v)
            .map_err(|_| proof_error("its signature does not verify with its own `jwk`."))?
            .claims;
        let str_claim = |k: &str| claims.get(k).and_then(Value::as_str);
        if str_claim("htm") != Some(method) {
            return Err(proof_error(format!("its `htm` must be `{method}`.")));
        }
        if !str_claim("htu").is_some_and(|u| same_target(u, endpoint)) {
            return Err(proof_error(format!("its `htu` must be `{endpoint}`.")));
        }
        let now = crate::now_ms() / 1000;
        let iat = claims
            .get("iat")
            .and_then(Value::as_i64)
            .ok_or_else(|| proof_error("it has no numeric `iat`."))?;
        if iat < now - MAX_AGE_S || iat > now + FUTURE_SKEW_S {
            return Err(proof_error(
                "its `iat` is too far from now; make a fresh proof for every request (and check the clock).",
            ));
        }
        if let Some(token) = access_token {
            let want = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
            if str_claim("ath") != Some(want.as_str()) {
                return Err(proof_error(
                    "its `ath` must be the SHA-256 (base64url) of the access token it is sent with.",
                ));
            }
        }
        match str_claim("nonce") {
            Some(n) if self.nonce_ok(n) => {}
            got => {
                return Err(OpError::new(
                    ErrorCode::UseDpopNonce,
                    match got {
                        None => {
                            "DPoP proofs must carry the server's nonce: retry with the `DPoP-Nonce` header of this answer."
                        }
                        Some(_) => {
                            "The DPoP nonce is unknown or too old: retry with the `DPoP-Nonce` header of this answer."
                        }
                    },
                ));
            }
        }
        let jti = str_claim("jti")
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| proof_error("it has no `jti` (a unique id of up to 256 characters)."))?;
        let first = self
            .store
            .op_use_jti(
                &crypto::token_hash(&format!("dpop\n{jkt}\n{jti}")),
                now * 1000,
                (now + MAX_AGE_S + FUTURE_SKEW_S) * 1000,
            )
            .await?;
        if !first {
            return Err(proof_error(
                "its `jti` was used before; make a fresh proof for every request.",
            ));
        }
        Ok(jkt)
    }

    /// The key a token request binds its tokens to: the proof's thumbprint, if it sent one.
    pub(crate) async fn token_binding(&self, dpop: DpopRequest<'_>) -> OpResult<Option<String>> {
        match dpop.proof {
            None => Ok(None),
            Some(proof) => Ok(Some(
                self.check_dpop(proof, dpop.method, &self.endpoint("token"), None)
                    .await?,
            )),
        }
    }

    /// Checks how a token was presented against the key it is bound to (`bound`).
    pub(crate) async fn check_presentation(
        &self,
        token: &str,
        bound: Option<&str>,
        presented: Presented<'_>,
        endpoint: &str,
    ) -> OpResult<()> {
        match (bound, presented.dpop_scheme) {
            (None, false) => Ok(()),
            (None, true) => Err(OpError::invalid_token(
                "This access token is not DPoP-bound: send it as `Authorization: Bearer`.",
            )),
            (Some(_), false) => Err(OpError::invalid_token(
                "This access token is bound to a DPoP key: send it as `Authorization: DPoP <token>` with a DPoP proof.",
            )),
            (Some(jkt), true) => {
                let proof = presented
                    .dpop
                    .proof
                    .ok_or_else(|| proof_error("the `DPoP` header is missing."))?;
                let got = self
                    .check_dpop(proof, presented.dpop.method, endpoint, Some(token))
                    .await?;
                if got != jkt {
                    return Err(OpError::invalid_token(
                        "The DPoP proof is signed with another key than the one this token is bound to.",
                    ));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// RFC 7638 §3.1's example key and thumbprint.
    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        let jwk = json!({"kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
        assert_eq!(
            thumbprint(&jwk).as_deref(),
            Ok("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        assert!(thumbprint(&json!({"kty": "oct", "k": "x"})).is_err());
    }

    #[test]
    fn htu_is_compared_without_query_and_fragment() {
        let e = "https://id.example/oidc/token";
        assert!(same_target("https://id.example/oidc/token?x=1#y", e));
        assert!(!same_target("https://id.example/oidc/token/", e));
        assert!(!same_target("http://id.example/oidc/token", e));
        assert!(!same_target("not a url", e));
    }
}
