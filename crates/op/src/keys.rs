//! Signing keys: generated on first use (RS256 by default, ES256 by configuration), private
//! halves sealed with `secrets.cipher`, published in the JWKS with `kid`, `alg` and `use`.
//! Rotation (`tessera keys rotate`) adds a new signing key and retires the old one, which stays
//! published for `oidc_provider.key_rotation_overlap` so tokens it signed still verify.
//!
//! Each instance caches the key set for a few seconds and reloads it after that, so a rotation
//! done by another instance or by the CLI is picked up without a restart.

use crate::{OpError, OpResult, Provider, millis, now_ms};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_core::crypto::Cipher;
use tessera_store::Store;
use tessera_store::op::KeyRow;
use tokio::sync::RwLock;

/// How long an instance trusts its cached key set.
const CACHE_TTL: Duration = Duration::from_secs(5);

pub struct Key {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub jwk: Value,
    pub retired_at: Option<i64>,
}

#[derive(Default)]
pub struct KeyCache {
    cached: RwLock<Option<(Instant, Arc<Vec<Key>>)>>,
}

/// A freshly generated key: the row to store (private half sealed).
pub fn generate(alg: &str, cipher: &Cipher) -> OpResult<KeyRow> {
    use rsa::rand_core::OsRng;
    let kid =
        tessera_core::crypto::token_hash(&tessera_core::crypto::random_token())[..16].to_string();
    let (der, mut jwk) = match alg {
        "ES256" => {
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
        _ => {
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
    let alg = if alg == "ES256" { "ES256" } else { "RS256" };
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg);
    jwk["use"] = json!("sig");
    let private_sealed = cipher
        .encrypt(&STANDARD.encode(der))
        .map_err(|e| OpError::server_error(format!("sealing the signing key: {e}")))?;
    Ok(KeyRow {
        kid,
        alg: alg.into(),
        private_sealed,
        public_jwk: jwk,
        created_at: now_ms(),
        retired_at: None,
    })
}

fn load(row: &KeyRow, cipher: &Cipher) -> OpResult<Key> {
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
    let (alg, encoding, decoding) = match row.alg.as_str() {
        "ES256" => {
            let x = row.public_jwk["x"].as_str().unwrap_or_default();
            let y = row.public_jwk["y"].as_str().unwrap_or_default();
            (
                Algorithm::ES256,
                EncodingKey::from_ec_der(&der),
                DecodingKey::from_ec_components(x, y)
                    .map_err(|e| OpError::server_error(format!("key {}: {e}", row.kid)))?,
            )
        }
        _ => {
            let n = row.public_jwk["n"].as_str().unwrap_or_default();
            let e = row.public_jwk["e"].as_str().unwrap_or_default();
            (
                Algorithm::RS256,
                EncodingKey::from_rsa_der(&der),
                DecodingKey::from_rsa_components(n, e)
                    .map_err(|e| OpError::server_error(format!("key {}: {e}", row.kid)))?,
            )
        }
    };
    Ok(Key {
        kid: row.kid.clone(),
        alg,
        encoding,
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
    alg: &str,
    only_if_none: bool,
) -> OpResult<Option<String>> {
    let alg = alg.to_string();
    let cipher2 = cipher.clone();
    let row = tokio::task::spawn_blocking(move || generate(&alg, &cipher2))
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
            let added = add_key(&self.store, &self.cipher, &self.op().signing_alg, true).await;
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
            keys.push(load(r, &self.cipher)?);
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

    /// Signs claims with the current signing key.
    pub async fn sign(&self, claims: &Value) -> OpResult<String> {
        let keys = self.key_set().await?;
        let key = keys
            .first()
            .ok_or_else(|| OpError::server_error("no signing key"))?;
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| OpError::server_error(format!("signing: {e}")))
    }

    /// Verifies a token this provider signed (an `id_token_hint`), ignoring expiry; returns its
    /// claims, or `None` when it is not ours.
    pub async fn verify_own(&self, token: &str) -> OpResult<Option<Value>> {
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return Ok(None);
        };
        let keys = self.key_set().await?;
        let Some(key) = keys
            .iter()
            .find(|k| Some(&k.kid) == header.kid.as_ref() && k.alg == header.alg)
        else {
            return Ok(None);
        };
        let mut v = jsonwebtoken::Validation::new(key.alg);
        v.validate_exp = false;
        v.validate_aud = false;
        v.set_issuer(&[&self.issuer]);
        v.set_required_spec_claims(&["iss", "sub", "aud"]);
        Ok(jsonwebtoken::decode::<Value>(token, &key.decoding, &v)
            .ok()
            .map(|d| d.claims))
    }
}
