//! Signing keys: generated on first use (RS256 by default, ES256 by configuration), private
//! halves sealed with `secrets.cipher`, published in the JWKS with `kid`, `alg` and `use`.
//! Rotation (`tessera keys rotate`) adds a new signing key and retires the old one, which stays
//! published for `oidc_provider.key_rotation_overlap` so tokens it signed still verify.
//!
//! Each instance caches the key set for a few seconds and reloads it after that, so a rotation
//! done by another instance or by the CLI is picked up without a restart.

use crate::vocab::SigningAlg;
use crate::{OpError, OpResult, Provider, millis, now_ms};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_core::crypto::Cipher;
use tessera_store::Store;
use tessera_store::op::KeyRow;
use tokio::sync::RwLock;

/// How long an instance trusts its cached key set.
const CACHE_TTL: Duration = Duration::from_secs(5);

/// A private key parsed once, when the key set is loaded, and kept for every signature: ring's
/// key pairs are validated and precomputed at parse time and sign in constant time (RustCrypto
/// `rsa`, through jsonwebtoken, re-parsed the key for each signature and carries
/// RUSTSEC-2023-0071).
pub enum Signer {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
}

impl Signer {
    fn parse(alg: SigningAlg, der: &[u8], rng: &SystemRandom) -> Result<Signer, String> {
        match alg {
            // PKCS#1 `RSAPrivateKey`, as generated below.
            SigningAlg::Rs256 => RsaKeyPair::from_der(der)
                .map(Signer::Rsa)
                .map_err(|e| e.to_string()),
            // PKCS#8 with the public key, as p256 writes it.
            SigningAlg::Es256 => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, rng)
                    .map(Signer::Ecdsa)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// The JWS signature of `message` (RFC 7518 §3.3 and §3.4: PKCS#1 v1.5 for RS256, `r || s`
    /// for ES256).
    fn sign(
        &self,
        message: &[u8],
        rng: &SystemRandom,
    ) -> Result<Vec<u8>, ring::error::Unspecified> {
        match self {
            Signer::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, rng, message, &mut sig)?;
                Ok(sig)
            }
            Signer::Ecdsa(pair) => Ok(pair.sign(rng, message)?.as_ref().to_vec()),
        }
    }
}

pub struct Key {
    pub kid: String,
    pub alg: SigningAlg,
    pub signer: Signer,
    pub decoding: DecodingKey,
    pub jwk: Value,
    pub retired_at: Option<i64>,
}

pub struct KeyCache {
    cached: RwLock<Option<(Instant, Arc<Vec<Key>>)>>,
    rng: SystemRandom,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            cached: RwLock::default(),
            rng: SystemRandom::new(),
        }
    }
}

/// A freshly generated key: the row to store (private half sealed).
pub fn generate(alg: SigningAlg, cipher: &Cipher) -> OpResult<KeyRow> {
    use rsa::rand_core::OsRng;
    let kid =
        tessera_core::crypto::token_hash(&tessera_core::crypto::random_token())[..16].to_string();
    let (der, mut jwk) = match alg {
        SigningAlg::Es256 => {
            use p256::pkcs8::EncodePrivateKey;
            let private = p256::SecretKey::random(&mut OsRng);
            let der = private
                .to_pkcs8_der()
                .map_err(|e| OpError::server_error(format!("encoding an EC key: {e}")))?;
            let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                &private.public_key(),
                false,
            );
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err(OpError::server_error("EC key without coordinates"));
            };
            (
                der.as_bytes().to_vec(),
                json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)}),
            )
        }
        SigningAlg::Rs256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            use rsa::traits::PublicKeyParts;
            let private = rsa::RsaPrivateKey::new(&mut OsRng, 2048)
                .map_err(|e| OpError::server_error(format!("generating an RSA key: {e}")))?;
            let der = private
                .to_pkcs1_der()
                .map_err(|e| OpError::server_error(format!("encoding an RSA key: {e}")))?;
            (
                der.as_bytes().to_vec(),
                json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()), "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be())}),
            )
        }
    };
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg.as_str());
    jwk["use"] = json!("sig");
    let private_sealed = cipher
        .encrypt(&STANDARD.encode(der))
        .map_err(|e| OpError::server_error(format!("sealing the signing key: {e}")))?;
    Ok(KeyRow {
        kid,
        alg: alg.as_str().into(),
        private_sealed,
        public_jwk: jwk,
        created_at: now_ms(),
        retired_at: None,
    })
}

