//! What every emulator needs and no provider documents differently: the app registration
//! (client id and secret, registered redirect URI, the user tests script), random codes and
//! tokens, HTML escaping for the consent pages. Each emulator keeps its provider's own paths,
//! parameters, answers and error shapes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `n` random bytes, base64url without padding.
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2), for the emulators that check PKCE.
pub(crate) fn s256(verifier: &str) -> String {
    use sha2::{Digest, Sha256};
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// HMAC-SHA-256 (RFC 2104) over SHA-256, which this crate already has (Telegram's widget
/// hash, Facebook's `appsecret_proof`).
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(data)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// `prefix` and 32 random hex digits (GitHub's and DingTalk's codes and tokens look so).
pub(crate) fn random_hex(prefix: &str) -> String {
    let mut buf = [0u8; 16];
    rand::rng().fill_bytes(&mut buf);
    let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// Escapes text for the consent pages' HTML.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An authorize request's query without `user`, so a consent page's links can repeat it with
/// the user a person picks.
pub(crate) fn query_without_user(q: &HashMap<String, String>) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(q.iter().filter(|(k, _)| k.as_str() != "user"))
        .finish()
}

/// The accessors GitHub's and DingTalk's emulators share, over their `shared.client`
/// ([`Client`]); each emulator documents its own URLs and redirect-URI rules.
macro_rules! client_accessors {
    () => {
        /// The registered app's client id.
        pub fn client_id(&self) -> &str {
            &self.shared.client.client_id
        }

        /// The registered app's client secret.
        pub fn client_secret(&self) -> &str {
            &self.shared.client.client_secret
        }

        /// The user every following authorize request picks without showing the consent page
        /// (`None`: show it). A `user=` parameter wins.
        pub fn set_next_user(&self, key: Option<&str>) {
            self.shared.client.set_next_user(key);
        }

        /// How many token requests the emulator received.
        pub fn token_requests(&self) -> u64 {
            self.shared.client.token_requests()
        }
    };
}
pub(crate) use client_accessors;

/// An OAuth app as registered at the provider, and what tests script about it.
pub(crate) struct Client {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub client_id: String,
    pub client_secret: String,
    registered_redirect_uri: Mutex<Option<String>>,
    next_user: Mutex<Option<String>>,
    token_requests: AtomicU64,
}

impl Client {
    pub fn new(addr: SocketAddr, client_id: &str, client_secret: &str) -> Client {
        Client {
            base: format!("http://{addr}"),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            registered_redirect_uri: Mutex::new(None),
            next_user: Mutex::new(None),
            token_requests: AtomicU64::new(0),
        }
    }

    pub fn register_redirect_uri(&self, uri: String) {
        *self.registered_redirect_uri.lock().expect("lock") = Some(uri);
    }

    pub fn registered_redirect_uri(&self) -> Option<String> {
        self.registered_redirect_uri.lock().expect("lock").clone()
    }

    pub fn set_next_user(&self, key: Option<&str>) {
        *self.next_user.lock().expect("lock") = key.map(String::from);
    }

    /// The user an authorize request picks: its `user=<key>`, else the scripted next user
    /// (which stays for the following requests); `None`: show the consent page.
    pub fn pick(&self, q: &HashMap<String, String>) -> Option<String> {
        q.get("user")
            .cloned()
            .or_else(|| self.next_user.lock().expect("lock").clone())
    }

    pub fn count_token_request(&self) {
        self.token_requests.fetch_add(1, Ordering::SeqCst);
    }

    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::SeqCst)
    }
}

/// The authorization codes and access tokens an emulator handed out: codes carry what the
/// token call must check (`C`: the user, the redirect URI, a PKCE challenge…) and expire after a
/// lifetime tests can shorten; tokens map to what the profile call answers with (`U`).
pub(crate) struct Grants<C, U> {
    code_ttl: Mutex<Duration>,
    codes: Mutex<HashMap<String, (C, Instant, bool)>>,
    tokens: Mutex<HashMap<String, U>>,
}

/// What a token call finds under a code.
pub(crate) enum Redeemed<C> {
    /// Never issued (or forgotten).
    Unknown,
    /// Issued and already exchanged once: providers that say so differently from "unknown"
    /// (QQ, WeChat) can.
    Used,
    /// Issued, but older than the code lifetime.
    Expired(C),
    Fresh(C),
}

