//! OpenID Connect pieces shared by OIDC-speaking providers: the discovery document and the
//! JWKS (both cached), and id_token verification.

use crate::upstream::{Upstream, UpstreamError};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// How long a discovery document or key set is trusted before it is fetched again.
pub const CACHE_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: String,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

type Cached<T> = RwLock<Option<(Instant, Arc<T>)>>;

/// Discovery and keys of one issuer.
pub struct Issuer {
    issuer_url: String,
    http: Upstream,
    discovery: Cached<Discovery>,
    jwks: Cached<JwkSet>,
    /// Whether a discovery document fetched for `issuer_url` may name another issuer
    /// (Microsoft's `common` document says `…/{tenantid}/v2.0`); `None`: it must be the same.
    document_issuer_rule: Option<DocumentIssuerRule>,
    /// The discovery document was given ([`Issuer::fixed`]), not fetched: it never expires.
    fixed: bool,
}

/// `(fetched for, says)` → whether the discovery document is the one asked for.
pub type DocumentIssuerRule = fn(&str, &str) -> bool;

/// Algorithms accepted on id_tokens. Never `none`, never HMAC (the client secret is not a
/// signing key we want upstreams to use).
const ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// What a verified id_token must say.
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub audiences: Vec<String>,
    pub client_id: &'a str,
    pub nonce: &'a str,
}

impl Issuer {
    pub fn new(issuer_url: &str, http: Upstream) -> Self {
        crate::jws::install();
        Issuer {
            issuer_url: issuer_url.trim_end_matches('/').to_string(),
            http,
            discovery: RwLock::new(None),
            jwks: RwLock::new(None),
            document_issuer_rule: None,
            fixed: false,
        }
    }

    /// An issuer without a discovery document Tessera relies on (Apple's endpoints are fixed,
    /// as Kratos has them): `document` stands for it and is never fetched.
    pub fn fixed(http: Upstream, document: Discovery) -> Self {
        crate::jws::install();
        Issuer {
            issuer_url: document.issuer.trim_end_matches('/').to_string(),
            http,
            discovery: RwLock::new(Some((Instant::now(), Arc::new(document)))),
            jwks: RwLock::new(None),
            document_issuer_rule: None,
            fixed: true,
        }
    }

    /// An issuer whose discovery document may name its issuer differently, as `rule` allows.
    pub fn with_document_issuer_rule(
        issuer_url: &str,
        http: Upstream,
        rule: DocumentIssuerRule,
    ) -> Self {
        Issuer {
            document_issuer_rule: Some(rule),
            ..Issuer::new(issuer_url, http)
        }
    }

    /// The issuer URL this was made for (without a trailing `/`).
    pub fn url(&self) -> &str {
        &self.issuer_url
    }

    pub async fn discovery(&self) -> Result<Arc<Discovery>, UpstreamError> {
        if let Some((at, d)) = self.discovery.read().await.as_ref()
            && (self.fixed || at.elapsed() < CACHE_TTL)
        {
            return Ok(d.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer_url);
        let endpoint = "discovery document";
        let v = self
            .http
            .json(endpoint, self.http.client().get(&url))
            .await?;
        let d: Discovery = serde_json::from_value(v).map_err(|e| UpstreamError::InvalidJson {
            endpoint: endpoint.into(),
            detail: e.to_string(),
        })?;
        // OIDC Discovery §4.3: the document must be for the issuer it was fetched from.
        let said = d.issuer.trim_end_matches('/');
        let same = match self.document_issuer_rule {
            Some(rule) => rule(&self.issuer_url, said),
            None => said == self.issuer_url,
        };
        if !same {
            return Err(UpstreamError::Missing {
                endpoint: endpoint.into(),
                what: format!(
                    "a matching issuer: it says `{}` but was fetched for `{}`",
                    d.issuer, self.issuer_url
                ),
            });
        }
        let d = Arc::new(d);
        *self.discovery.write().await = Some((Instant::now(), d.clone()));
        Ok(d)
    }

    async fn keys(&self, jwks_uri: &str, refresh: bool) -> Result<Arc<JwkSet>, UpstreamError> {
        if !refresh
            && let Some((at, k)) = self.jwks.read().await.as_ref()
            && at.elapsed() < CACHE_TTL
        {
            return Ok(k.clone());
        }
        let endpoint = "JWKS";
        let v = self
            .http
            .json(endpoint, self.http.client().get(jwks_uri))
            .await?;
        let set: JwkSet = serde_json::from_value(v).map_err(|e| UpstreamError::InvalidJson {
            endpoint: endpoint.into(),
            detail: e.to_string(),
        })?;
        let set = Arc::new(set);
        *self.jwks.write().await = Some((Instant::now(), set.clone()));
        Ok(set)
    }

    /// Verifies signature, `iss`, `aud`, `azp`, `exp`, `iat` and `nonce`; returns the claims.
    /// An unknown `kid` refetches the key set once (the upstream rotated its keys).
    pub async fn verify_id_token(
        &self,
        token: &str,
        expect: &Expect<'_>,
    ) -> Result<Map<String, Value>, UpstreamError> {
        self.verify_id_token_issued_by(token, expect, &[expect.issuer])
            .await
    }

    /// [`Self::verify_id_token`] for an upstream that writes its issuer in more than one way
    /// (Google: `https://accounts.google.com` or `accounts.google.com`): `iss` must be one of
    /// `issuers`.
    pub async fn verify_id_token_issued_by(
        &self,
        token: &str,
        expect: &Expect<'_>,
        issuers: &[&str],
    ) -> Result<Map<String, Value>, UpstreamError> {
        let bad = |m: String| UpstreamError::IdToken(m);
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| bad(format!("not a signed JWT ({e})")))?;
        if !ALGS.contains(&header.alg) {
            return Err(bad(format!(
                "signed with {:?}, which is not accepted (RS*, PS*, ES256/384 only)",
                header.alg
            )));
        }
        let d = self.discovery().await?;
        let mut keys = self.keys(&d.jwks_uri, false).await?;
        let mut jwk = find_key(&keys, header.kid.as_deref(), header.alg);
        if jwk.is_none() {
            keys = self.keys(&d.jwks_uri, true).await?;
            jwk = find_key(&keys, header.kid.as_deref(), header.alg);
        }
        let jwk = jwk.ok_or_else(|| {
            bad(format!(
                "no key in the upstream's JWKS matches kid {:?}",
                header.kid.as_deref().unwrap_or("(none)")
            ))
        })?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| bad(format!("unusable JWKS key: {e}")))?;
        checked_claims(token, &key, header.alg, expect, issuers)
    }
}