fn load(row: &KeyRow, cipher: &Cipher, rng: &SystemRandom) -> OpResult<Key> {
    let bad = |why: String| OpError::server_error(format!("signing key {}: {why}", row.kid));
    let alg: SigningAlg = row
        .alg
        .parse()
        .map_err(|e: crate::vocab::UnknownValue| bad(e.to_string()))?;
    let der = cipher
        .decrypt(&row.private_sealed)
        .ok()
        .and_then(|b| STANDARD.decode(b).ok())
        .ok_or_else(|| {
            OpError::server_error(format!(
                "signing key {} cannot be unsealed: was secrets.cipher changed without keeping the old secret?",
                row.kid
            ))
        })?;
    let signer = Signer::parse(alg, &der, rng).map_err(bad)?;
    let part = |k: &str| row.public_jwk[k].as_str().unwrap_or_default();
    let decoding = match alg {
        SigningAlg::Es256 => DecodingKey::from_ec_components(part("x"), part("y")),
        SigningAlg::Rs256 => DecodingKey::from_rsa_components(part("n"), part("e")),
    }
    .map_err(|e| bad(e.to_string()))?;
    Ok(Key {
        kid: row.kid.clone(),
        alg,
        signer,
        decoding,
        jwk: row.public_jwk.clone(),
        retired_at: row.retired_at,
    })
}

/// Adds a new signing key and retires the current one (the CLI's `keys rotate`, and the first
/// start). Returns the new key's id, or `None` when `only_if_none` and a key exists.
pub async fn add_key(
    store: &Store,
    cipher: &Cipher,
    alg: SigningAlg,
    only_if_none: bool,
) -> OpResult<Option<String>> {
    let cipher2 = cipher.clone();
    let row = tokio::task::spawn_blocking(move || generate(alg, &cipher2))
        .await
        .map_err(|e| OpError::server_error(format!("key generation: {e}")))??;
    let added = store.op_add_key(&row, only_if_none).await?;
    Ok(added.then_some(row.kid))
}

impl Provider {
    /// The keys in use: the signing key first, then retired keys still in their overlap.
    /// Generates the first key when there is none.
    pub async fn key_set(&self) -> OpResult<Arc<Vec<Key>>> {
        if let Some((at, keys)) = self.keys.cached.read().await.as_ref()
            && at.elapsed() < CACHE_TTL
        {
            return Ok(keys.clone());
        }
        let mut guard = self.keys.cached.write().await;
        if let Some((at, keys)) = guard.as_ref()
            && at.elapsed() < CACHE_TTL
        {
            return Ok(keys.clone());
        }
        let mut rows = self.store.op_keys().await?;
        if !rows.iter().any(|r| r.retired_at.is_none()) {
            // Several instances (or requests) may race to create the first key: whoever loses
            // uses the winner's.
            let added = add_key(&self.store, &self.cipher, self.signing_alg()?, true).await;
            rows = self.store.op_keys().await?;
            if let Err(e) = added
                && !rows.iter().any(|r| r.retired_at.is_none())
            {
                return Err(e);
            }
        }
        let cutoff = now_ms() - millis(self.op().key_rotation_overlap);
        let mut keys = Vec::new();
        // The signing key (never retired) first; newest first otherwise.
        rows.sort_by_key(|r| (r.retired_at.is_some(), -r.created_at));
        for r in rows
            .iter()
            .filter(|r| r.retired_at.is_none_or(|t| t >= cutoff))
        {
            keys.push(load(r, &self.cipher, &self.keys.rng)?);
        }
        let keys = Arc::new(keys);
        *guard = Some((Instant::now(), keys.clone()));
        Ok(keys)
    }

