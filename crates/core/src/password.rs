//! Password hashing, verification and the registration password policy.
//!
//! New hashes are always argon2id; the other formats are accepted for
//! verification only so that identities imported from Kratos or other
//! systems can log in and be upgraded transparently (see
//! [`Hasher::needs_rehash`]).

use argon2::password_hash::{self, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Version};
use base64::Engine as _;
use pbkdf2::Pbkdf2;
use rand::RngCore as _;

/// Kratos' default minimum; shorter passwords are too easy to brute-force.
pub const MIN_PASSWORD_LENGTH: usize = 8;

/// Hashing cost grows with the input, so an unbounded password is a cheap
/// way to burn server CPU.
pub const MAX_PASSWORD_LENGTH: usize = 1024;

/// Very short identifiers (e.g. "jo") would match a large share of all
/// passwords and make the similarity check refuse reasonable choices.
const MIN_IDENTIFIER_LENGTH_FOR_SIMILARITY: usize = 3;

// Upper bounds on cost parameters read from *stored* hashes. They are not
// security requirements: without them a single corrupt or hostile imported
// hash could make every login attempt for that identity allocate terabytes
// (argon2 accepts m up to 4 TiB, which aborts the process) or spin for hours.
// The configured parameters are held to the same bounds so that our own
// hashes always verify.
const MAX_ARGON2_MEMORY_KIB: u32 = 4 * 1024 * 1024; // 4 GiB
const MAX_ARGON2_ITERATIONS: u32 = 100;
const MAX_BCRYPT_COST: u32 = 18;
const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;

