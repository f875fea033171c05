//! Random tokens and their hashes. Session tokens and CSRF secrets are bearer credentials, so
//! the database only ever holds their SHA-256, and comparisons are constant-time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// 256 bits of OS randomness, URL-safe base64 without padding (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `N` bytes of OS randomness (a TOTP secret).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// Hex SHA-256 of a token: what is stored and looked up instead of the token itself.
pub fn token_hash(token: &str) -> String {
    // On every request that carries a token: one allocation, no formatting machinery.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// Compares two secrets without leaking where they first differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A CSRF token for a page or a flow, derived from the browser's secret (its CSRF cookie): a
/// fresh random mask and the secret XOR-ed with it, as Kratos (nosurf) does. Every response
/// shows a different token, none of which is the cookie, so a leaked page or flow (a pasted
/// URL, a log, a cached copy) does not leak the secret; only [`csrf_matches`] with the cookie
/// tells whether a token is good.
pub fn mask_csrf(secret: &str) -> String {
    let secret = secret.as_bytes();
    let mut mask = vec![0u8; secret.len()];
    rand::rng().fill_bytes(&mut mask);
    let mut out = mask.clone();
    out.extend(secret.iter().zip(&mask).map(|(s, m)| s ^ m));
    URL_SAFE_NO_PAD.encode(out)
}

/// Whether a submitted token (from [`mask_csrf`]) carries the browser's secret `cookie`.
/// Constant time in the secret's content.
pub fn csrf_matches(submitted: &str, cookie: &str) -> bool {
    if cookie.is_empty() || submitted.len() > 1024 {
        return false;
    }
    let Ok(raw) = URL_SAFE_NO_PAD.decode(submitted) else {
        return false;
    };
    if raw.len() != 2 * cookie.len() {
        return false;
    }
    let (mask, masked) = raw.split_at(cookie.len());
    let secret: Vec<u8> = masked.iter().zip(mask).map(|(x, m)| x ^ m).collect();
    secret.ct_eq(cookie.as_bytes()).into()
}

/// AES-256-GCM for values that must be readable again later (upstream tokens), keyed by
/// `secrets.cipher`. The first secret encrypts; every secret is tried on decryption, so a new
/// secret can be put first and the old one dropped once nothing needs it.
///
/// Each secret is stretched to a 256-bit key with SHA-256 so that any secret of 16+ characters
/// works (Kratos insists on exactly 32). Output: `v1.` + base64url(nonce ‖ ciphertext ‖ tag).
#[derive(Clone)]
pub struct Cipher {
    keys: Vec<aes_gcm::Aes256Gcm>,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cipher({} keys)", self.keys.len())
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CipherError {
    #[error("no cipher secret is configured (secrets.cipher or secrets.default)")]
    NoKey,
    #[error("the value is not in Tessera's encrypted format")]
    Malformed,
    #[error(
        "no configured cipher secret decrypts the value: was secrets.cipher rotated without keeping the old secret?"
    )]
    NoMatchingKey,
}

const CIPHER_PREFIX: &str = "v1.";

impl Cipher {
    pub fn new(secrets: &[String]) -> Self {
        use aes_gcm::KeyInit;
        let keys = secrets
            .iter()
            .map(|s| {
                let key = Sha256::digest(s.as_bytes());
                aes_gcm::Aes256Gcm::new(&key)
            })
            .collect();
        Cipher { keys }
    }

    pub fn encrypt(&self, plaintext: &str) -> Result<String, CipherError> {
        use aes_gcm::aead::Aead;
        let key = self.keys.first().ok_or(CipherError::NoKey)?;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = key
            .encrypt(aes_gcm::Nonce::from_slice(&nonce), plaintext.as_bytes())
            .map_err(|_| CipherError::Malformed)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{CIPHER_PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    pub fn decrypt(&self, value: &str) -> Result<String, CipherError> {
        use aes_gcm::aead::Aead;
        let bytes = value
            .strip_prefix(CIPHER_PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|b| b.len() > 12 + 16)
            .ok_or(CipherError::Malformed)?;
        if self.keys.is_empty() {
            return Err(CipherError::NoKey);
        }
        let (nonce, sealed) = bytes.split_at(12);
        self.keys
            .iter()
            .find_map(|k| k.decrypt(aes_gcm::Nonce::from_slice(nonce), sealed).ok())
            .and_then(|p| String::from_utf8(p).ok())
            .ok_or(CipherError::NoMatchingKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_csrf_tokens_differ_and_match_only_their_secret() {
        let secret = random_token();
        let (a, b) = (mask_csrf(&secret), mask_csrf(&secret));
        assert_ne!(a, b, "a fresh mask per token");
        assert!(!a.contains(&secret) && a != secret);
        assert!(csrf_matches(&a, &secret) && csrf_matches(&b, &secret));
        assert!(!csrf_matches(&a, &random_token()));
        assert!(
            !csrf_matches(&secret, &secret),
            "the raw secret is not a token"
        );
        assert!(!csrf_matches("", &secret) && !csrf_matches(&a, ""));
        assert!(!csrf_matches("%%%", &secret));
    }

    #[test]
    fn cipher_round_trips_and_rotates() {
        let old = Cipher::new(&["old-secret-0123456789".into()]);
        let sealed = old.encrypt("gho_token").unwrap();
        assert!(sealed.starts_with("v1.") && !sealed.contains("gho_token"));
        assert_ne!(
            sealed,
            old.encrypt("gho_token").unwrap(),
            "fresh nonce each time"
        );
        assert_eq!(old.decrypt(&sealed).unwrap(), "gho_token");
        let rotated = Cipher::new(&[
            "new-secret-0123456789".into(),
            "old-secret-0123456789".into(),
        ]);
        assert_eq!(rotated.decrypt(&sealed).unwrap(), "gho_token");
        let dropped = Cipher::new(&["new-secret-0123456789".into()]);
        assert_eq!(dropped.decrypt(&sealed), Err(CipherError::NoMatchingKey));
        assert_eq!(dropped.decrypt("plain"), Err(CipherError::Malformed));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(old.decrypt(&tampered).is_err());
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq("secret", "secret"));
        assert!(!constant_time_eq("secret", "secreT"));
        assert!(!constant_time_eq("secret", "secret2"));
    }
}
