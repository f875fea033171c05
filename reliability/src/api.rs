//! The operations the load is made of, over HTTP as any client would call them: API-flow
//! sign-up and login, whoami, settings, a browser signing in to an OpenID Provider app, code
//! exchange and refresh. Each returns an [`Outcome`] (and what it acknowledged) rather than
//! panicking: under fault injection failures are data.

pub use crate::stats::Outcome;
use crate::stats::Stats;
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "correct-horse-battery-staple";
pub const RP: &str = "https://rp.example.com/cb";

/// Every request of the suite gives up after this long: a hung server shows as
/// `client timeout`, never as a hung suite.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A client with no redirects, no cookies and the suite's deadline.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(CLIENT_TIMEOUT)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// A browser: a cookie jar of its own, no redirects followed, the suite's deadline. (testkit's
/// `Browser` panics when a request fails, which under fault injection is the normal case.)
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .timeout(CLIENT_TIMEOUT)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// One request's answer: status and JSON (or `Null`), or the transport failure.
pub async fn send(
    req: reqwest::RequestBuilder,
) -> Result<(u16, Value, reqwest::header::HeaderMap), Outcome> {
    let r = req.send().await.map_err(|e| Outcome::of_error(&e))?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    // A 503 must say when to come back: one without `Retry-After` is a failure kind of its own.
    if status == 503 && !headers.contains_key("retry-after") {
        return Err(Outcome::Transport("http 503 without Retry-After"));
    }
    let text = r.text().await.map_err(|e| Outcome::of_error(&e))?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    ))
}

/// Times `f` and records it in `stats` under `op`.
pub async fn timed<T>(
    stats: &Stats,
    op: &'static str,
    f: impl std::future::Future<Output = Result<T, Outcome>>,
) -> Result<T, Outcome> {
    let started = Instant::now();
    let r = f.await;
    let outcome = match &r {
        Ok(_) => Outcome::Ok,
        Err(o) => o.clone(),
    };
    stats.record(op, &outcome, started.elapsed());
    r
}

/// Expects `want`; any other status is that status's outcome.
fn expect(status: u16, want: u16) -> Result<(), Outcome> {
    if status == want {
        Ok(())
    } else {
        Err(Outcome::Status(status))
    }
}

/// An acknowledged registration: what must survive anything.
#[derive(Debug, Clone)]
pub struct Registered {
    pub email: String,
    pub identity: String,
    pub token: String,
}

