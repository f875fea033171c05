//! id_token signatures: ES256 and ES384 verified with ring instead of RustCrypto.
//!
//! Every returning social sign-in verifies one id_token, and with the pure-Rust `p256` backend
//! that verification was the largest single cost of the callback (about 0.3 ms of CPU, a third
//! of the server's async work per sign-in, bench/README.md). ring (already linked for TLS and
//! the OpenID Provider's signatures) does the same check several times faster. jsonwebtoken
//! still parses and validates the token (claims, `exp`, `aud`, `iss`); only the signature
//! check of these two algorithms is handed to ring, through jsonwebtoken's process-wide
//! [`CryptoProvider`]. Every other algorithm, signing and key utilities stay RustCrypto's.

use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier};
use jsonwebtoken::{Algorithm, DecodingKey};
use ring::signature::{self as ring_sig, UnparsedPublicKey};
use std::sync::OnceLock;

/// Installs the provider for this process, once. When another one was installed first (a
/// program embedding Tessera chose its own), that one is kept: verification stays correct,
/// only slower.
pub fn install() {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let base = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
        let provider = PROVIDER.get_or_init(|| CryptoProvider {
            signer_factory: base.signer_factory,
            verifier_factory: verifier,
            key_utils: base.key_utils.clone(),
        });
        // An error means another provider is in place already: nothing to do.
        let _ = provider.install_default();
    });
}

/// ES256/ES384 over a raw public point through ring; anything else through RustCrypto.
fn verifier(
    alg: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    let ring_alg: Option<(&'static ring_sig::EcdsaVerificationAlgorithm, usize)> = match alg {
        Algorithm::ES256 => Some((&ring_sig::ECDSA_P256_SHA256_FIXED, 65)),
        Algorithm::ES384 => Some((&ring_sig::ECDSA_P384_SHA384_FIXED, 97)),
        _ => None,
    };
    if let Some((ring_alg, point_len)) = ring_alg
        && key.family() == jsonwebtoken::AlgorithmFamily::Ec
        && let Ok(point) = key.try_get_as_bytes()
        // A JWK's `x` and `y` arrive as the uncompressed point 04‖x‖y; a key given any other
        // way (DER, PEM) is left to RustCrypto, which parses those.
        && point.len() == point_len
        && point.first() == Some(&0x04)
    {
        return Ok(Box::new(EcdsaVerifier {
            alg: *alg,
            ring_alg,
            point: point.to_vec(),
        }));
    }
    (jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.verifier_factory)(alg, key)
}

struct EcdsaVerifier {
    alg: Algorithm,
    ring_alg: &'static ring_sig::EcdsaVerificationAlgorithm,
    point: Vec<u8>,
}

impl signature::Verifier<Vec<u8>> for EcdsaVerifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        UnparsedPublicKey::new(self.ring_alg, &self.point)
            .verify(msg, sig)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for EcdsaVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::Jwk;

    /// A fresh P-256 key pair and its public JWK.
    fn key_pair() -> (ring::signature::EcdsaKeyPair, Jwk) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        use base64::Engine as _;
        use ring::signature::KeyPair as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let public = pair.public_key().as_ref();
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": "k1",
            "x": b64.encode(&public[1..33]), "y": b64.encode(&public[33..65]),
        }))
        .unwrap();
        (pair, jwk)
    }

    fn token(pair: &ring::signature::EcdsaKeyPair, claims: &serde_json::Value) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let input = format!(
            "{}.{}",
            b64.encode(br#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#),
            b64.encode(claims.to_string())
        );
        let sig = pair
            .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", b64.encode(sig.as_ref()))
    }

    fn check(token: &str, jwk: &Jwk) -> jsonwebtoken::errors::Result<()> {
        install();
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::ES256);
        v.set_audience(&["app"]);
        v.set_required_spec_claims(&["exp", "aud"]);
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).map(|_| ())
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({"aud": "app", "exp": 4_000_000_000u64, "sub": "u1"})
    }

    #[test]
    fn a_valid_es256_token_verifies_through_ring() {
        let (pair, jwk) = key_pair();
        let key = DecodingKey::from_jwk(&jwk).unwrap();
        // The JWK's key takes ring's path, not RustCrypto's.
        let v = verifier(&Algorithm::ES256, &key).unwrap();
        assert_eq!(v.algorithm(), Algorithm::ES256);
        check(&token(&pair, &claims()), &jwk).unwrap();
    }

    #[test]
    fn a_tampered_or_foreign_signature_is_refused() {
        let (pair, jwk) = key_pair();
        let good = token(&pair, &claims());
        // Claims changed after signing.
        let (head, rest) = good.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let forged_claims =
            serde_json::json!({"aud": "app", "exp": 4_000_000_000u64, "sub": "admin"});
        let forged = format!("{head}.{}.{sig}", b64.encode(forged_claims.to_string()));
        let e = check(&forged, &jwk).unwrap_err();
        assert_eq!(*e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature);
        // Signed by another key.
        let (other, _) = key_pair();
        let e = check(&token(&other, &claims()), &jwk).unwrap_err();
        assert_eq!(*e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature);
        // A signature of the wrong length.
        let short = format!(
            "{}.{}",
            good.rsplit_once('.').unwrap().0,
            b64.encode([0u8; 10])
        );
        assert!(check(&short, &jwk).is_err());
    }
}
