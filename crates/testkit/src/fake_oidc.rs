//! A fake OpenID Provider that can be told to misbehave.
//!
//! The real `oidc-provider` peer ([`crate::peers`]) proves that Tessera interoperates with a
//! correct upstream; this one proves that Tessera refuses an incorrect one. Every defect a
//! relying party must catch (a wrong `iss`, `aud` or `nonce`, an expired, unsigned
//! or forged id_token, garbage or silence from the token endpoint, an `iss` mix-up on the
//! authorization response, …) is one [`Behavior`], switchable at run time with
//! [`FakeOidc::set_behavior`]. With [`Behavior::Normal`] it is a small but strict provider:
//! code + PKCE (S256), single-use codes bound to the client and `redirect_uri`, RFC 6749 error
//! answers, signed id_tokens whose key can be rotated ([`FakeOidc::rotate_key`]) to test JWKS
//! caching. It has no UI: `/authorize` signs in the configured user at once, which also makes it
//! cheap enough to drive the sign-in benchmark.
//!
//! ```no_run
//! # async fn demo() {
//! use tessera_testkit::fake_oidc::{Behavior, FakeOidc, FakeOptions};
//! let fake = FakeOidc::start(FakeOptions::default()).await;
//! // issuer_url: fake.issuer(), client_id: "tessera", client_secret: "tessera-secret"
//! fake.set_behavior(Behavior::WrongAud);
//! # }
//! ```

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{EncodingKey, Header};
use rsa::rand_core::{OsRng, RngCore};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The id_token signing algorithm of a [`FakeOidc`].
///
/// RS256 is what most upstreams use. ES256 is cheaper: a whole authorize + token round trip
/// costs the fake about 0.7 ms with ES256 against 2.3 ms with RS256 (release build), which
/// matters when it has to keep up with the sign-in benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Alg {
    #[default]
    RS256,
    ES256,
}

/// Who the fake is and whom it signs in.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    pub client_id: String,
    pub client_secret: String,
    /// The `sub` of the user `/authorize` signs in.
    pub subject: String,
    /// Extra claims of that user, in the id_token and from userinfo (e.g. `email`,
    /// `email_verified`, `name`, `groups`). An object; the protocol claims (`iss`, `sub`,
    /// `aud`, `exp`, `iat`, `nonce`, …) are always set by the fake and win over these.
    pub claims: Value,
    pub alg: Alg,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            client_id: "tessera".into(),
            client_secret: "tessera-secret".into(),
            subject: "fake-user-1".into(),
            claims: json!({
                "email": "fake.user@example.com",
                "email_verified": true,
                "name": "Fake User",
            }),
            alg: Alg::RS256,
        }
    }
}

/// How the fake (mis)behaves from now on; see [`FakeOidc::set_behavior`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Behavior {
    /// A correct provider.
    #[default]
    Normal,
    /// The id_token's `iss` is another issuer.
    WrongIss,
    /// The id_token's `aud` is another client.
    WrongAud,
    /// The id_token's `nonce` is not the one sent to `/authorize`.
    WrongNonce,
    /// The id_token expired an hour ago (beyond any reasonable clock leeway).
    Expired,
    /// The id_token is unsigned: header `alg: none`, empty signature.
    AlgNone,
    /// The id_token is signed with the current `kid` but its signature does not verify.
    BadSignature,
    /// `/token` answers 200 with a body that is not JSON.
    TokenInvalidJson,
    /// `/token` answers 500 with a text body.
    Token500,
    /// `/token` waits this long before answering (normally): for client timeouts.
    TokenHang(Duration),
    /// `/token` closes the connection without answering, as a crashing upstream or a
    /// load balancer resetting connections does.
    TokenDrop,
    /// `/authorize` sends the browser back with `error` and `error_description`.
    AuthorizeError { error: String, description: String },
    /// `/authorize` sends the browser back with another issuer's `iss` (RFC 9207 mix-up).
    AuthorizeWrongIss,
    /// `/authorize` sends the browser back without `iss`, although discovery advertises it.
    AuthorizeOmitIss,
    /// `/userinfo` answers 200 with a body that is not JSON.
    UserinfoInvalidJson,
}