/// Sign-up through the API flow (the session hook issues a token).
pub async fn register(
    c: &reqwest::Client,
    public: &str,
    email: &str,
) -> Result<Registered, Outcome> {
    let (st, flow, _) = send(c.get(format!("{public}/self-service/registration/api"))).await?;
    expect(st, 200)?;
    let id = flow["id"].as_str().unwrap_or_default();
    let (st, body, _) = send(
        c.post(format!("{public}/self-service/registration?flow={id}"))
            .json(&json!({"method": "password", "traits": {"email": email}, "password": PASSWORD})),
    )
    .await?;
    expect(st, 200)?;
    Ok(Registered {
        email: email.to_string(),
        identity: body["identity"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        token: body["session_token"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

/// Password login through the API flow; the session token.
pub async fn login(
    c: &reqwest::Client,
    public: &str,
    email: &str,
    password: &str,
) -> Result<String, Outcome> {
    let (st, flow, _) = send(c.get(format!("{public}/self-service/login/api"))).await?;
    expect(st, 200)?;
    let id = flow["id"].as_str().unwrap_or_default();
    let (st, body, _) = send(
        c.post(format!("{public}/self-service/login?flow={id}"))
            .json(&json!({"method": "password", "identifier": email, "password": password})),
    )
    .await?;
    expect(st, 200)?;
    Ok(body["session_token"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// `/sessions/whoami` with a token: the identity id.
pub async fn whoami(c: &reqwest::Client, public: &str, token: &str) -> Result<String, Outcome> {
    let (st, body, _) = send(
        c.get(format!("{public}/sessions/whoami"))
            .header("X-Session-Token", token),
    )
    .await?;
    expect(st, 200)?;
    Ok(body["identity"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// One settings submission through the API flow with `body` (`method` and its fields).
pub async fn settings(
    c: &reqwest::Client,
    public: &str,
    token: &str,
    body: Value,
) -> Result<Value, Outcome> {
    let (st, flow, _) = send(
        c.get(format!("{public}/self-service/settings/api"))
            .header("X-Session-Token", token),
    )
    .await?;
    expect(st, 200)?;
    let id = flow["id"].as_str().unwrap_or_default();
    let (st, v, _) = send(
        c.post(format!("{public}/self-service/settings?flow={id}"))
            .header("X-Session-Token", token)
            .json(&body),
    )
    .await?;
    expect(st, 200)?;
    Ok(v)
}

/// An OpenID Provider app with refresh tokens and no consent screen.
pub async fn create_app(c: &reqwest::Client, admin: &str) -> anyhow::Result<(String, String)> {
    let r = c
        .post(format!("{admin}/admin/clients"))
        .json(&json!({
            "client_name": "Reliability",
            "app_type": "traditional",
            "redirect_uris": [RP],
            "skip_consent": true,
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await?;
    anyhow::ensure!(status == 201, "create app: {status} {v}");
    Ok((
        v["client_id"].as_str().unwrap_or_default().to_string(),
        v["client_secret"].as_str().unwrap_or_default().to_string(),
    ))
}

fn location(h: &reqwest::header::HeaderMap) -> String {
    h.get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A code the OP acknowledged, with its PKCE verifier.
#[derive(Debug, Clone)]
pub struct Code {
    pub code: String,
    pub verifier: String,
}

/// The CSRF token of a browser flow.
pub fn csrf_of(flow: &Value) -> String {
    flow["ui"]["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["attributes"]["name"] == "csrf_token"))
        .and_then(|n| n["attributes"]["value"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// A browser (see [`browser`]) asks `/oidc/auth` for a code, signing in as `email` through the
/// browser login flow when it has no session yet.
pub async fn authorize(
    b: &reqwest::Client,
    public: &str,
    client_id: &str,
    email: &str,
) -> Result<Code, Outcome> {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", client_id),
            ("redirect_uri", RP),
            ("response_type", "code"),
            ("scope", "openid offline_access"),
            ("state", "reliability"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    let mut url = format!("{public}/oidc/auth?{q}");
    for _ in 0..10 {
        let (st, _, headers) = send(b.get(&url)).await?;
        let loc = location(&headers);
        if !(300..400).contains(&st) {
            return Err(Outcome::Status(st));
        }
        if loc.starts_with(RP) {
            let code = url::Url::parse(&loc)
                .ok()
                .and_then(|u| {
                    u.query_pairs()
                        .find(|(k, _)| k == "code")
                        .map(|(_, v)| v.into_owned())
                })
                .ok_or(Outcome::Status(st))?;
            return Ok(Code { code, verifier });
        }
        if loc.contains("/ui/login?flow=") {
            let id = loc.split("flow=").nth(1).unwrap_or_default();
            let (st, flow, _) = send(
                b.get(format!("{public}/self-service/login/flows?id={id}"))
                    .header("accept", "application/json"),
            )
            .await?;
            expect(st, 200)?;
            let action = flow["ui"]["action"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let csrf = csrf_of(&flow);
            let (st, _, headers) = send(b.post(action).form(&[
                ("csrf_token", csrf.as_str()),
                ("method", "password"),
                ("identifier", email),
                ("password", PASSWORD),
            ]))
            .await?;
            expect(st, 303)?;
            url = location(&headers);
            continue;
        }
        url = if loc.starts_with('/') {
            format!("{public}{loc}")
        } else {
            loc
        };
    }
    Err(Outcome::Transport("redirect loop"))
}

/// The token endpoint; the token answer.
pub async fn token(
    c: &reqwest::Client,
    public: &str,
    app: &(String, String),
    form: &[(&str, &str)],
) -> Result<Value, Outcome> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let (st, v, _) = send(
        c.post(format!("{public}/oidc/token"))
            .basic_auth(&app.0, Some(&app.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await?;
    expect(st, 200)?;
    Ok(v)
}

pub async fn exchange(
    c: &reqwest::Client,
    public: &str,
    app: &(String, String),
    code: &Code,
) -> Result<Value, Outcome> {
    token(
        c,
        public,
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code.code),
            ("redirect_uri", RP),
            ("code_verifier", &code.verifier),
        ],
    )
    .await
}

pub async fn refresh(
    c: &reqwest::Client,
    public: &str,
    app: &(String, String),
    rt: &str,
) -> Result<Value, Outcome> {
    token(
        c,
        public,
        app,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await
}

/// How a browser's social sign-in ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocialEnd {
    /// Back at `return_to`, signed in to this identity.
    SignedIn(String),
    /// Sent back to the flow's page with this message for the person (empty: no message).
    Refused(String),
}

/// Where a social sign-in returns to when it succeeds.
pub const SOCIAL_RETURN: &str = "https://app.example.com/after";

/// A whole browser sign-in through `provider` (an upstream that signs its user in at once, as
/// testkit's fake does): login flow, the provider's button, the upstream, the callback. A
/// refused sign-in that lands on the flow's page is [`SocialEnd::Refused`] with the flow's
/// message; one that ends on the error page is [`Outcome::ErrorPage`].
pub async fn social_sign_in(public: &str, provider: &str) -> Result<SocialEnd, Outcome> {
    let b = browser();
    let url = social_start(&b, public, provider).await?;
    social_follow(&b, public, url).await
}

/// The first half of [`social_sign_in`]: a login flow and the provider's button; the
/// upstream's authorization URL the browser is sent to.
pub async fn social_start(
    b: &reqwest::Client,
    public: &str,
    provider: &str,
) -> Result<String, Outcome> {
    let (st, _, h) = send(b.get(format!(
        "{public}/self-service/login/browser?return_to={SOCIAL_RETURN}"
    )))
    .await?;
    expect(st, 303)?;
    let id = location(&h)
        .split("flow=")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let (st, flow, _) = send(
        b.get(format!("{public}/self-service/login/flows?id={id}"))
            .header("accept", "application/json"),
    )
    .await?;
    expect(st, 200)?;
    let action = flow["ui"]["action"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let csrf = csrf_of(&flow);
    let (st, _, h) = send(
        b.post(action)
            .form(&[("csrf_token", csrf.as_str()), ("provider", provider)]),
    )
    .await?;
    expect(st, 303)?;
    Ok(location(&h))
}

/// The second half of [`social_sign_in`]: follows the redirects from `url` (the upstream, or
/// its callback) to where the sign-in ends.
pub async fn social_follow(
    b: &reqwest::Client,
    public: &str,
    mut url: String,
) -> Result<SocialEnd, Outcome> {
    // The upstream answers at once with a redirect to the callback; the callback to return_to
    // (or back to a flow's page, or to the error page).
    for _ in 0..4 {
        let (st, _, h) = send(b.get(&url)).await?;
        let loc = location(&h);
        if !(300..400).contains(&st) {
            return Err(Outcome::Status(st));
        }
        if loc.starts_with(SOCIAL_RETURN) {
            let (st, me, _) = send(
                b.get(format!("{public}/sessions/whoami"))
                    .header("accept", "application/json"),
            )
            .await?;
            expect(st, 200)?;
            return Ok(SocialEnd::SignedIn(
                me["identity"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
        if loc.contains("/ui/error") {
            return Err(Outcome::ErrorPage);
        }
        // `/ui/login?flow=…` (or registration): the flow carries the message.
        if let Some((kind, id)) = loc
            .split("/ui/")
            .nth(1)
            .and_then(|rest| rest.split_once("?flow="))
        {
            let (st, flow, _) = send(
                b.get(format!("{public}/self-service/{kind}/flows?id={id}"))
                    .header("accept", "application/json"),
            )
            .await?;
            expect(st, 200)?;
            return Ok(SocialEnd::Refused(
                flow["ui"]["messages"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
        url = loc;
    }
    Err(Outcome::Transport("redirect loop"))
}

/// Step `i` of the suite's steady mixed load, recorded in `stats`: a sign-up (a fresh address
/// made of `tag` and `i`), a password login of `first`, or a whoami with `first`'s token, in
/// turn. The registration a sign-up acknowledged, if any.
pub async fn mixed_step(
    c: &reqwest::Client,
    public: &str,
    stats: &Stats,
    tag: &str,
    i: u64,
    first: &Registered,
) -> Result<Option<Registered>, Outcome> {
    match i % 3 {
        0 => {
            let email = format!("{tag}-{i}-{}@example.com", uuid::Uuid::new_v4().simple());
            timed(stats, "sign-up", register(c, public, &email))
                .await
                .map(Some)
        }
        1 => timed(stats, "login", login(c, public, &first.email, PASSWORD))
            .await
            .map(|_| None),
        _ => timed(stats, "whoami", whoami(c, public, &first.token))
            .await
            .map(|_| None),
    }
}
