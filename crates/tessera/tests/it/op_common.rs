//! Shared steps of the OpenID Provider suites: apps, a browser signing in through `/oidc/auth`,
//! PKCE, token requests and id_token verification against the JWKS.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::process::Stdio;
use tessera_testkit::journey::location;
use tessera_testkit::peers::peers_dir;
use tessera_testkit::{Backend, Browser, TestServer, csrf_of};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A server with the OP; ES256 keys unless `extra` says otherwise (RSA generation is slow in
/// debug builds).
pub async fn server(backend: Backend, extra: &str) -> TestServer {
    let op = if extra.contains("oidc_provider:") {
        String::new()
    } else {
        "oidc_provider:\n  signing_alg: ES256\n".to_string()
    };
    TestServer::start(backend, &format!("{op}{extra}")).await
}

pub async fn create_client(s: &TestServer, body: Value) -> Value {
    let r = TestServer::client()
        .post(format!("{}/admin/clients", s.admin))
        .json(&body)
        .send()
        .await
        .expect("create client");
    let status = r.status();
    let v: Value = r.json().await.expect("json");
    assert_eq!(status, 201, "{v}");
    v
}

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

pub fn auth_url(s: &TestServer, params: &[(&str, &str)]) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("{}/oidc/auth?{q}", s.public)
}

/// Registers a password identity; returns its id.
pub async fn user(s: &TestServer, email: &str) -> String {
    let v = s.register(email, "correct-horse-battery").await;
    v["identity"]["id"]
        .as_str()
        .expect("identity id")
        .to_string()
}

/// Follows redirects inside Tessera. A login form on the way is filled with `email`'s
/// password; a consent page is answered with `consent` ("accept"/"deny", or None to stop
/// there). Returns the last response that is not a redirect into Tessera, and its URL or
/// Location.
pub async fn drive(
    b: &Browser,
    s: &TestServer,
    start: &str,
    email: &str,
    consent: Option<&str>,
) -> (u16, String, String) {
    let mut url = start.to_string();
    for _ in 0..12 {
        let r = b.get(&url, false).await;
        let status = r.status().as_u16();
        let loc = location(&r);
        if (300..400).contains(&status) {
            if loc.starts_with(&s.public) {
                if loc.contains("/ui/login?flow=") {
                    let id = tessera_testkit::journey::flow_id_of(&loc);
                    let flow = tessera_testkit::journey::flow_json(b, s, "login", &id).await;
                    let r = b
                        .post_form(
                            flow["ui"]["action"].as_str().expect("action"),
                            &[
                                ("csrf_token", &csrf_of(&flow)),
                                ("method", "password"),
                                ("identifier", email),
                                ("password", "correct-horse-battery"),
                            ],
                            false,
                        )
                        .await;
                    assert_eq!(r.status(), 303, "login: {:?}", r.text().await);
                    url = location(&r);
                    continue;
                }
                url = loc;
                continue;
            }
            return (status, loc, String::new());
        }
        let text = r.text().await.unwrap_or_default();
        if url.contains("/ui/consent") && status == 200 {
            let Some(decision) = consent else {
                return (status, url, text);
            };
            let csrf = between(&text, "name=\"csrf_token\" value=\"", "\"");
            let req = between(&text, "name=\"request\" value=\"", "\"");
            let r = b
                .post_form(
                    &format!("{}/ui/consent", s.public),
                    &[
                        ("csrf_token", &csrf),
                        ("request", &req),
                        ("decision", decision),
                    ],
                    false,
                )
                .await;
            let st = r.status().as_u16();
            let loc = location(&r);
            if (300..400).contains(&st) && !loc.starts_with(&s.public) {
                return (st, loc, String::new());
            }
            if (300..400).contains(&st) {
                url = loc;
                continue;
            }
            return (st, url, r.text().await.unwrap_or_default());
        }
        return (status, url, text);
    }
    panic!("too many redirects from {start}");
}