/// The `iss` that [`Behavior::WrongIss`] and [`Behavior::AuthorizeWrongIss`] send.
pub const WRONG_ISSUER: &str = "https://wrong-issuer.example";
/// The `aud` that [`Behavior::WrongAud`] sends.
pub const WRONG_AUDIENCE: &str = "someone-else";
/// The `nonce` that [`Behavior::WrongNonce`] sends.
pub const WRONG_NONCE: &str = "not-the-nonce-you-sent";

/// A running fake provider on 127.0.0.1. Stops when dropped.
pub struct FakeOidc {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOidc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeOidc {
    /// Binds 127.0.0.1:0 and serves. RS256 keys come from a small per-process cache, so only
    /// the first start in a process pays for generating one (0.3–0.6 s in a debug build); an
    /// ES256 key is generated afresh in well under a millisecond.
    pub async fn start(opts: FakeOptions) -> FakeOidc {
        assert!(
            opts.claims.is_object() || opts.claims.is_null(),
            "FakeOptions::claims must be a JSON object"
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake OIDC upstream");
        let addr = listener.local_addr().expect("local addr");
        let key = SigningKey::new(opts.alg, 0);
        let shared = Arc::new(Shared {
            issuer: format!("http://{addr}"),
            user: RwLock::new((opts.subject.clone(), opts.claims.clone())),
            opts,
            behavior: RwLock::new(Behavior::Normal),
            key: RwLock::new(Arc::new(key)),
            rotations: AtomicU64::new(0),
            codes: Mutex::new(HashMap::new()),
            access_tokens: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", axum::routing::post(token))
            .route("/userinfo", get(userinfo).post(userinfo))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeOidc { shared, task }
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash; discovery is below it.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    pub fn client_id(&self) -> &str {
        &self.shared.opts.client_id
    }

    pub fn client_secret(&self) -> &str {
        &self.shared.opts.client_secret
    }

    /// Changes how every following request is answered.
    pub fn set_behavior(&self, behavior: Behavior) {
        *self.shared.behavior.write().expect("lock") = behavior;
    }

    pub fn behavior(&self) -> Behavior {
        self.shared.behavior.read().expect("lock").clone()
    }

    /// Switches the user that the next `/authorize` signs in. Codes already issued keep the
    /// user they were issued for, as at a real provider.
    pub fn set_claims(&self, subject: impl Into<String>, claims: Value) {
        assert!(claims.is_object(), "claims must be a JSON object");
        *self.shared.user.write().expect("lock") = (subject.into(), claims);
    }

    /// Replaces the signing key by a new one with a new `kid`, and returns that `kid`. The JWKS
    /// then serves only the new key, so a relying party with a cached JWKS meets an unknown
    /// `kid` on the next id_token and must refetch.
    pub fn rotate_key(&self) -> String {
        let n = self.shared.rotations.fetch_add(1, Ordering::SeqCst) + 1;
        let key = SigningKey::new(self.shared.opts.alg, n as usize);
        let kid = key.kid.clone();
        *self.shared.key.write().expect("lock") = Arc::new(key);
        kid
    }

    /// The `kid` of the current signing key.
    pub fn kid(&self) -> String {
        self.shared.key.read().expect("lock").kid.clone()
    }

    /// The current signing key as a JWK (the one entry of `/jwks`).
    pub fn jwk(&self) -> Value {
        self.shared.key.read().expect("lock").jwk.clone()
    }

    /// Requests to `/token` so far (all, including refused ones).
    pub fn token_requests(&self) -> u64 {
        self.shared.counters.token.load(Ordering::SeqCst)
    }

    /// Requests to `/jwks` so far: shows whether a relying party caches the JWKS.
    pub fn jwks_requests(&self) -> u64 {
        self.shared.counters.jwks.load(Ordering::SeqCst)
    }

    /// Requests to `/.well-known/openid-configuration` so far.
    pub fn discovery_requests(&self) -> u64 {
        self.shared.counters.discovery.load(Ordering::SeqCst)
    }

    /// Requests to `/authorize` so far.
    pub fn authorize_requests(&self) -> u64 {
        self.shared.counters.authorize.load(Ordering::SeqCst)
    }

    /// Requests to `/userinfo` so far.
    pub fn userinfo_requests(&self) -> u64 {
        self.shared.counters.userinfo.load(Ordering::SeqCst)
    }
}

struct Shared {
    issuer: String,
    opts: FakeOptions,
    behavior: RwLock<Behavior>,
    user: RwLock<(String, Value)>,
    key: RwLock<Arc<SigningKey>>,
    rotations: AtomicU64,
    codes: Mutex<HashMap<String, CodeGrant>>,
    access_tokens: Mutex<HashMap<String, (String, Value)>>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    token: AtomicU64,
    jwks: AtomicU64,
    discovery: AtomicU64,
    authorize: AtomicU64,
    userinfo: AtomicU64,
}

/// What an authorization code was issued for.
struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    scope: String,
    subject: String,
    claims: Value,
}

impl Shared {
    fn behavior(&self) -> Behavior {
        self.behavior.read().expect("lock").clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Keys

/// A private signing key with its `kid` and public JWK.
struct SigningKey {
    kid: String,
    alg: Alg,
    encoding: EncodingKey,
    jwk: Value,
}

/// How many distinct RSA keys a process generates at most; rotations cycle through them (each
/// rotation still gets a fresh `kid`).
const RSA_POOL: usize = 3;

/// RSA key `n` of the per-process pool, generated on first use. Generating a 2048-bit key takes
/// from a fraction of a second to several seconds in a debug build, far too slow to repeat for
/// every fake in every test.
fn rsa_key(n: usize) -> Arc<(EncodingKey, Value)> {
    static POOL: [OnceLock<Arc<(EncodingKey, Value)>>; RSA_POOL] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    POOL[n % RSA_POOL]
        .get_or_init(|| {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            use rsa::traits::PublicKeyParts;
            let private = rsa::RsaPrivateKey::new(&mut OsRng, 2048).expect("generate an RSA key");
            let der = private.to_pkcs1_der().expect("encode the RSA key");
            let jwk = json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
            });
            Arc::new((EncodingKey::from_rsa_der(der.as_bytes()), jwk))
        })
        .clone()
}

fn ec_key() -> (EncodingKey, Value) {
    let (encoding, public, _) = ec_key_pair();
    (encoding, public)
}

/// A fresh P-256 key pair: its signing key, its public JWK, and its private JWK (with `d`), e.g.
/// for an app that authenticates with `private_key_jwt` (the peers import the private JWK).
pub fn ec_key_pair() -> (EncodingKey, Value, Value) {
    use p256::pkcs8::EncodePrivateKey;
    let private = p256::SecretKey::random(&mut OsRng);
    let der = private.to_pkcs8_der().expect("encode the EC key");
    let point =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&private.public_key(), false);
    let jwk = json!({
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(point.x().expect("x")),
        "y": URL_SAFE_NO_PAD.encode(point.y().expect("y")),
    });
    let mut private_jwk = jwk.clone();
    private_jwk["d"] = json!(URL_SAFE_NO_PAD.encode(private.to_bytes()));
    (EncodingKey::from_ec_der(der.as_bytes()), jwk, private_jwk)
}

impl SigningKey {
    fn new(alg: Alg, rotation: usize) -> SigningKey {
        let (encoding, mut jwk, name) = match alg {
            Alg::RS256 => {
                let k = rsa_key(rotation);
                (k.0.clone(), k.1.clone(), "RS256")
            }
            Alg::ES256 => {
                let (e, j) = ec_key();
                (e, j, "ES256")
            }
        };
        let kid = format!("fake-{rotation}-{}", random_token(6));
        let obj = jwk.as_object_mut().expect("object");
        obj.insert("kid".into(), kid.clone().into());
        obj.insert("alg".into(), name.into());
        obj.insert("use".into(), "sig".into());
        SigningKey {
            kid,
            alg,
            encoding,
            jwk,
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(match self.alg {
            Alg::RS256 => jsonwebtoken::Algorithm::RS256,
            Alg::ES256 => jsonwebtoken::Algorithm::ES256,
        });
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign the id_token")
    }
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

// ---------------------------------------------------------------------------------------------
// Endpoints

async fn discovery(State(s): State<Arc<Shared>>) -> Json<Value> {
    s.counters.discovery.fetch_add(1, Ordering::SeqCst);
    let i = &s.issuer;
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "grant_types_supported": ["authorization_code"],
        "scopes_supported": ["openid", "email", "profile"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    }))
}

async fn jwks(State(s): State<Arc<Shared>>) -> Json<Value> {
    s.counters.jwks.fetch_add(1, Ordering::SeqCst);
    let jwk = s.key.read().expect("lock").jwk.clone();
    Json(json!({ "keys": [jwk] }))
}

/// Signs the current user in without a UI and sends the browser back to `redirect_uri`.
/// Requests that cannot be sent back (unknown client, missing or bad `redirect_uri`) get a 400
/// page, as RFC 6749 §4.1.2.1 requires, never a redirect.
async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    s.counters.authorize.fetch_add(1, Ordering::SeqCst);
    if q.get("client_id") != Some(&s.opts.client_id) {
        return (StatusCode::BAD_REQUEST, "unknown client_id").into_response();
    }
    let Some(redirect_uri) = q.get("redirect_uri") else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is required").into_response();
    };
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri is not an absolute URL",
        )
            .into_response();
    };
    let behavior = s.behavior();
    let mut params: Vec<(&str, String)> = Vec::new();
    let outcome = if let Behavior::AuthorizeError { error, description } = &behavior {
        Err((error.clone(), description.clone()))
    } else if q.get("response_type").map(String::as_str) != Some("code") {
        Err((
            "unsupported_response_type".into(),
            "only response_type=code is supported".into(),
        ))
    } else if q.contains_key("code_challenge")
        && q.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        Err((
            "invalid_request".into(),
            "code_challenge_method must be S256".into(),
        ))
    } else {
        Ok(())
    };
    match outcome {
        Err((error, description)) => {
            params.push(("error", error));
            params.push(("error_description", description));
        }
        Ok(()) => {
            let (subject, claims) = s.user.read().expect("lock").clone();
            let code = random_token(24);
            s.codes.lock().expect("lock").insert(
                code.clone(),
                CodeGrant {
                    client_id: s.opts.client_id.clone(),
                    redirect_uri: redirect_uri.clone(),
                    nonce: q.get("nonce").cloned(),
                    code_challenge: q.get("code_challenge").cloned(),
                    scope: q.get("scope").cloned().unwrap_or_default(),
                    subject,
                    claims,
                },
            );
            params.push(("code", code));
        }
    }
    if let Some(state) = q.get("state") {
        params.push(("state", state.clone()));
    }
    match behavior {
        Behavior::AuthorizeOmitIss => {}
        Behavior::AuthorizeWrongIss => params.push(("iss", WRONG_ISSUER.into())),
        _ => params.push(("iss", s.issuer.clone())),
    }
    back.query_pairs_mut().extend_pairs(params);
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, back.to_string())],
    )
        .into_response()
}