impl<C: Clone, U: Clone> Grants<C, U> {
    pub fn new(code_ttl: Duration) -> Self {
        Grants {
            code_ttl: Mutex::new(code_ttl),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Codes issued from now on live `ttl`.
    pub fn set_code_ttl(&self, ttl: Duration) {
        *self.code_ttl.lock().expect("lock") = ttl;
    }

    pub fn issue_code(&self, code: &str, data: C) {
        self.codes
            .lock()
            .expect("lock")
            .insert(code.to_string(), (data, Instant::now(), false));
    }

    /// Exchanges `code` once: a second exchange finds it [`Redeemed::Used`].
    pub fn redeem(&self, code: &str) -> Redeemed<C> {
        let ttl = *self.code_ttl.lock().expect("lock");
        let mut codes = self.codes.lock().expect("lock");
        let Some((data, issued, used)) = codes.get_mut(code) else {
            return Redeemed::Unknown;
        };
        if *used {
            return Redeemed::Used;
        }
        *used = true;
        if issued.elapsed() >= ttl {
            Redeemed::Expired(data.clone())
        } else {
            Redeemed::Fresh(data.clone())
        }
    }

    /// [`Self::redeem`] for providers that answer every bad code alike.
    pub fn redeem_fresh(&self, code: &str) -> Option<C> {
        match self.redeem(code) {
            Redeemed::Fresh(c) => Some(c),
            _ => None,
        }
    }

    pub fn issue_token(&self, token: &str, user: U) {
        self.tokens
            .lock()
            .expect("lock")
            .insert(token.to_string(), user);
    }

    /// Whom `token` was issued for, while it has not been revoked.
    pub fn token_user(&self, token: &str) -> Option<U> {
        self.tokens.lock().expect("lock").get(token).cloned()
    }

    /// Every token issued so far stops working.
    pub fn revoke_tokens(&self) {
        self.tokens.lock().expect("lock").clear();
    }
}

/// `set_code_ttl` and `revoke_tokens` over an emulator's `shared.grants` ([`Grants`]).
macro_rules! grant_accessors {
    () => {
        /// How long codes issued from now on stay valid.
        pub fn set_code_ttl(&self, ttl: std::time::Duration) {
            self.shared.grants.set_code_ttl(ttl);
        }

        /// Every access token issued so far stops working (the provider's invalid-token
        /// answer at its profile call).
        pub fn revoke_tokens(&self) {
            self.shared.grants.revoke_tokens();
        }
    };
}
pub(crate) use grant_accessors;

/// A request's parameters from its query and its form body together (token endpoints that
/// take either); the query wins where both have a key.
pub(crate) fn query_and_form(
    mut q: HashMap<String, String>,
    body: &[u8],
) -> HashMap<String, String> {
    for (k, v) in url::form_urlencoded::parse(body) {
        q.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    q
}

/// A token request's form body as a map, the request counted ([`Client::token_requests`]).
pub(crate) fn token_form(client: &Client, body: &[u8]) -> HashMap<String, String> {
    client.count_token_request();
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The wording of a provider's emulated consent page, in the provider's language.
pub(crate) struct ConsentText<'a> {
    pub lang: &'a str,
    pub title: &'a str,
    pub heading: &'a str,
    pub prompt: &'a str,
    pub cancel: &'a str,
}

/// The consent page: one link per fake user (`user=<key>`), and a cancel link (`user=deny`),
/// each repeating the authorize request at `path`.
pub(crate) fn consent_page<'u>(
    path: &str,
    q: &HashMap<String, String>,
    text: &ConsentText<'_>,
    users: impl IntoIterator<Item = (&'u str, &'u str)>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let base = esc(&query_without_user(q));
    let items: String = users
        .into_iter()
        .map(|(key, label)| {
            format!(
                "<li><a href=\"{path}?{base}&amp;user={key}\">{}</a></li>\n",
                esc(label)
            )
        })
        .collect();
    axum::response::Html(format!(
        "<!doctype html><html lang=\"{}\"><meta charset=utf-8><title>{}</title>\n<h1>{}</h1>\n<p>{}</p>\n<ul>\n{items}</ul>\n<p><a href=\"{path}?{base}&amp;user=deny\">{}</a></p>\n",
        text.lang,
        esc(text.title),
        esc(text.heading),
        esc(text.prompt),
        esc(text.cancel)
    ))
    .into_response()
}

/// What an authorize endpoint says, in its provider's words, about a request for another app
/// (`client`), a redirect URI other than the registered one (`redirect`) or one that is not a
/// URL (`not_a_url`).
pub(crate) struct FrontErrors<'a> {
    pub client: &'a str,
    pub redirect: &'a str,
    pub not_a_url: &'a str,
}

/// The checks every authorize endpoint starts with, in this order: the app's `client_id`, the
/// registered redirect URI (any until one is registered), a redirect URI that parses. `Ok` is
/// where to send the browser back; `Err` the provider's error page, which `page` renders
/// (boxed: a response is large beside a URL).
pub(crate) fn authorize_front(
    client: &Client,
    q: &HashMap<String, String>,
    errors: &FrontErrors<'_>,
    page: impl Fn(&str) -> axum::response::Response,
) -> Result<url::Url, Box<axum::response::Response>> {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != client.client_id {
        return Err(Box::new(page(errors.client)));
    }
    let redirect_uri = get("redirect_uri");
    if client
        .registered_redirect_uri()
        .is_some_and(|r| r != redirect_uri)
    {
        return Err(Box::new(page(errors.redirect)));
    }
    url::Url::parse(redirect_uri).map_err(|_| Box::new(page(errors.not_a_url)))
}

/// The person's answer on the consent page at `path`: `Ok` with the key of the user picked;
/// `Err` with the page itself while nobody is picked, or, when they cancel (`user=deny`), the
/// redirect back to `back` with `error=access_denied`, the provider's `error_description`
/// (`denied`, none when empty) and the request's `state`.
pub(crate) fn consent_pick<'u>(
    client: &Client,
    q: &HashMap<String, String>,
    (path, text): (&str, &ConsentText<'_>),
    users: impl IntoIterator<Item = (&'u str, &'u str)>,
    back: &url::Url,
    denied: &str,
) -> Result<String, Box<axum::response::Response>> {
    let Some(pick) = client.pick(q) else {
        return Err(Box::new(consent_page(path, q, text, users)));
    };
    if pick == "deny" {
        let mut back = back.clone();
        {
            let mut pairs = back.query_pairs_mut();
            pairs.append_pair("error", "access_denied");
            if !denied.is_empty() {
                pairs.append_pair("error_description", denied);
            }
            pairs.append_pair(
                "state",
                q.get("state").map(String::as_str).unwrap_or_default(),
            );
        }
        return Err(Box::new(redirect(&back)));
    }
    Ok(pick)
}

/// The redirect back to the app with a fresh `code` and the request's `state`.
pub(crate) fn code_redirect(
    mut back: url::Url,
    code: &str,
    state: &str,
) -> axum::response::Response {
    back.query_pairs_mut()
        .append_pair("code", code)
        .append_pair("state", state);
    redirect(&back)
}

/// A 302 back to the app.
pub(crate) fn redirect(to: &url::Url) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::FOUND,
        [(axum::http::header::LOCATION, to.to_string())],
    )
        .into_response()
}

