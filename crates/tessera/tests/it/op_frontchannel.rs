//! Front-channel logout (OIDC Front-Channel Logout 1.0, issue 22): an app registers a
//! `frontchannel_logout_uri`; when a session that signed in to it ends at `session/end`, the
//! hosted signed-out page loads that page in an iframe (with `iss` and `sid` when the app asked
//! for them), and the page's CSP frames exactly those origins.
//! - in Chromium (peers/browser/frontchannel.mjs): a person signs in (the code returned by the
//!   `form_post` page, whose script its CSP allows by hash) and out, and the app's loopback
//!   page records that it was loaded with the right `iss` and `sid`;
//! - over HTTP: registration refuses `javascript:`, `data:`, plain http on the network,
//!   fragments and machine apps; an app the session never signed in to gets no iframe; other
//!   pages' CSP frames nothing; front-channel-only apps get no back-channel notices; discovery.

use crate::op_common::*;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback "app": answers every request with a short page and records each request line
/// (`GET /fc?iss=…&sid=… HTTP/1.1`). Returns its origin and the record.
async fn app_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut n = 0;
                while n < buf.len() {
                    match conn.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let line = head.lines().next().unwrap_or_default().to_string();
                let body = if line.contains(" /fc") {
                    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>App</title></head><body>signed out of the app</body></html>"
                } else {
                    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>App</title></head><body>Back at the app.</body></html>"
                };
                if let Ok(mut r) = record.lock() {
                    r.push(line);
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    (origin, seen)
}

fn lines(seen: &Arc<Mutex<Vec<String>>>, path: &str) -> Vec<String> {
    seen.lock()
        .map(|v| {
            v.iter()
                .filter(|l| l.starts_with(&format!("GET {path}")))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The query parameter `name` of a recorded request line.
fn query_param(line: &str, name: &str) -> Option<String> {
    let target = line.split(' ').nth(1)?;
    param(&format!("http://x{target}"), name)
}

#[tokio::test]
async fn chromium_loads_the_apps_logout_page_with_iss_and_sid() {
    let s = server(Backend::Sqlite, "").await;
    let uid = user(&s, "fc@example.com").await;
    let (app, seen) = app_server().await;
    let (other, other_seen) = app_server().await;
    let redirect = format!("{app}/callback");
    let a = create_client(
        &s,
        json!({
            "client_name": "Bookstore",
            "redirect_uris": [redirect],
            "frontchannel_logout_uri": format!("{app}/fc"),
            "frontchannel_logout_session_required": true,
        }),
    )
    .await;
    assert_eq!(a["frontchannel_logout_session_required"], true);
    // An app the person never signs in to: its page must not be loaded.
    create_client(
        &s,
        json!({
            "client_name": "Music",
            "redirect_uris": [format!("{other}/callback")],
            "frontchannel_logout_uri": format!("{other}/fc"),
            "frontchannel_logout_session_required": true,
        }),
    )
    .await;
    let cid = a["client_id"].as_str().expect("client_id");
    let p = pkce();
    let auth = auth_url(
        &s,
        &[
            ("client_id", cid),
            ("redirect_uri", &redirect),
            ("response_type", "code"),
            ("response_mode", "form_post"),
            ("scope", "openid email"),
            ("state", "st"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let shots = tessera_testkit::browser::screenshot_dir("frontchannel");
    tessera_testkit::browser::run_script(
        "frontchannel.mjs",
        &s.public,
        &[],
        &shots,
        &[
            ("AUTH_URL", auth),
            ("APP_REDIRECT_URI", redirect.clone()),
            (
                "LOGOUT_URL",
                format!("{}/oidc/session/end?client_id={cid}", s.public),
            ),
            ("FRAME_ORIGIN", app.clone()),
            ("EMAIL", "fc@example.com".into()),
            ("PASSWORD", "correct-horse-battery".into()),
        ],
    )
    .await;
    // The code came back by form_post: the browser ran the page's hash-allowed script.
    let posts: Vec<String> = seen
        .lock()
        .map(|v| {
            v.iter()
                .filter(|l| l.starts_with("POST /callback"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(posts.len(), 1, "{posts:?}");
    let hits = lines(&seen, "/fc");
    assert_eq!(hits.len(), 1, "the app's page was loaded once: {hits:?}");
    assert_eq!(
        query_param(&hits[0], "iss").as_deref(),
        Some(format!("{}/oidc", s.public).as_str())
    );
    // `sid` is the sign-in's session, the one the app's id_tokens name.
    let sid = query_param(&hits[0], "sid").expect("sid");
    let sessions: Value = TestServer::client()
        .get(format!("{}/admin/identities/{uid}/sessions", s.admin))
        .send()
        .await
        .expect("sessions")
        .json()
        .await
        .expect("sessions json");
    assert!(
        sessions
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["id"] == sid.as_str())),
        "sid {sid} is one of the person's sessions: {sessions}"
    );
    assert!(
        lines(&other_seen, "/fc").is_empty(),
        "an app the person never signed in to gets no iframe"
    );
    s.stop().await;
}

each_backend!(front_channel_registration_pages_and_csp);
async fn front_channel_registration_pages_and_csp(backend: Backend) {
    let s = server(backend, "").await;
    user(&s, "bo@example.com").await;
    let d: Value = reqwest::get(format!(
        "{}/oidc/.well-known/openid-configuration",
        s.public
    ))
    .await
    .expect("discovery")
    .json()
    .await
    .expect("json");
    assert_eq!(d["frontchannel_logout_supported"], true);
    assert_eq!(d["frontchannel_logout_session_supported"], true);

    // Registration: the same rules as redirect URIs.
    for (body, why) in [
        (
            json!({"redirect_uris": ["https://a.example.test/cb"], "frontchannel_logout_uri": "javascript:alert(1)"}),
            "javascript",
        ),
        (
            json!({"redirect_uris": ["https://a.example.test/cb"], "frontchannel_logout_uri": "data:text/html,<script>alert(1)</script>"}),
            "data",
        ),
        (
            json!({"redirect_uris": ["https://a.example.test/cb"], "frontchannel_logout_uri": "http://a.example.test/fc"}),
            "plain http",
        ),
        (
            json!({"redirect_uris": ["https://a.example.test/cb"], "frontchannel_logout_uri": "https://a.example.test/fc#x"}),
            "fragment",
        ),
        (
            json!({"redirect_uris": ["https://a.example.test/cb"], "frontchannel_logout_uri": "/fc"}),
            "relative",
        ),
        (
            json!({"app_type": "machine", "frontchannel_logout_uri": "https://a.example.test/fc"}),
            "machine",
        ),
        (
            json!({"redirect_uris": ["https://a.example.test/cb"], "frontchannel_logout_session_required": true}),
            "session_required alone",
        ),
    ] {
        let r = TestServer::client()
            .post(format!("{}/admin/clients", s.admin))
            .json(&body)
            .send()
            .await
            .expect("admin");
        let st = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or_default();
        assert_eq!(st, 400, "{why}: {v}");
        assert!(
            v.to_string().contains("frontchannel_logout"),
            "{why}: the answer names the field: {v}"
        );
    }

    let (app_a, _) = app_server().await;
    let (app_c, _) = app_server().await;
    let a = create_client(
        &s,
        json!({
            "client_name": "A",
            "redirect_uris": [format!("{app_a}/callback")],
            "post_logout_redirect_uris": [format!("{app_a}/bye")],
            "frontchannel_logout_uri": format!("{app_a}/fc?tenant=1"),
            "frontchannel_logout_session_required": true,
            "skip_consent": true,
        }),
    )
    .await;
    let c = create_client(
        &s,
        json!({
            "client_name": "C",
            "redirect_uris": [format!("{app_c}/callback")],
            "frontchannel_logout_uri": format!("{app_c}/fc"),
            "skip_consent": true,
        }),
    )
    .await;
    let b = create_client(
        &s,
        json!({
            "client_name": "B (never used)",
            "redirect_uris": ["https://b.example.test/cb"],
            "frontchannel_logout_uri": "https://b.example.test/fc",
        }),
    )
    .await;
    assert_eq!(b["frontchannel_logout_uri"], "https://b.example.test/fc");

    let browser = Browser::default();
    let ta = code_flow(&browser, &s, &a, "bo@example.com", "openid").await;
    code_flow(&browser, &s, &c, "bo@example.com", "openid").await;
    let id_token = ta["id_token"].as_str().expect("id_token");
    let sid = {
        use base64::Engine as _;
        let p = id_token.split('.').nth(1).expect("jwt");
        let v: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .expect("b64"),
        )
        .expect("claims");
        v["sid"].as_str().expect("sid").to_string()
    };
    let bye = format!("{app_a}/bye");
    let url = format!(
        "{}/oidc/session/end?{}",
        s.public,
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("id_token_hint", id_token),
                ("post_logout_redirect_uri", &bye),
                ("state", "s1"),
            ])
            .finish()
    );
    let r = browser.get(&url, false).await;
    assert_eq!(
        r.status(),
        200,
        "the signed-out page, not a redirect, while apps must hear it"
    );
    let csp = r
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let html = r.text().await.unwrap_or_default();
    let mut want = [app_a.clone(), app_c.clone()];
    want.sort();
    assert!(
        csp.ends_with(&format!("; frame-src {}", want.join(" "))),
        "exactly the two apps' origins are framed: {csp}"
    );
    assert_eq!(csp.matches("frame-src").count(), 1, "{csp}");
    let frames: Vec<String> = html
        .split("<iframe class=\"fc-logout\" src=\"")
        .skip(1)
        .map(|t| {
            t.split('"')
                .next()
                .unwrap_or_default()
                .replace("&amp;", "&")
        })
        .collect();
    assert_eq!(frames.len(), 2, "{html}");
    let fa = frames
        .iter()
        .find(|f| f.starts_with(&app_a))
        .expect("A's frame");
    assert_eq!(
        param(fa, "tenant").as_deref(),
        Some("1"),
        "its own query is kept"
    );
    assert_eq!(
        param(fa, "iss").as_deref(),
        Some(format!("{}/oidc", s.public).as_str())
    );
    assert_eq!(param(fa, "sid").as_deref(), Some(sid.as_str()));
    let fc = frames
        .iter()
        .find(|f| f.starts_with(&app_c))
        .expect("C's frame");
    assert_eq!(fc, &format!("{app_c}/fc"), "C did not ask for iss and sid");
    assert!(!html.contains("b.example.test"), "B was never signed in to");
    assert!(
        html.contains(&format!("href=\"{bye}?state=s1\"")),
        "the way back to the app: {html}"
    );

    // Other pages frame nothing; the signed-out page of a browser without apps neither.
    for path in ["/self-service/login/browser", "/oidc/session/end"] {
        let r = Browser::default()
            .get(&format!("{}{path}", s.public), true)
            .await;
        let csp = r
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(!csp.contains("frame-src"), "{path}: {csp}");
    }

    // Front-channel-only apps get no back-channel notices.
    for app in [&a, &c] {
        let id = app["client_id"].as_str().expect("id");
        let v = admin_ok(
            &s,
            reqwest::Method::GET,
            &format!("/admin/clients/{id}/logout-notices"),
            Value::Null,
        )
        .await;
        assert_eq!(v, json!([]), "{v}");
    }
    s.stop().await;
}

/// `tessera clients create --frontchannel-logout-uri` registers the page (and refuses a
/// `javascript:` one with the reason).
#[tokio::test]
async fn cli_registers_a_frontchannel_logout_uri() {
    let s = server(Backend::Sqlite, "").await;
    let run = |uri: &str| {
        let args: Vec<String> = [
            "clients",
            "create",
            "--json",
            "--endpoint",
            &s.admin,
            "--name",
            "Bookstore",
            "--redirect-uri",
            "https://a.example.test/cb",
            "--frontchannel-logout-uri",
            uri,
            "--frontchannel-logout-session-required",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
                .args(args)
                .output()
                .await
                .expect("tessera clients create")
        }
    };
    let out = run("https://a.example.test/fc").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        created["frontchannel_logout_uri"],
        "https://a.example.test/fc"
    );
    assert_eq!(created["frontchannel_logout_session_required"], true);
    let out = run("javascript:alert(1)").await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("javascript"), "{err}");
    s.stop().await;
}