/// An RFC 6749 §5.2 error answer.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut resp = (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"fake-oidc\""),
        );
    }
    resp
}

/// The client credentials of a token request: HTTP Basic (RFC 6749 §2.3.1: each part
/// form-urlencoded, then base64) or `client_id` + `client_secret` in the body; not both.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(String, String), (StatusCode, &'static str, &'static str)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    let in_body = form.contains_key("client_secret");
    match (basic, in_body) {
        (Some(_), true) => Err((
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client authentication must use one method only",
        )),
        (Some(b64), false) => {
            let decoded = STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok());
            let pair = decoded.as_deref().and_then(|d| d.split_once(':'));
            let Some((id, secret)) = pair else {
                return Err((
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "malformed Basic credentials",
                ));
            };
            let unescape = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Ok((unescape(id), unescape(secret)))
        }
        (None, true) => Ok((
            form.get("client_id").cloned().unwrap_or_default(),
            form["client_secret"].clone(),
        )),
        (None, false) => Err((
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication is required",
        )),
    }
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    s.counters.token.fetch_add(1, Ordering::SeqCst);
    match s.behavior() {
        Behavior::Token500 => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal server error").into_response();
        }
        Behavior::TokenInvalidJson => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "not json{",
            )
                .into_response();
        }
        Behavior::TokenHang(d) => tokio::time::sleep(d).await,
        // Unwinding out of the handler ends the connection's task, which closes the socket
        // with no answer written. `resume_unwind` skips the panic hook: nothing is printed.
        Behavior::TokenDrop => std::panic::resume_unwind(Box::new("TokenDrop")),
        _ => {}
    }

    let (client_id, secret) = match client_credentials(&headers, &form) {
        Ok(c) => c,
        Err((status, error, description)) => return oauth_error(status, error, description),
    };
    if client_id != s.opts.client_id || secret != s.opts.client_secret {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code is supported",
        );
    }
    let Some(code) = form.get("code") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code is missing",
        );
    };
    // Removed on first presentation, whatever happens next: a code is single-use.
    let Some(grant) = s.codes.lock().expect("lock").remove(code) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown, expired or already used code",
        );
    };
    if grant.client_id != client_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code was issued to another client",
        );
    }
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri does not match the authorization request",
        );
    }
    match (&grant.code_challenge, form.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            let valid_syntax = (43..=128).contains(&verifier.len())
                && verifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if !valid_syntax || &computed != challenge {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "PKCE verification failed",
                );
            }
        }
        (Some(_), None) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "code_verifier is required",
            );
        }
        // RFC 9700 §4.8.2: a verifier without a challenge is a PKCE downgrade attempt.
        (None, Some(_)) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "code_verifier sent but no code_challenge was",
            );
        }
        (None, None) => {}
    }

    let access_token = random_token(24);
    let id_token = id_token(&s, &grant, &access_token);
    s.access_tokens.lock().expect("lock").insert(
        access_token.clone(),
        (grant.subject.clone(), grant.claims.clone()),
    );
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": grant.scope,
            "id_token": id_token,
        })),
    )
        .into_response()
}