/// Salt length for new hashes; 16 bytes is the argon2 recommendation.
const SALT_LEN: usize = 16;

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2Params {
    /// In KiB. Kratos' `hashers.argon2.memory` is a byte-size string; the
    /// conversion belongs to the config layer so this type stays unit-exact.
    pub memory: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        // OWASP's current argon2id recommendation: 19 MiB, 2 passes, 1 lane.
        Self {
            memory: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Argon2Params {
    /// Lets the config loader reject bad settings with a readable message
    /// instead of [`Hasher::new`] panicking at startup.
    pub fn validate(&self) -> Result<(), String> {
        self.to_argon2().map(|_| ())
    }

    fn to_argon2(&self) -> Result<argon2::Params, String> {
        if self.memory > MAX_ARGON2_MEMORY_KIB {
            return Err(format!(
                "argon2 memory must be at most {MAX_ARGON2_MEMORY_KIB} KiB, got {}",
                self.memory
            ));
        }
        if self.iterations > MAX_ARGON2_ITERATIONS {
            return Err(format!(
                "argon2 iterations must be at most {MAX_ARGON2_ITERATIONS}, got {}",
                self.iterations
            ));
        }
        argon2::Params::new(self.memory, self.iterations, self.parallelism, None).map_err(|e| {
            format!(
                "invalid argon2 parameters (memory={} KiB, iterations={}, parallelism={}): {e}; \
                 memory must be at least 8 KiB per lane and iterations/parallelism at least 1",
                self.memory, self.iterations, self.parallelism
            )
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PasswordPolicyError {
    #[error("The password must be at least {min} characters long.")]
    TooShort { min: usize },
    #[error("The password must be at most {max} characters long.")]
    TooLong { max: usize },
    #[error("The password can not be used because it is too similar to the identifier.")]
    TooSimilarToIdentifier,
}

/// Messages never include the hash itself: they end up in API responses
/// and logs, and a hash is still credential material.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error(
        "unsupported password hash format `{0}`: use argon2id, argon2i, bcrypt ($2a$/$2b$/$2y$) or pbkdf2-sha256/pbkdf2-sha512 in PHC format"
    )]
    Unsupported(String),
    #[error("malformed password hash: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone)]
pub struct Hasher {
    params: Argon2Params,
    argon2_params: argon2::Params,
    /// Hash of a throwaway password with the current parameters, so that
    /// logins for unknown identifiers cost the same as real ones. Computed on
    /// first use, not at start-up, where it would cost tens of milliseconds.
    dummy_hash: std::sync::Arc<std::sync::OnceLock<String>>,
}

impl Hasher {
    /// # Panics
    ///
    /// When `params` are invalid (see [`Argon2Params::validate`]); there is
    /// no safe fallback for a misconfigured hasher, and this runs at startup.
    pub fn new(params: Argon2Params) -> Self {
        let argon2_params = match params.to_argon2() {
            Ok(p) => p,
            Err(msg) => panic!("{msg}"),
        };
        Self {
            params,
            argon2_params,
            dummy_hash: Default::default(),
        }
    }

    pub fn params(&self) -> &Argon2Params {
        &self.params
    }

    pub fn hash(&self, password: &str) -> String {
        let mut salt = [0u8; SALT_LEN];
        rand::rng().fill_bytes(&mut salt);
        // Neither call can fail: a 16-byte salt is within every length limit,
        // and the parameters were validated in `new`. The only remaining
        // error is a password over 4 GiB, which cannot reach this point.
        let salt = SaltString::encode_b64(&salt).expect("16-byte salt is always encodable");
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            self.argon2_params.clone(),
        )
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2id hashing with validated parameters cannot fail")
        .to_string()
    }

    /// Returns `Ok(false)` only for a wrong password; an `Err` means the
    /// stored hash itself is unusable and should be surfaced to operators.
    pub fn verify(&self, password: &str, stored: &str) -> Result<bool, HashError> {
        match parse(stored)? {
            Parsed::Bcrypt => bcrypt::verify(password, stored).map_err(bcrypt_error),
            Parsed::Argon2 { hash, .. } => verify_phc(&Argon2::default(), password, &hash),
            Parsed::Pbkdf2 { hash } => verify_phc(&Pbkdf2, password, &hash),
        }
    }

    /// Without this, a fast "no such user" reply would let attackers
    /// enumerate registered identifiers by response time.
    pub fn verify_dummy(&self, password: &str) {
        let dummy = self
            .dummy_hash
            .get_or_init(|| self.hash("tessera timing-equalisation dummy password"));
        let _ = self.verify(password, dummy);
    }

    /// Meant to be called right after a successful login, the only moment the
    /// plaintext is available to upgrade legacy or outdated hashes.
    /// Unparseable input also yields `true`: whatever it is, it is not a
    /// current hash.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        match parse(stored) {
            Ok(Parsed::Argon2 {
                algorithm: Algorithm::Argon2id,
                version: Some(Version::V0x13),
                params,
                ..
            }) => {
                params.m_cost() != self.params.memory
                    || params.t_cost() != self.params.iterations
                    || params.p_cost() != self.params.parallelism
            }
            _ => true,
        }
    }
}

/// Lets the import API refuse a broken hash up front; otherwise the problem
/// would only show up as a failed login for the imported user.
pub fn validate_hash_format(stored: &str) -> Result<(), HashError> {
    parse(stored).map(|_| ())
}

/// Identifiers are compared case-insensitively, and for e-mail addresses the
/// local part is checked on its own too, because `alice@example.com` and
/// `alice2024!` share little with the full address yet are an obvious pair.
pub fn check_policy(
    password: &str,
    min_length: usize,
    identifiers: &[&str],
) -> Result<(), PasswordPolicyError> {
    let len = password.chars().count();
    if len < min_length {
        return Err(PasswordPolicyError::TooShort { min: min_length });
    }
    if len > MAX_PASSWORD_LENGTH {
        return Err(PasswordPolicyError::TooLong {
            max: MAX_PASSWORD_LENGTH,
        });
    }

    let password = password.to_lowercase();
    for identifier in identifiers {
        let identifier = identifier.trim().to_lowercase();
        let local_part = identifier.rsplit_once('@').map(|(local, _)| local);
        for candidate in std::iter::once(identifier.as_str()).chain(local_part) {
            if too_similar(&password, candidate) {
                return Err(PasswordPolicyError::TooSimilarToIdentifier);
            }
        }
    }
    Ok(())
}

/// Both arguments must already be lowercased.
fn too_similar(password: &str, identifier: &str) -> bool {
    let id: Vec<char> = identifier.chars().collect();
    if id.len() < MIN_IDENTIFIER_LENGTH_FOR_SIMILARITY {
        return false;
    }
    if identifier.contains(password) || password.contains(identifier) {
        return true;
    }
    let pw: Vec<char> = password.chars().collect();
    let (shorter, longer) = if pw.len() <= id.len() {
        (pw.len(), id.len())
    } else {
        (id.len(), pw.len())
    };
    // The common substring can be at most `shorter` long, so the ratio cannot
    // reach 1/2 here; bailing out also bounds the quadratic work below when
    // an identifier is huge.
    if 2 * shorter < longer {
        return false;
    }
    2 * longest_common_substring(&pw, &id) >= longer
}

fn longest_common_substring(a: &[char], b: &[char]) -> usize {
    // Classic DP, keeping only the previous row.
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    let mut best = 0;
    for &ca in a {
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = if ca == cb { prev[j] + 1 } else { 0 };
            best = best.max(cur[j + 1]);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    best
}

enum Parsed<'a> {
    Bcrypt,
    Argon2 {
        hash: PasswordHash<'a>,
        algorithm: Algorithm,
        /// `None` when the string has no `v=`; kept distinct from 0x13 so an
        /// ambiguous hash gets rewritten in the explicit form.
        version: Option<Version>,
        params: argon2::Params,
    },
    Pbkdf2 {
        hash: PasswordHash<'a>,
    },
}

/// Does all structural checks up front, so that verification only fails on
/// a genuinely wrong password and import validation catches everything
/// verification would choke on, without paying for a hash computation.
fn parse(stored: &str) -> Result<Parsed<'_>, HashError> {
    let Some(id) = stored
        .strip_prefix('$')
        .and_then(|rest| rest.split('$').next())
    else {
        return Err(HashError::Malformed(
            "expected a `$<algorithm>$...` string (PHC or modular crypt format)".into(),
        ));
    };

    match id {
        "2a" | "2b" | "2y" => parse_bcrypt(stored).map(|()| Parsed::Bcrypt),
        "argon2id" | "argon2i" | "argon2d" => parse_argon2(stored),
        "pbkdf2-sha256" | "pbkdf2-sha512" => parse_pbkdf2(stored),
        _ => {
            let printable = !id.is_empty()
                && id.len() <= 32
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if printable {
                Err(HashError::Unsupported(id.to_string()))
            } else {
                Err(HashError::Malformed(
                    "expected a `$<algorithm>$...` string (PHC or modular crypt format)".into(),
                ))
            }
        }
    }
}