pub fn between(text: &str, a: &str, b: &str) -> String {
    text.split(a)
        .nth(1)
        .and_then(|t| t.split(b).next())
        .unwrap_or_default()
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// A query or fragment parameter of a URL.
pub fn param(url: &str, name: &str) -> Option<String> {
    let rest = url.split_once('?').map(|x| x.1).unwrap_or("");
    let (q, f) = rest.split_once('#').unwrap_or((rest, ""));
    let frag = url.split_once('#').map(|x| x.1).unwrap_or(f);
    for part in [q, frag] {
        for (k, v) in url::form_urlencoded::parse(part.as_bytes()) {
            if k == name {
                return Some(v.into_owned());
            }
        }
    }
    None
}

/// POSTs a form to the token endpoint (client_secret_basic when `basic` is given).
pub async fn token(
    s: &TestServer,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    post_form(s, "token", basic, form).await
}

pub async fn post_form(
    s: &TestServer,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut req = TestServer::client()
        .post(format!("{}/oidc/{path}", s.public))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.expect("POST");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(json!({"raw": text})),
        headers,
    )
}

/// Verifies a JWT signed by the server against its JWKS; returns the claims.
pub async fn verify(s: &TestServer, jwt: &str, audience: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(format!("{}/oidc/jwks", s.public))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let header = jsonwebtoken::decode_header(jwt).expect("header");
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("kid in JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[audience]);
    v.set_issuer(&[format!("{}/oidc", s.public)]);
    jsonwebtoken::decode::<Value>(jwt, &key, &v)
        .expect("id_token verifies")
        .claims
}

/// A whole code flow for a signed-in (or signing-in) browser; returns the token response.
pub async fn code_flow(
    b: &Browser,
    s: &TestServer,
    client: &Value,
    email: &str,
    scope: &str,
) -> Value {
    let p = pkce();
    let client_id = client["client_id"].as_str().expect("client_id");
    let redirect = client["redirect_uris"][0].as_str().expect("redirect");
    let url = auth_url(
        s,
        &[
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", scope),
            ("state", "st-1"),
            ("nonce", "n-1"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let (status, loc, body) = drive(b, s, &url, email, Some("accept")).await;
    assert!((300..400).contains(&status), "{status} {loc} {body}");
    assert!(loc.starts_with(redirect), "{loc}");
    assert_eq!(param(&loc, "state").as_deref(), Some("st-1"));
    let code = param(&loc, "code").expect("code");
    let secret = client["client_secret"].as_str().unwrap_or_default();
    let (st, t, _) = token(
        s,
        Some((client_id, secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(st, 200, "{t}");
    t
}

pub fn traditional(redirect: &str) -> Value {
    json!({
        "client_name": "Bookstore",
        "app_type": "traditional",
        "redirect_uris": [redirect],
        "post_logout_redirect_uris": ["https://rp.example.com/signed-out"],
    })
}

/// A relying-party peer speaking one JSON object per line on stdio.
pub struct Peer {
    pub child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Peer {
    pub async fn start(program: &str, script: &str, config: Value, hint: &str) -> Peer {
        let dir = peers_dir();
        let mut child = tokio::process::Command::new(program)
            .arg(dir.join(script))
            .arg(config.to_string())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} {script}: {e}; {hint}"));
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Peer {
            child,
            stdin,
            lines,
        }
    }

    pub async fn read(&mut self) -> Value {
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("the peer answered within 60 s")
            .expect("read peer")
            .expect("the peer printed a line");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("peer said: {line}"));
        assert!(v.get("error").is_none(), "the peer failed: {}", v["error"]);
        v
    }

    pub async fn write(&mut self, v: Value) {
        self.stdin
            .write_all(format!("{v}\n").as_bytes())
            .await
            .expect("write peer");
    }
}

pub const NODE_HINT: &str = "run `bash scripts/test-deps.sh` (installs openid-client into peers/)";
pub const PY_HINT: &str = "run `bash scripts/test-deps.sh` (installs Authlib into peers/.venv)";

/// One admin API call that must succeed (2xx); returns the JSON answer.
pub async fn admin_ok(s: &TestServer, method: reqwest::Method, path: &str, body: Value) -> Value {
    s.admin_ok(method, path, (!body.is_null()).then_some(&body))
        .await
}