    /// The JWKS document.
    pub async fn jwks(&self) -> OpResult<Value> {
        let keys = self.key_set().await?;
        Ok(json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}))
    }

    /// Signs claims with the current signing key: a compact JWS whose header is what
    /// jsonwebtoken writes (`typ`, `alg`, `kid`), signed by ring with the key parsed at load.
    pub async fn sign(&self, claims: &Value) -> OpResult<String> {
        self.sign_typed(claims, None, None).await
    }

    /// [`Provider::sign`] with a `typ` header (`at+jwt` for RFC 9068 access tokens) and, when
    /// `alg` is named, a refusal if the signing key is of another algorithm (an API registered
    /// for ES256 after a rotation to RS256, say), rather than tokens its verifier rejects.
    pub async fn sign_typed(
        &self,
        claims: &Value,
        typ: Option<&str>,
        alg: Option<SigningAlg>,
    ) -> OpResult<String> {
        let keys = self.key_set().await?;
        let key = keys
            .first()
            .ok_or_else(|| OpError::server_error("no signing key"))?;
        if let Some(alg) = alg
            && alg != key.alg
        {
            return Err(OpError::server_error(format!(
                "the API wants {alg} tokens but the signing key is {}: change the API's signing_alg or rotate keys (`tessera keys rotate --alg {alg}`)",
                key.alg
            )));
        }
        let mut header = Header::new(key.alg.jwt());
        header.kid = Some(key.kid.clone());
        if let Some(t) = typ {
            header.typ = Some(t.to_string());
        }
        let json = |r: serde_json::Result<Vec<u8>>| {
            r.map(|b| URL_SAFE_NO_PAD.encode(b))
                .map_err(|e| OpError::server_error(format!("signing: {e}")))
        };
        let mut jws = format!(
            "{}.{}",
            json(serde_json::to_vec(&header))?,
            json(serde_json::to_vec(claims))?
        );
        let sig = key
            .signer
            .sign(jws.as_bytes(), &self.keys.rng)
            .map_err(|_| OpError::server_error("signing failed"))?;
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Ok(jws)
    }

    /// The algorithm of new keys (`oidc_provider.signing_alg`, validated by the configuration).
    pub fn signing_alg(&self) -> OpResult<SigningAlg> {
        self.op()
            .signing_alg
            .parse()
            .map_err(|e: crate::vocab::UnknownValue| {
                OpError::server_error(format!("oidc_provider.signing_alg: {e}"))
            })
    }

    /// Verifies a JWT access token this provider issued (RFC 9068: `typ` `at+jwt`, our `iss`,
    /// signature by a key of the JWKS, not expired); returns its claims, or `None`.
    pub async fn verify_access_jwt(&self, token: &str) -> OpResult<Option<Value>> {
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return Ok(None);
        };
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt"))
        {
            return Ok(None);
        }
        let keys = self.key_set().await?;
        let Some(key) = keys
            .iter()
            .find(|k| Some(&k.kid) == header.kid.as_ref() && k.alg.jwt() == header.alg)
        else {
            return Ok(None);
        };
        let mut v = jsonwebtoken::Validation::new(key.alg.jwt());
        v.validate_aud = false;
        v.leeway = 0;
        v.set_issuer(&[&self.issuer]);
        v.set_required_spec_claims(&["iss", "sub", "aud", "exp"]);
        Ok(jsonwebtoken::decode::<Value>(token, &key.decoding, &v)
            .ok()
            .map(|d| d.claims))
    }

    /// Verifies a token this provider signed (an `id_token_hint`), ignoring expiry; returns its
    /// claims, or `None` when it is not ours.
    pub async fn verify_own(&self, token: &str) -> OpResult<Option<Value>> {
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return Ok(None);
        };
        // The same keys sign JWT access tokens (`at+jwt`) and logout tokens (`logout+jwt`);
        // neither may pass for an id_token.
        if header
            .typ
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
        {
            return Ok(None);
        }
        let keys = self.key_set().await?;
        let Some(key) = keys
            .iter()
            .find(|k| Some(&k.kid) == header.kid.as_ref() && k.alg.jwt() == header.alg)
        else {
            return Ok(None);
        };
        let mut v = jsonwebtoken::Validation::new(key.alg.jwt());
        v.validate_exp = false;
        v.validate_aud = false;
        v.set_issuer(&[&self.issuer]);
        v.set_required_spec_claims(&["iss", "sub", "aud"]);
        Ok(jsonwebtoken::decode::<Value>(token, &key.decoding, &v)
            .ok()
            .map(|d| d.claims))
    }
}