/// Expects `$2?$NN$<22 salt chars><31 digest chars>`. The bcrypt crate is
/// laxer (it skips empty `$` fields and accepts any cost digits), so the
/// stricter check keeps import validation honest about what is stored.
fn parse_bcrypt(stored: &str) -> Result<(), HashError> {
    let malformed = |msg: &str| HashError::Malformed(format!("bcrypt: {msg}"));
    // The caller matched `$2?` followed by `$` or the end of the string.
    let rest = stored
        .get(4..)
        .ok_or_else(|| malformed("missing cost field"))?;
    let (cost, body) = rest
        .split_once('$')
        .ok_or_else(|| malformed("missing cost field"))?;
    if cost.len() != 2 || !cost.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("cost must be two decimal digits"));
    }
    let cost: u32 = cost
        .parse()
        .map_err(|_| malformed("cost must be two decimal digits"))?;
    if !(4..=MAX_BCRYPT_COST).contains(&cost) {
        return Err(malformed(&format!(
            "cost {cost} is outside the supported range 4..={MAX_BCRYPT_COST}"
        )));
    }
    if body.len() != 53 || !body.is_ascii() {
        return Err(malformed(
            "expected 53 characters of salt and digest after the cost",
        ));
    }
    let (salt, digest) = body.split_at(22);
    match bcrypt::BASE_64.decode(salt) {
        Ok(bytes) if bytes.len() == 16 => {}
        _ => return Err(malformed("salt is not valid bcrypt base64")),
    }
    match bcrypt::BASE_64.decode(digest) {
        Ok(bytes) if bytes.len() == 23 => {}
        _ => return Err(malformed("digest is not valid bcrypt base64")),
    }
    Ok(())
}

