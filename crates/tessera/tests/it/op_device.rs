//! The device authorization grant (RFC 8628): a TV or CLI app gets a user code, the user
//! approves it at `/ui/device` in a browser (sign-in, then the consent page that confirms the
//! device), and the device's polling turns into tokens — with the real `openid-client` as the
//! device (peers/device-client.mjs), and by hand for every refusal: polling too early or too
//! fast, a denied or redeemed grant, another app's device code, a mistyped user code, a form
//! without its CSRF token.

use crate::op_common::*;
use serde_json::{Value, json};
use tessera_testkit::journey::location;
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A public device app (no redirect URIs: it never receives one).
async fn tv_app(s: &TestServer, skip_consent: bool) -> Value {
    create_client(
        s,
        json!({
            "client_name": "Living-room TV",
            "app_type": "native",
            "token_endpoint_auth_method": "none",
            "grant_types": [DEVICE_GRANT, "refresh_token"],
            "response_types": [],
            "scope": "openid email offline_access",
            "skip_consent": skip_consent,
        }),
    )
    .await
}

async fn device_auth(s: &TestServer, client_id: &str) -> (u16, Value) {
    let (st, v, _) = post_form(
        s,
        "device/auth",
        None,
        &[
            ("client_id", client_id),
            ("scope", "openid email offline_access"),
        ],
    )
    .await;
    (st, v)
}

async fn poll(s: &TestServer, client_id: &str, device_code: &str) -> (u16, Value) {
    let (st, v, _) = token(
        s,
        None,
        &[
            ("grant_type", DEVICE_GRANT),
            ("device_code", device_code),
            ("client_id", client_id),
        ],
    )
    .await;
    (st, v)
}

/// Opens the verification page, submits the code and goes through sign-in and the consent
/// page with `decision`; returns the last page.
async fn approve(
    b: &Browser,
    s: &TestServer,
    user_code: &str,
    email: &str,
    decision: &str,
) -> (u16, String) {
    let page = b
        .get(
            &format!("{}/ui/device?user_code={user_code}", s.public),
            false,
        )
        .await
        .text()
        .await
        .unwrap_or_default();
    let csrf = between(&page, "name=\"csrf_token\" value=\"", "\"");
    assert!(page.contains(user_code), "the code is filled in: {page}");
    let r = b
        .post_form(
            &format!("{}/ui/device", s.public),
            &[("csrf_token", &csrf), ("user_code", user_code)],
            false,
        )
        .await;
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    let (st, _, text) = drive(b, s, &location(&r), email, Some(decision)).await;
    (st, text)
}

#[tokio::test]
async fn openid_client_signs_a_device_in_with_the_user_code() {
    let s = server(Backend::Sqlite, "").await;
    let id = user(&s, "tv@example.com").await;
    let c = tv_app(&s, false).await;
    let mut peer = Peer::start(
        "node",
        "device-client.mjs",
        json!({"issuer": format!("{}/oidc", s.public), "client_id": c["client_id"], "scope": "openid email offline_access"}),
        NODE_HINT,
    )
    .await;
    let d = peer.read().await["device"].clone();
    assert_eq!(d["verification_uri"], format!("{}/ui/device", s.public));
    assert_eq!(d["expires_in"], 600);
    assert_eq!(d["interval"], 5);
    let code = d["user_code"].as_str().expect("user_code").to_string();
    assert_eq!(code.len(), 9, "XXXX-XXXX: {code}");
    assert_eq!(
        d["verification_uri_complete"],
        format!("{}/ui/device?user_code={code}", s.public)
    );
    let (st, page) = approve(&Browser::default(), &s, &code, "tv@example.com", "accept").await;
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("Living-room TV"), "{page}");
    let r = peer.read().await["result"].clone();
    assert_eq!(r["claims"]["sub"], json!(id), "{r}");
    assert_eq!(r["userinfo"]["email"], "tv@example.com");
    assert_eq!(r["refresh_token"], true);
    let _ = peer.child.wait().await;
    s.stop().await;
}