/// The id_token for a redeemed code, with whatever defect the current behavior asks for.
fn id_token(s: &Shared, grant: &CodeGrant, access_token: &str) -> String {
    let behavior = s.behavior();
    let now = now();
    let mut claims: Map<String, Value> = grant.claims.as_object().cloned().unwrap_or_default();
    let digest = Sha256::digest(access_token.as_bytes());
    let protocol = json!({
        "iss": if behavior == Behavior::WrongIss { WRONG_ISSUER } else { s.issuer.as_str() },
        "sub": grant.subject,
        "aud": if behavior == Behavior::WrongAud { WRONG_AUDIENCE } else { grant.client_id.as_str() },
        "iat": if behavior == Behavior::Expired { now - 7200 } else { now },
        "exp": if behavior == Behavior::Expired { now - 3600 } else { now + 600 },
        "auth_time": now,
        "at_hash": URL_SAFE_NO_PAD.encode(&digest[..16]),
    });
    claims.extend(protocol.as_object().expect("object").clone());
    match (&behavior, &grant.nonce) {
        (Behavior::WrongNonce, _) => {
            claims.insert("nonce".into(), WRONG_NONCE.into());
        }
        (_, Some(nonce)) => {
            claims.insert("nonce".into(), nonce.clone().into());
        }
        (_, None) => {}
    }
    let claims = Value::Object(claims);
    let key = s.key.read().expect("lock").clone();
    match behavior {
        Behavior::AlgNone => {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
            let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
            format!("{header}.{payload}.")
        }
        Behavior::BadSignature => {
            let token = key.sign(&claims);
            let (signed, sig) = token.rsplit_once('.').expect("three parts");
            let mut sig = URL_SAFE_NO_PAD.decode(sig).expect("base64url signature");
            let mid = sig.len() / 2;
            sig[mid] ^= 0x01;
            format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
        }
        _ => key.sign(&claims),
    }
}

async fn userinfo(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    s.counters.userinfo.fetch_add(1, Ordering::SeqCst);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let user = token.and_then(|t| s.access_tokens.lock().expect("lock").get(t).cloned());
    let Some((subject, claims)) = user else {
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Bearer error=\"invalid_token\", error_description=\"unknown access token\"",
            )],
        )
            .into_response();
    };
    if s.behavior() == Behavior::UserinfoInvalidJson {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "not json{",
        )
            .into_response();
    }
    let mut body = claims.as_object().cloned().unwrap_or_default();
    body.insert("sub".into(), subject.into());
    Json(Value::Object(body)).into_response()
}