fn parse_phc(stored: &str) -> Result<PasswordHash<'_>, HashError> {
    let hash = PasswordHash::new(stored).map_err(|e| HashError::Malformed(e.to_string()))?;
    let Some(salt) = hash.salt else {
        return Err(HashError::Malformed("missing salt".into()));
    };
    if hash.hash.is_none() {
        return Err(HashError::Malformed("missing hash output".into()));
    }
    // PHC parsing only checks the alphabet; decoding also catches
    // non-canonical trailing bits, which verification would reject later.
    let mut buf = [0u8; 64];
    salt.decode_b64(&mut buf)
        .map_err(|e| HashError::Malformed(format!("salt: {e}")))?;
    Ok(hash)
}

fn parse_argon2(stored: &str) -> Result<Parsed<'_>, HashError> {
    let hash = parse_phc(stored)?;
    let malformed = |msg: String| HashError::Malformed(format!("{}: {msg}", hash.algorithm));

    let algorithm = Algorithm::try_from(hash.algorithm).map_err(|e| malformed(e.to_string()))?;
    let version = hash
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|_| malformed("unsupported version, expected v=16 or v=19".into()))?;
    let params = argon2::Params::try_from(&hash).map_err(|e| malformed(e.to_string()))?;
    if params.m_cost() > MAX_ARGON2_MEMORY_KIB {
        return Err(malformed(format!(
            "memory cost m={} KiB exceeds the supported maximum of {MAX_ARGON2_MEMORY_KIB} KiB",
            params.m_cost()
        )));
    }
    if params.t_cost() > MAX_ARGON2_ITERATIONS {
        return Err(malformed(format!(
            "time cost t={} exceeds the supported maximum of {MAX_ARGON2_ITERATIONS}",
            params.t_cost()
        )));
    }
    if let Some(salt) = hash.salt {
        let mut buf = [0u8; 64];
        let len = salt.decode_b64(&mut buf).map(|s| s.len()).unwrap_or(0);
        if len < argon2::MIN_SALT_LEN {
            return Err(malformed(format!(
                "salt must be at least {} bytes",
                argon2::MIN_SALT_LEN
            )));
        }
    }
    Ok(Parsed::Argon2 {
        hash,
        algorithm,
        version,
        params,
    })
}

fn parse_pbkdf2(stored: &str) -> Result<Parsed<'_>, HashError> {
    let hash = parse_phc(stored)?;
    let malformed = |msg: String| HashError::Malformed(format!("{}: {msg}", hash.algorithm));

    let params = pbkdf2::Params::try_from(&hash).map_err(|e| malformed(e.to_string()))?;
    if !(1..=MAX_PBKDF2_ROUNDS).contains(&params.rounds) {
        return Err(malformed(format!(
            "iteration count i={} is outside the supported range 1..={MAX_PBKDF2_ROUNDS}",
            params.rounds
        )));
    }
    // Without `l=` the crate assumes 32 bytes, and a longer stored output
    // would then never match; better to say so at import time.
    let output_len = hash.hash.map(|h| h.len()).unwrap_or(0);
    if output_len != params.output_length {
        return Err(malformed(format!(
            "hash output is {output_len} bytes but the parameters say l={}",
            params.output_length
        )));
    }
    Ok(Parsed::Pbkdf2 { hash })
}

fn verify_phc(
    verifier: &impl PasswordVerifier,
    password: &str,
    hash: &PasswordHash<'_>,
) -> Result<bool, HashError> {
    match verifier.verify_password(password.as_bytes(), hash) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::Password) => Ok(false),
        Err(e) => Err(HashError::Malformed(e.to_string())),
    }
}