/// The client's credentials at a token endpoint: HTTP Basic with form-urlencoded parts
/// (RFC 6749 §2.3.1, `client_secret_basic`), else the form's `client_id` and `client_secret`.
pub(crate) fn client_credentials(
    headers: &axum::http::HeaderMap,
    form: &HashMap<String, String>,
) -> (String, String) {
    use base64::engine::general_purpose::STANDARD;
    let basic = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    if let Some((id, secret)) = basic.as_deref().and_then(|b| b.split_once(':')) {
        let dec = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        return (dec(id), dec(secret));
    }
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    (get("client_id"), get("client_secret"))
}

/// An RFC 6749 §5.2 error answer: `{error, error_description}` with `status`.
pub(crate) fn oauth_error(
    status: axum::http::StatusCode,
    error: &str,
    description: &str,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        status,
        axum::Json(serde_json::json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// The RSA key the OpenID Connect emulators sign id_tokens with: one per process (generating
/// one takes up to seconds in a debug build), with its public JWK (`kid`, `alg: RS256`).
pub(crate) fn rsa_signing_key() -> &'static (jsonwebtoken::EncodingKey, serde_json::Value) {
    static KEY: std::sync::OnceLock<(jsonwebtoken::EncodingKey, serde_json::Value)> =
        std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
            .expect("generate the emulators' RSA key");
        let der = private.to_pkcs1_der().expect("encode the RSA key");
        let n = URL_SAFE_NO_PAD.encode(private.n().to_bytes_be());
        let kid = s256(&n)[..40].to_string();
        let jwk = serde_json::json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": kid,
            "n": n,
            "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
        });
        (jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()), jwk)
    })
}