/// Checks a JWT's signature under `key` with `alg`, then `iss` (one of `issuers`), `aud`,
/// `exp`, `sub`, the attempt's `nonce` and `azp`; returns its claims. The one place the claim
/// rules live: JWKS-verified id_tokens and LINE's (HS256 under the channel secret) use it.
pub(crate) fn checked_claims(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
    expect: &Expect<'_>,
    issuers: &[&str],
) -> Result<Map<String, Value>, UpstreamError> {
    let bad = |m: String| UpstreamError::IdToken(m);
    let mut v = Validation::new(alg);
    v.set_issuer(issuers);
    v.set_audience(&expect.audiences);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = 60;
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        bad(match e.kind() {
            K::InvalidIssuer => format!("`iss` is not `{}`", issuers.join("` or `")),
            K::InvalidAudience => format!("`aud` does not include `{}`", expect.client_id),
            K::ExpiredSignature => "it has expired (`exp` is in the past)".into(),
            K::InvalidSignature => "the signature does not verify".into(),
            K::MissingRequiredClaim(c) => format!("required claim `{c}` is missing"),
            K::ImmatureSignature => "it is not valid yet (`nbf`)".into(),
            _ => e.to_string(),
        })
    })?;
    let claims = data.claims;
    let nonce = claims
        .get("nonce")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !tessera_core::crypto::constant_time_eq(nonce, expect.nonce) {
        return Err(bad(
            "`nonce` does not match the one sent with this sign-in".into()
        ));
    }
    // OIDC Core §3.1.3.7: with several audiences, `azp` must be this client.
    let multi_aud = claims
        .get("aud")
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() > 1);
    if let Some(azp) = claims.get("azp").and_then(Value::as_str) {
        if azp != expect.client_id {
            return Err(bad(format!("`azp` is `{azp}`, not this client")));
        }
    } else if multi_aud {
        return Err(bad("several audiences but no `azp`".into()));
    }
    Ok(claims)
}

fn find_key<'a>(
    set: &'a JwkSet,
    kid: Option<&str>,
    alg: Algorithm,
) -> Option<&'a jsonwebtoken::jwk::Jwk> {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    let family_ok = |j: &jsonwebtoken::jwk::Jwk| {
        matches!(
            (&j.algorithm, alg),
            (
                P::RSA(_),
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ) | (P::EllipticCurve(_), Algorithm::ES256 | Algorithm::ES384)
        )
    };
    match kid {
        Some(k) => set
            .keys
            .iter()
            .find(|j| j.common.key_id.as_deref() == Some(k) && family_ok(j)),
        // Without a kid, only an unambiguous key set is usable.
        None => {
            let mut candidates = set.keys.iter().filter(|j| family_ok(j));
            let first = candidates.next();
            if candidates.next().is_some() {
                None
            } else {
                first
            }
        }
    }
}