/// Some bcrypt error messages embed the whole hash string, so they are
/// rephrased rather than passed through.
fn bcrypt_error(err: bcrypt::BcryptError) -> HashError {
    let msg = match err {
        bcrypt::BcryptError::CostNotAllowed(cost) => format!("bcrypt: cost {cost} is not allowed"),
        bcrypt::BcryptError::InvalidBase64(_) => "bcrypt: invalid base64".to_string(),
        bcrypt::BcryptError::InvalidSaltLen(len) => format!("bcrypt: salt is {len} bytes"),
        _ => "bcrypt: hash could not be parsed".to_string(),
    };
    HashError::Malformed(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BCRYPT_PASSWORD: &str = "Tessera-bcrypt-vector";
    /// Computed once with `bcrypt::hash(BCRYPT_PASSWORD, 4)`.
    const BCRYPT_VECTOR: &str = "$2b$04$cyY5nbYNBiYusMw.6bgfpena6AsS29U9WOj6whHtcYa3vsTlUUksa";

    const PBKDF2_PASSWORD: &str = "Tessera-pbkdf2-vector";
    /// Computed independently with Python's `hashlib.pbkdf2_hmac` (salt
    /// `tessera-pbkdf2-s`, 1000 rounds), in the format Kratos imports.
    const PBKDF2_SHA256_VECTOR: &str = "$pbkdf2-sha256$i=1000,l=32$dGVzc2VyYS1wYmtkZjItcw$k4mQ4CiQgjOx3ffAPJpHC/YQoc39CVRCY444XaHNExM";
    const PBKDF2_SHA512_VECTOR: &str = "$pbkdf2-sha512$i=1000,l=64$dGVzc2VyYS1wYmtkZjItcw$E3Flf4Xgp0ywaAAc0M1fk8gOI8ErWp18PUPrqeasa9LY275eGel99+iwQ9n+4QeK5zyz/UJp6dQPP/+fkrBVKQ";

    fn small_params() -> Argon2Params {
        Argon2Params {
            memory: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    fn test_hasher() -> Hasher {
        Hasher::new(small_params())
    }

    #[test]
    fn hash_verify_roundtrip() {
        let hasher = test_hasher();
        let hash = hasher.hash("correct horse battery staple");
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
        assert!(
            hasher
                .verify("correct horse battery staple", &hash)
                .unwrap()
        );
        assert!(
            !hasher
                .verify("correct horse battery stapler", &hash)
                .unwrap()
        );
        assert!(!hasher.verify("", &hash).unwrap());
        validate_hash_format(&hash).unwrap();
    }

    #[test]
    fn hashes_are_salted() {
        let hasher = test_hasher();
        assert_ne!(hasher.hash("same password"), hasher.hash("same password"));
    }

    #[test]
    fn verifies_generated_bcrypt_in_all_prefixes() {
        let hasher = test_hasher();
        let hash = bcrypt::hash("bcrypt password", 4).unwrap();
        let body = &hash[4..];
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let hash = format!("{prefix}{body}");
            validate_hash_format(&hash).unwrap();
            assert!(hasher.verify("bcrypt password", &hash).unwrap());
            assert!(!hasher.verify("bcrypt passwore", &hash).unwrap());
        }
    }

    #[test]
    fn verifies_fixed_bcrypt_vectors() {
        let hasher = test_hasher();
        assert!(hasher.verify(BCRYPT_PASSWORD, BCRYPT_VECTOR).unwrap());
        assert!(
            !hasher
                .verify(&BCRYPT_PASSWORD.to_lowercase(), BCRYPT_VECTOR)
                .unwrap()
        );
        // Openwall's crypt_blowfish test vector, from an independent implementation.
        let openwall = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        assert!(hasher.verify("U*U", openwall).unwrap());
        assert!(!hasher.verify("U*V", openwall).unwrap());
    }

    #[test]
    fn verifies_generated_pbkdf2() {
        use pbkdf2::{Algorithm as PbkdfAlg, Params as PbkdfParams};
        let hasher = test_hasher();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        for (alg, output_length) in [(PbkdfAlg::Pbkdf2Sha256, 32), (PbkdfAlg::Pbkdf2Sha512, 64)] {
            let params = PbkdfParams {
                rounds: 2000,
                output_length,
            };
            let hash = Pbkdf2
                .hash_password_customized(b"pbkdf2 pw", Some(alg.ident()), None, params, &salt)
                .unwrap()
                .to_string();
            assert!(hash.starts_with(&format!("${alg}$i=2000,l={output_length}$")));
            validate_hash_format(&hash).unwrap();
            assert!(hasher.verify("pbkdf2 pw", &hash).unwrap());
            assert!(!hasher.verify("pbkdf2 pW", &hash).unwrap());
        }
    }

    #[test]
    fn verifies_fixed_pbkdf2_vectors() {
        let hasher = test_hasher();
        for vector in [PBKDF2_SHA256_VECTOR, PBKDF2_SHA512_VECTOR] {
            validate_hash_format(vector).unwrap();
            assert!(hasher.verify(PBKDF2_PASSWORD, vector).unwrap());
            assert!(!hasher.verify("Tessera-pbkdf2-vectoR", vector).unwrap());
        }
    }

    #[test]
    fn verifies_generated_argon2i_and_argon2d() {
        let hasher = test_hasher();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        for alg in [Algorithm::Argon2i, Algorithm::Argon2d] {
            let params = argon2::Params::new(1024, 2, 1, None).unwrap();
            let hash = Argon2::new(alg, Version::V0x13, params)
                .hash_password(b"argon pw", &salt)
                .unwrap()
                .to_string();
            assert!(hash.starts_with(&format!("${}$", alg.as_str())));
            assert!(hasher.verify("argon pw", &hash).unwrap());
            assert!(!hasher.verify("argon pW", &hash).unwrap());
            assert!(hasher.needs_rehash(&hash));
        }
    }

    #[test]
    fn verifies_reference_argon2id_vector() {
        // Output of the PHC reference CLI: `echo -n password | argon2 somesalt -id -t 2 -m 16 -p 1`.
        let vector = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        let hasher = test_hasher();
        assert!(hasher.verify("password", vector).unwrap());
        assert!(!hasher.verify("Password", vector).unwrap());
    }

    #[test]
    fn malformed_hashes_are_errors_not_panics() {
        let hasher = test_hasher();
        let body53 = "cyY5nbYNBiYusMw.6bgfpena6AsS29U9WOj6whHtcYa3vsTlUUksa";
        let argon_hash = "$argon2id$v=19$m=1024,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$k4mQ4CiQgjOx3ffAPJpHC/YQoc39CVRCY444XaHNExM";
        let cases = [
            String::new(),
            "plaintext-password".into(),
            "$".into(),
            "$$".into(),
            "$$$$".into(),
            "$2b".into(),
            "$2b$".into(),
            "$2b$04".into(),
            "$2b$04$".into(),
            "$2b$04$short".into(),
            format!("$2b$4${body53}"),
            format!("$2b$x4${body53}"),
            format!("$2b$03${body53}"),
            format!("$2b$31${body53}"),
            format!("$2b$04${body53}x"),
            format!("$2b$04$${body53}"),
            format!("$2b$04${}!", &body53[..52]),
            format!("$2b$04${}é", &body53[..51]),
            "$argon2id".into(),
            "$argon2id$".into(),
            "$argon2id$v=19$m=1024,t=1,p=1".into(),
            "$argon2id$v=19$m=1024,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg".into(),
            "$argon2id$v=19$m=1024,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$".into(),
            "$argon2id$v=19$m=1024,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$!!!!".into(),
            argon_hash.replace("m=1024", "m=4294967295"),
            argon_hash.replace("m=1024", "m=4294967296"),
            argon_hash.replace("m=1024", "m=1"),
            argon_hash.replace("m=1024", "m=abc"),
            argon_hash.replace("t=1", "t=0"),
            argon_hash.replace("t=1", "t=100000"),
            argon_hash.replace("p=1", "p=0"),
            argon_hash.replace("p=1", "p=1,x=2"),
            argon_hash.replace("v=19", "v=42"),
            argon_hash.replace("MDEyMzQ1Njc4OWFiY2RlZg", "c2FsdA"), // 4-byte salt
            argon_hash.replace("MDEyMzQ1Njc4OWFiY2RlZg", "MDEyMzQ1Njc4OWFiY2RlZh"), // trailing bits
            "$argon2id$v=19$m=1024,t=1,p=1$ü$ü".into(),
            PBKDF2_SHA256_VECTOR.replace("i=1000", "i=0"),
            PBKDF2_SHA256_VECTOR.replace("i=1000", "i=4000000000"),
            PBKDF2_SHA256_VECTOR.replace("i=1000", "i=-1"),
            PBKDF2_SHA256_VECTOR.replace("l=32", "l=16"),
            PBKDF2_SHA512_VECTOR.replace(",l=64", ""),
            PBKDF2_SHA256_VECTOR.replace("i=1000", "i=1000,v=1"),
            PBKDF2_SHA256_VECTOR.replace("$i=", "$v=19$i="),
            PBKDF2_SHA256_VECTOR.replace("k4mQ", "k4m!"),
        ];
        for case in &cases {
            let verified = hasher.verify("password", case);
            assert!(
                matches!(verified, Err(HashError::Malformed(_))),
                "{case:?}: {verified:?}"
            );
            assert!(validate_hash_format(case).is_err(), "{case:?}");
            assert!(hasher.needs_rehash(case), "{case:?}");
        }
    }

    #[test]
    fn unsupported_schemes_are_named() {
        let hasher = test_hasher();
        for (hash, id) in [
            ("$1$saltsalt$hashhashhashhashhashha", "1"),
            ("$md5$rounds=1000$salt$hash", "md5"),
            ("$scrypt$ln=16,r=8,p=1$c2FsdA$aGFzaA", "scrypt"),
            ("$pbkdf2$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "pbkdf2"),
            (
                "$2x$04$cyY5nbYNBiYusMw.6bgfpena6AsS29U9WOj6whHtcYa3vsTlUUksa",
                "2x",
            ),
        ] {
            match hasher.verify("password", hash) {
                Err(HashError::Unsupported(got)) => assert_eq!(got, id),
                other => panic!("{hash}: {other:?}"),
            }
            let message = validate_hash_format(hash).unwrap_err().to_string();
            assert!(message.contains(&format!("`{id}`")), "{message}");
            assert!(message.contains("argon2id"), "{message}");
        }
    }

    #[test]
    fn error_messages_do_not_leak_the_hash() {
        let digest = "6bgfpena6AsS29U9WOj6whHtcYa3vsTlUUksa";
        let broken = [
            format!("$2b$99$cyY5nbYNBiYusMw.{digest}"),
            format!("$2b$04$cyY5nbYNBiYusMw!{digest}"),
            format!("$argon2id$v=19$m=1,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg${digest}"),
        ];
        for hash in &broken {
            let message = validate_hash_format(hash).unwrap_err().to_string();
            assert!(!message.contains(digest), "{message}");
        }
    }

    #[test]
    fn needs_rehash_only_for_outdated_hashes() {
        let hasher = test_hasher();
        assert!(!hasher.needs_rehash(&hasher.hash("pw")));

        assert!(hasher.needs_rehash(BCRYPT_VECTOR));
        assert!(hasher.needs_rehash(PBKDF2_SHA256_VECTOR));

        let other = Hasher::new(Argon2Params {
            memory: 2048,
            ..small_params()
        });
        let other_hash = other.hash("pw");
        assert!(hasher.needs_rehash(&other_hash));
        assert!(hasher.verify("pw", &other_hash).unwrap());

        // Same parameters but no explicit version: rewrite in the unambiguous form.
        let unversioned = hasher.hash("pw").replace("$v=19", "");
        assert!(hasher.verify("pw", &unversioned).is_ok());
        assert!(hasher.needs_rehash(&unversioned));
    }

    #[test]
    fn verify_dummy_uses_a_current_hash() {
        let hasher = test_hasher();
        hasher.verify_dummy("whatever");
        assert!(!hasher.needs_rehash(hasher.dummy_hash.get().unwrap()));
        hasher.verify_dummy("");
    }

    #[test]
    fn argon2_params_defaults_and_serde() {
        let defaults = Argon2Params::default();
        assert_eq!(
            defaults,
            Argon2Params {
                memory: 19 * 1024,
                iterations: 2,
                parallelism: 1
            }
        );
        defaults.validate().unwrap();

        let partial: Argon2Params = serde_json::from_str(r#"{"memory": 131072}"#).unwrap();
        assert_eq!(
            partial,
            Argon2Params {
                memory: 131072,
                ..defaults
            }
        );
        assert!(serde_json::from_str::<Argon2Params>(r#"{"memroy": 1}"#).is_err());

        for bad in [
            Argon2Params {
                memory: 4,
                ..small_params()
            },
            Argon2Params {
                iterations: 0,
                ..small_params()
            },
            Argon2Params {
                parallelism: 0,
                ..small_params()
            },
            Argon2Params {
                memory: MAX_ARGON2_MEMORY_KIB + 1,
                ..small_params()
            },
            Argon2Params {
                iterations: MAX_ARGON2_ITERATIONS + 1,
                ..small_params()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    #[should_panic(expected = "invalid argon2 parameters")]
    fn hasher_refuses_invalid_params() {
        Hasher::new(Argon2Params {
            parallelism: 0,
            ..small_params()
        });
    }

    #[test]
    fn policy_length() {
        assert_eq!(
            check_policy("short1", MIN_PASSWORD_LENGTH, &[]),
            Err(PasswordPolicyError::TooShort { min: 8 })
        );
        // Characters, not bytes: 7 two-byte characters are still too short.
        assert_eq!(
            check_policy("ééééééé", MIN_PASSWORD_LENGTH, &[]),
            Err(PasswordPolicyError::TooShort { min: 8 })
        );
        assert_eq!(check_policy("8chars!!", MIN_PASSWORD_LENGTH, &[]), Ok(()));
        assert_eq!(
            check_policy(&"é".repeat(1024), MIN_PASSWORD_LENGTH, &[]),
            Ok(())
        );
        assert_eq!(
            check_policy(&"a".repeat(1025), MIN_PASSWORD_LENGTH, &[]),
            Err(PasswordPolicyError::TooLong { max: 1024 })
        );
        assert_eq!(
            PasswordPolicyError::TooShort { min: 8 }.to_string(),
            "The password must be at least 8 characters long."
        );
    }

    #[test]
    fn policy_similarity() {
        let similar = Err(PasswordPolicyError::TooSimilarToIdentifier);
        // The local part is contained in the password.
        assert_eq!(
            check_policy("alice123", MIN_PASSWORD_LENGTH, &["alice@example.com"]),
            similar
        );
        // Case-insensitive.
        assert_eq!(
            check_policy(
                "Alice-In-Wonderland",
                MIN_PASSWORD_LENGTH,
                &["ALICE@Example.COM"]
            ),
            similar
        );
        // The whole identifier is the password.
        assert_eq!(
            check_policy(
                "Bob.Jones@example.org",
                MIN_PASSWORD_LENGTH,
                &["bob.jones@example.org"]
            ),
            similar
        );
        // The identifier contains the password.
        assert_eq!(
            check_policy(
                "wonderland",
                MIN_PASSWORD_LENGTH,
                &["alice.wonderland@example.com"]
            ),
            similar
        );
        // No containment either way, but a long common substring (8/10).
        assert_eq!(
            check_policy("JohnSmit99", MIN_PASSWORD_LENGTH, &["johnsmith"]),
            similar
        );
        // Any identifier can trigger the check.
        assert_eq!(
            check_policy(
                "alice123",
                MIN_PASSWORD_LENGTH,
                &["someone-else", "alice@example.com"]
            ),
            similar
        );
        assert_eq!(
            PasswordPolicyError::TooSimilarToIdentifier.to_string(),
            "The password can not be used because it is too similar to the identifier."
        );
    }

    #[test]
    fn policy_accepts_unrelated_passwords() {
        assert_eq!(
            check_policy(
                "correct horse battery staple",
                MIN_PASSWORD_LENGTH,
                &["alice@example.com"]
            ),
            Ok(())
        );
        // Shares "smith" (5/19), below the threshold.
        assert_eq!(
            check_policy("smithereens-are-fun", MIN_PASSWORD_LENGTH, &["johnsmith"]),
            Ok(())
        );
        // Identifiers under three characters are ignored, as is the
        // two-character local part of an address.
        assert_eq!(
            check_policy("jo12345678", MIN_PASSWORD_LENGTH, &["jo"]),
            Ok(())
        );
        assert_eq!(
            check_policy("jo12345678", MIN_PASSWORD_LENGTH, &["jo@x.io"]),
            Ok(())
        );
        assert_eq!(
            check_policy("jo12345678", MIN_PASSWORD_LENGTH, &["", "  "]),
            Ok(())
        );
        // A huge identifier must neither match by accident nor be slow.
        let huge = "x".repeat(100_000);
        assert_eq!(
            check_policy("correct horse battery", MIN_PASSWORD_LENGTH, &[&huge]),
            Ok(())
        );
    }

    #[test]
    fn longest_common_substring_works() {
        let lcs = |a: &str, b: &str| {
            longest_common_substring(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(lcs("", "abc"), 0);
        assert_eq!(lcs("abc", "xyz"), 0);
        assert_eq!(lcs("xabcy", "zabcw"), 3);
        assert_eq!(lcs("johnsmit99", "johnsmith"), 8);
        assert_eq!(lcs("ab", "ab"), 2);
    }
}
