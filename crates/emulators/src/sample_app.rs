//! "Bookshelf", a sample app that signs its users in through Tessera's OpenID Provider the way a
//! WordPress site or a SaaS app does: authorization code with PKCE (S256), `state` and `nonce`,
//! then the token endpoint, then userinfo, and RP-initiated logout. It is a public client (no
//! secret), so `tessera demo` can register it without keeping anything secret. It shows what it
//! received; a real app would also verify the id_token's signature against the JWKS (the
//! `openid-client` and Authlib tests do).

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The client id `tessera demo` registers the sample app under.
pub const CLIENT_ID: &str = "demo-bookshelf";

struct Pending {
    verifier: String,
    nonce: String,
}

struct Shared {
    base: String,
    /// `{public base_url}/oidc`.
    issuer: String,
    pending: Mutex<HashMap<String, Pending>>,
    http: reqwest::Client,
}

/// A running sample app on a loopback port. Stops when dropped.
pub struct SampleApp {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl SampleApp {
    /// Serves on `listener`, signing in through the OpenID Provider at `issuer`.
    pub fn serve(listener: tokio::net::TcpListener, issuer: &str) -> std::io::Result<SampleApp> {
        let addr = listener.local_addr()?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            base: format!("http://{addr}"),
            issuer: issuer.trim_end_matches('/').to_string(),
            pending: Mutex::new(HashMap::new()),
            http,
        });
        let app = Router::new()
            .route("/", get(home))
            .route("/login", get(login))
            .route("/callback", get(callback))
            .with_state(shared.clone());
        Ok(SampleApp {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.shared.base
    }

    pub fn redirect_uri(&self) -> String {
        format!("{}/callback", self.shared.base)
    }

    /// The app's registration for `POST /admin/clients` (or `PUT /admin/clients/{id}`).
    pub fn client_metadata(&self) -> Value {
        serde_json::json!({
            "client_id": CLIENT_ID,
            "client_name": "Bookshelf (sample app)",
            "app_type": "spa",
            "redirect_uris": [self.redirect_uri()],
            "post_logout_redirect_uris": [format!("{}/", self.shared.base)],
            "scope": "openid email profile",
            "skip_consent": false,
        })
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(status: StatusCode, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Bookshelf · sample app</title></head><body style=\"font-family:sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5\"><h1>Bookshelf</h1><p><em>A sample app that signs in through Tessera's OpenID Provider.</em></p>{body}</body></html>"
    );
    (
        status,
        [
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Html(html),
    )
        .into_response()
}

async fn home() -> Response {
    page(
        StatusCode::OK,
        "<p>You are not signed in to Bookshelf.</p><p><a href=\"/login\">Sign in with Tessera</a> · <a href=\"/login?ui_locales=zh-CN\">用 Tessera 登录</a> · <a href=\"/login?ui_locales=ru\">Войти через Tessera</a></p>",
    )
}

fn random() -> String {
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    URL_SAFE_NO_PAD.encode(b)
}

async fn login(State(s): State<Arc<Shared>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let (state, verifier, nonce) = (random(), random(), random());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut params = vec![
        ("client_id", CLIENT_ID.to_string()),
        ("redirect_uri", format!("{}/callback", s.base)),
        ("response_type", "code".into()),
        ("scope", "openid email profile".into()),
        ("state", state.clone()),
        ("nonce", nonce.clone()),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256".into()),
    ];
    if let Some(l) = q.get("ui_locales") {
        params.push(("ui_locales", l.clone()));
    }
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    if let Ok(mut p) = s.pending.lock() {
        p.insert(state, Pending { verifier, nonce });
    }
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("{}/auth?{query}", s.issuer))],
    )
        .into_response()
}

/// The id_token's claims, read without checking the signature (see the module comment).
fn claims_of(id_token: &str) -> Option<Value> {
    let payload = id_token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

async fn callback(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let pending = q
        .get("state")
        .and_then(|st| s.pending.lock().ok()?.remove(st));
    let Some(pending) = pending else {
        return page(
            StatusCode::BAD_REQUEST,
            "<p>This answer does not belong to a sign-in Bookshelf started (unknown or reused <code>state</code>).</p><p><a href=\"/\">Start again</a></p>",
        );
    };
    if let Some(e) = q.get("error") {
        return page(
            StatusCode::OK,
            &format!(
                "<p>Tessera answered <code>{}</code>: {}</p><p><a href=\"/\">Back</a></p>",
                esc(e),
                esc(q.get("error_description").map(String::as_str).unwrap_or(""))
            ),
        );
    }
    let code = q.get("code").cloned().unwrap_or_default();
    let token = s
        .http
        .post(format!("{}/token", s.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", &format!("{}/callback", s.base)),
            ("client_id", CLIENT_ID),
            ("code_verifier", pending.verifier.as_str()),
        ])
        .send()
        .await;
    let token: Value = match token {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
        Ok(r) => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            return page(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "<p>The token endpoint answered {status}: <code>{}</code></p>",
                    esc(&body)
                ),
            );
        }
        Err(e) => {
            return page(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "<p>Cannot reach the token endpoint: {}</p>",
                    esc(&e.to_string())
                ),
            );
        }
    };
    let id_token = token["id_token"].as_str().unwrap_or_default();
    let claims = claims_of(id_token).unwrap_or(Value::Null);
    if claims["nonce"].as_str() != Some(pending.nonce.as_str()) {
        return page(
            StatusCode::BAD_GATEWAY,
            "<p>The id_token's <code>nonce</code> is not the one Bookshelf sent; refusing it.</p>",
        );
    }
    let userinfo: Value = match s
        .http
        .get(format!("{}/me", s.issuer))
        .bearer_auth(token["access_token"].as_str().unwrap_or_default())
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let who = userinfo["email"]
        .as_str()
        .or(claims["sub"].as_str())
        .unwrap_or("?");
    let logout: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", CLIENT_ID),
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", &format!("{}/", s.base)),
        ])
        .finish();
    let pretty = |v: &Value| esc(&serde_json::to_string_pretty(v).unwrap_or_default());
    page(
        StatusCode::OK,
        &format!(
            "<p>Signed in to Bookshelf as <strong>{}</strong>.</p><h2>id_token claims</h2><pre>{}</pre><h2>userinfo (<code>/oidc/me</code>)</h2><pre>{}</pre><p><a href=\"{}\">Sign out</a> · <a href=\"/\">Home</a></p>",
            esc(who),
            pretty(&claims),
            pretty(&userinfo),
            esc(&format!("{}/session/end?{logout}", s.issuer)),
        ),
    )
}