/// An id_token with `claims`, RS256-signed with [`rsa_signing_key`] (its `kid` in the header);
/// `None` only if signing fails.
pub(crate) fn sign_rs256(claims: serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let (key, jwk) = rsa_signing_key();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = jwk["kid"].as_str().map(String::from);
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(&header, &serde_json::Value::Object(claims), key).ok()
}

/// Seconds since the Unix epoch (`iat`, `exp`).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A Bearer token of a request, or "".
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> &str {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_differ_and_have_their_shape() {
        let (a, b) = (random_hex("gho_"), random_hex("gho_"));
        assert_ne!(a, b);
        assert!(a.starts_with("gho_") && a.len() == 36, "{a}");
        assert_eq!(random_token(12).len(), 16);
        assert_eq!(
            esc("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_authorize_front_refuses_another_app_or_redirect_uri_and_cancels_go_back() {
        use axum::response::IntoResponse;
        let q = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let c = Client::new(([127, 0, 0, 1], 9).into(), "id", "secret");
        c.register_redirect_uri("http://app.example/cb".into());
        let errors = FrontErrors {
            client: "client",
            redirect: "redirect",
            not_a_url: "url",
        };
        let page = |m: &str| (axum::http::StatusCode::BAD_REQUEST, m.to_string()).into_response();
        let ok = q(&[
            ("client_id", "id"),
            ("redirect_uri", "http://app.example/cb"),
            ("state", "s"),
        ]);
        let back = authorize_front(&c, &ok, &errors, page).unwrap();
        assert_eq!(back.as_str(), "http://app.example/cb");
        for bad in [
            q(&[
                ("client_id", "other"),
                ("redirect_uri", "http://app.example/cb"),
            ]),
            q(&[
                ("client_id", "id"),
                ("redirect_uri", "http://evil.example/cb"),
            ]),
        ] {
            assert!(authorize_front(&c, &bad, &errors, page).is_err());
        }
        let text = ConsentText {
            lang: "en",
            title: "t",
            heading: "h",
            prompt: "p",
            cancel: "c",
        };
        let mut deny = ok.clone();
        deny.insert("user".into(), "deny".into());
        let r =
            consent_pick(&c, &deny, ("/a", &text), [("ivan", "Иван")], &back, "no").unwrap_err();
        let to = r.headers()[axum::http::header::LOCATION]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(
            to,
            "http://app.example/cb?error=access_denied&error_description=no&state=s"
        );
        let mut pick = ok.clone();
        pick.insert("user".into(), "ivan".into());
        assert_eq!(
            consent_pick(&c, &pick, ("/a", &text), [("ivan", "Иван")], &back, "").unwrap(),
            "ivan"
        );
    }

    #[test]
    fn the_consent_query_drops_only_user_and_the_pick_prefers_the_request() {
        let q: HashMap<String, String> = [("user", "a"), ("state", "s t")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        assert_eq!(query_without_user(&q), "state=s+t");
        let c = Client::new(([127, 0, 0, 1], 9).into(), "id", "secret");
        assert_eq!(c.pick(&q).as_deref(), Some("a"));
        assert_eq!(c.pick(&HashMap::new()), None);
        c.set_next_user(Some("b"));
        assert_eq!(c.pick(&HashMap::new()).as_deref(), Some("b"));
        assert_eq!(c.pick(&HashMap::new()).as_deref(), Some("b"), "it stays");
    }
}