each_backend!(polling_is_paced_and_a_grant_is_redeemed_once);
async fn polling_is_paced_and_a_grant_is_redeemed_once(backend: Backend) {
    let s = server(backend, "").await;
    let id = user(&s, "bo@example.com").await;
    // First-party (skip_consent): the device is still confirmed on the consent page.
    let c = tv_app(&s, true).await;
    let cid = c["client_id"].as_str().expect("client_id");
    let (st, d) = device_auth(&s, cid).await;
    assert_eq!(st, 200, "{d}");
    let device_code = d["device_code"].as_str().expect("device_code");
    let (st, v) = poll(&s, cid, device_code).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("authorization_pending")),
        "{v}"
    );
    let (st, v) = poll(&s, cid, device_code).await;
    assert_eq!((st, v["error"].as_str()), (400, Some("slow_down")), "{v}");
    // Another app cannot redeem this device code.
    let other = tv_app(&s, false).await;
    let (st, v) = poll(&s, other["client_id"].as_str().expect("id"), device_code).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    let b = Browser::default();
    let code = d["user_code"].as_str().expect("user_code");
    let (st, page) = approve(&b, &s, code, "bo@example.com", "accept").await;
    assert_eq!(st, 200, "{page}");
    let (st, t) = poll(&s, cid, device_code).await;
    assert_eq!(st, 200, "{t}");
    let claims = verify(&s, t["id_token"].as_str().expect("id_token"), cid).await;
    assert_eq!(claims["sub"], json!(id));
    assert!(t["refresh_token"].is_string(), "{t}");
    // Once: the next poll, and the same code at the page, are refused.
    let (st, v) = poll(&s, cid, device_code).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    let page = b
        .get(&format!("{}/ui/device", s.public), false)
        .await
        .text()
        .await
        .unwrap_or_default();
    let csrf = between(&page, "name=\"csrf_token\" value=\"", "\"");
    let r = b
        .post_form(
            &format!("{}/ui/device", s.public),
            &[("csrf_token", &csrf), ("user_code", code)],
            false,
        )
        .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap_or_default();
    assert!(text.contains("not valid"), "{text}");
    s.stop().await;
}

each_backend!(a_denied_device_hears_access_denied);
async fn a_denied_device_hears_access_denied(backend: Backend) {
    let s = server(backend, "").await;
    user(&s, "cy@example.com").await;
    let c = tv_app(&s, false).await;
    let cid = c["client_id"].as_str().expect("client_id");
    let (_, d) = device_auth(&s, cid).await;
    let code = d["user_code"].as_str().expect("user_code");
    let (st, page) = approve(&Browser::default(), &s, code, "cy@example.com", "deny").await;
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("cancelled"), "{page}");
    let (st, v) = poll(&s, cid, d["device_code"].as_str().expect("device_code")).await;
    assert_eq!(v["error"], "access_denied", "{v}");
    // RFC 6749 §5.2 / RFC 8628 §3.5: a token endpoint error is a 400, access_denied included.
    assert_eq!(st, 400, "{v}");
    s.stop().await;
}

#[tokio::test]
async fn bad_codes_bad_forms_and_apps_without_the_grant_are_refused() {
    let s = server(Backend::Sqlite, "").await;
    // An app not registered for the device grant.
    let web = create_client(&s, traditional("http://127.0.0.1:9/cb")).await;
    let (st, v, _) = post_form(
        &s,
        "device/auth",
        Some((
            web["client_id"].as_str().expect("id"),
            web["client_secret"].as_str().expect("secret"),
        )),
        &[("scope", "openid")],
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{v}"
    );
    let c = tv_app(&s, false).await;
    let cid = c["client_id"].as_str().expect("client_id");
    // A scope the app may not ask for.
    let (st, v, _) = post_form(
        &s,
        "device/auth",
        None,
        &[("client_id", cid), ("scope", "openid admin")],
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_scope")),
        "{v}"
    );
    // An unknown device code.
    let (st, v) = poll(&s, cid, "not-a-device-code").await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    let (_, d) = device_auth(&s, cid).await;
    let b = Browser::default();
    let page = b
        .get(&format!("{}/ui/device", s.public), false)
        .await
        .text()
        .await
        .unwrap_or_default();
    let csrf = between(&page, "name=\"csrf_token\" value=\"", "\"");
    // A mistyped code comes back on the form, in the page's language.
    for typed in ["BCDF-GHJK", "nonsense", ""] {
        let r = b
            .post_form(
                &format!("{}/ui/device", s.public),
                &[("csrf_token", &csrf), ("user_code", typed)],
                false,
            )
            .await;
        assert_eq!(r.status(), 200, "{typed}");
        let text = r.text().await.unwrap_or_default();
        assert!(text.contains("not valid"), "{typed}: {text}");
    }
    // Without the CSRF token nothing happens, even with the right code.
    let code = d["user_code"].as_str().expect("user_code");
    let r = b
        .post_form(
            &format!("{}/ui/device", s.public),
            &[("user_code", code)],
            false,
        )
        .await;
    assert_eq!(r.status(), 403);
    let (_, v) = poll(&s, cid, d["device_code"].as_str().expect("device_code")).await;
    assert_eq!(v["error"], "authorization_pending", "{v}");
    // The page speaks Russian and Chinese too.
    for (lang, words) in [("ru", "Введите код"), ("zh-CN", "请输入")] {
        let text = b
            .get(&format!("{}/ui/device?ui_locales={lang}", s.public), false)
            .await
            .text()
            .await
            .unwrap_or_default();
        assert!(text.contains(words), "{lang}: {text}");
    }
    let disc: Value = reqwest::get(format!(
        "{}/oidc/.well-known/openid-configuration",
        s.public
    ))
    .await
    .expect("discovery")
    .json()
    .await
    .expect("json");
    assert_eq!(
        disc["device_authorization_endpoint"],
        format!("{}/oidc/device/auth", s.public)
    );
    s.stop().await;
}
