//! Issue 18's last two provider types, end to end through the browser flow against their
//! emulators with `tessera demo`'s default mappers, on both backends: `line` (Kratos's LINE
//! Login v2.1: id_tokens HS256-signed with the channel secret, checked with this entry's
//! secret, channel and nonce; the email never marked verified) and `twitch` (ours: OIDC with
//! the `claims` parameter, the token's `scope` as a JSON array, the access token validated
//! as this application's).

use serde_json::{Value, json};
use std::time::Duration;
use tessera_testkit::emulators::line::LineEmulator;
use tessera_testkit::emulators::twitch::TwitchEmulator;
use tessera_testkit::journey::{
    asks_for_the_email, assert_needs_a_secret, b64, config, fill_the_gap, identities, identity,
    location, oidc_identifiers, param, press_provider, refused_in_every_language, server_for,
    sign_in, sign_up_and_again, upstream, whoami,
};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

/// Every verifiable address of `identity` is unverified (and there is at least one).
fn all_unverified(identity: &Value) -> bool {
    let addresses = identity["verifiable_addresses"].as_array();
    addresses.is_some_and(|a| !a.is_empty() && a.iter().all(|x| x["verified"] == false))
}

// ---- LINE ----------------------------------------------------------------------------------

/// `tessera demo`'s LINE mapper, the one docs/providers/line.md shows.
const LINE_MAPPER: &str = include_str!("../../demo/line.jsonnet");

/// A Kratos `line` entry for the emulated channel.
fn line_yaml(l: &LineEmulator, secret: &str) -> String {
    format!(
        "          - id: line\n            provider: line\n            client_id: \"{}\"\n            client_secret: {secret}\n            scope: [profile, email]\n            auth_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n",
        l.client_id(),
        l.auth_url(),
        l.base_url(),
        b64(LINE_MAPPER)
    )
}

async fn line_server(backend: Backend, l: &LineEmulator, secret: &str) -> TestServer {
    server_for(backend, &line_yaml(l, secret), "line", |cb| {
        l.register_redirect_uri(cb)
    })
    .await
}

each_backend!(line_signs_up_then_in_again_into_the_same_identity);
async fn line_signs_up_then_in_again_into_the_same_identity(backend: Backend) {
    let l = LineEmulator::start().await;
    let s = line_server(backend, &l, l.client_secret()).await;
    let b = Browser::default();
    let authorize = press_provider(&b, &s, "login", "line", "https://app.example.com/after").await;
    assert!(
        authorize.starts_with(&format!("{}?", l.auth_url())),
        "{authorize}"
    );
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("openid profile email")
    );
    assert!(param(&authorize, "nonce").is_some_and(|n| n.len() >= 16));
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let id = sign_up_and_again(
        &s,
        "line",
        ("ivan", "ivan.petrov@example.ru"),
        l.sub_of("ivan"),
    )
    .await;
    let me = identity(&s, &id).await;
    assert_eq!(me["metadata_public"]["line_user_id"], l.sub_of("ivan"));
    // LINE says nothing about whether the address was confirmed: it is not marked verified.
    assert!(all_unverified(&me), "{me}");
    s.stop().await;
}

#[tokio::test]
async fn line_an_account_without_an_email_fills_the_gap() {
    let l = LineEmulator::start().await;
    let s = line_server(Backend::Sqlite, &l, l.client_secret()).await;
    fill_the_gap(&s, "line", l.sub_of("maria")).await;
}

#[tokio::test]
async fn line_refuses_an_id_token_of_another_channel_secret_audience_or_sign_in() {
    let l = LineEmulator::start().await;
    let s = line_server(Backend::Sqlite, &l, l.client_secret()).await;
    let refused = || async {
        let text = refused_in_every_language(
            &s,
            ("line", "ivan"),
            "Не удалось проверить ответ LINE",
            "无法验证来自 LINE 的响应",
        )
        .await;
        assert!(
            text.contains("The sign-in answer from LINE could not be verified"),
            "{text}"
        );
    };
    // Signed with another channel's secret (whatever it claims, this channel did not sign it).
    l.set_signing_secret(Some("0f1e2d3c4b5a69788796a5b4c3d2e1f0"));
    refused().await;
    l.set_signing_secret(None);
    // Properly signed, but issued to another channel.
    l.set_id_token_audience(Some("1669999999"));
    refused().await;
    l.set_id_token_audience(None);
    // Properly signed for this channel, but for another sign-in (its nonce).
    l.set_id_token_nonce(Some("nonce-of-another-sign-in"));
    refused().await;
    l.set_id_token_nonce(None);
    assert!(identities(&s).await.is_empty());
    // Once LINE behaves again, the same person signs in.
    let r = sign_in(&Browser::default(), &s, "login", "line", "ivan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
}

#[tokio::test]
async fn line_refusals_are_clear_and_a_secret_is_required() {
    let l = LineEmulator::start().await;
    let s = line_server(Backend::Sqlite, &l, l.client_secret()).await;
    let text = refused_in_every_language(
        &s,
        ("line", "deny"),
        "Вход через LINE отменён",
        "LINE 登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    let s2 = line_server(Backend::Sqlite, &l, "not-the-secret").await;
    let text = refused_in_every_language(
        &s2,
        ("line", "ivan"),
        "Вход через LINE отклонён",
        "LINE 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("LINE refused the sign-in: invalid_client"),
        "{text}"
    );
    assert!(identities(&s).await.is_empty() && identities(&s2).await.is_empty());
    assert_needs_a_secret(&config(&line_yaml(&l, "\"\""))).await;
}

// ---- Twitch --------------------------------------------------------------------------------

/// `tessera demo`'s Twitch mapper, the one docs/providers/twitch.md shows.
const TWITCH_MAPPER: &str = include_str!("../../demo/twitch.jsonnet");

fn twitch_yaml(t: &TwitchEmulator, secret: &str) -> String {
    format!(
        "          - id: twitch\n            provider: twitch\n            client_id: {}\n            client_secret: {secret}\n            issuer_url: {}\n            mapper_url: base64://{}\n",
        t.client_id(),
        t.issuer(),
        b64(TWITCH_MAPPER)
    )
}

async fn twitch_server(backend: Backend, t: &TwitchEmulator, secret: &str) -> TestServer {
    server_for(backend, &twitch_yaml(t, secret), "twitch", |cb| {
        t.register_redirect_uri(cb)
    })
    .await
}

each_backend!(twitch_signs_up_then_in_again_into_the_same_identity);
async fn twitch_signs_up_then_in_again_into_the_same_identity(backend: Backend) {
    let t = TwitchEmulator::start().await;
    let s = twitch_server(backend, &t, t.client_secret()).await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "twitch", "https://app.example.com/after").await;
    assert!(
        authorize.starts_with(&format!("{}/authorize?", t.issuer())),
        "{authorize}"
    );
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("openid user:read:email")
    );
    // The email and the display name are in the id_token only when `claims` asks for them.
    let claims: Value = serde_json::from_str(&param(&authorize, "claims").unwrap()).unwrap();
    assert!(
        claims["id_token"].get("email_verified").is_some(),
        "{claims}"
    );
    // The token answer's scope is a JSON array; the sign-in goes through.
    let r = b.get(&upstream(&b, &authorize, "ivan").await, false).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await["identity"].clone();
    assert_eq!(me["traits"]["email"], "ivan.petrov@example.ru");
    assert_eq!(me["traits"]["name"]["first"], "ИванПетров");
    assert_eq!(me["metadata_public"]["twitch_display_name"], "ИванПетров");
    assert_eq!(me["metadata_public"]["twitch_login"], "ivanpetrov");
    let id = me["id"].as_str().unwrap().to_string();
    assert_eq!(
        oidc_identifiers(&s, &id).await,
        json!([format!("twitch:{}", t.id_of("ivan"))])
    );
    // Again, from another browser: the same identity.
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "registration", "twitch", "ivan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], id.as_str());
    assert_eq!(identities(&s).await.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn twitch_refuses_an_access_token_of_another_application() {
    let t = TwitchEmulator::start().await;
    let s = twitch_server(Backend::Sqlite, &t, t.client_secret()).await;
    // The id_token is this application's, but Twitch's validation says the access token
    // belongs to another client_id.
    t.set_token_client_id(Some("anotherapp0000000000000000000"));
    let text = refused_in_every_language(
        &s,
        ("twitch", "ivan"),
        "Не удалось проверить ответ Twitch",
        "无法验证来自 Twitch 的响应",
    )
    .await;
    assert!(text.contains("could not be verified"), "{text}");
    assert!(identities(&s).await.is_empty());
    t.set_token_client_id(None);
    let r = sign_in(&Browser::default(), &s, "login", "twitch", "ivan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
}

#[tokio::test]
async fn twitch_never_takes_an_unverified_email_and_a_missing_scope_is_refused() {
    let t = TwitchEmulator::start().await;
    let s = twitch_server(Backend::Sqlite, &t, t.client_secret()).await;
    // The person refuses the email scope: the token's scope array lacks it.
    t.set_withheld_scope(Some("user:read:email"));
    let text = refused_in_every_language(
        &s,
        ("twitch", "ivan"),
        "Не удалось завершить вход через Twitch",
        "通过 Twitch 登录未能完成",
    )
    .await;
    assert!(
        text.contains("did not grant the permission `user:read:email`"),
        "{text}"
    );
    t.set_withheld_scope(None);
    // Мария's address is one Twitch has not verified: not taken, the page asks for one.
    asks_for_the_email(&s, "twitch", "maria").await;
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn twitch_errors_are_its_own_words_and_a_secret_is_required() {
    let t = TwitchEmulator::start().await;
    let s = twitch_server(Backend::Sqlite, &t, t.client_secret()).await;
    // An expired code: Twitch's `{status, message}` said clearly.
    t.set_code_ttl(Duration::ZERO);
    let text = refused_in_every_language(
        &s,
        ("twitch", "ivan"),
        "Вход через Twitch отклонён",
        "Twitch 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("HTTP 400 — Invalid authorization code"),
        "{text}"
    );
    t.set_code_ttl(Duration::from_secs(600));
    let s2 = twitch_server(Backend::Sqlite, &t, "not-the-secret").await;
    let text = refused_in_every_language(
        &s2,
        ("twitch", "ivan"),
        "Вход через Twitch отклонён",
        "Twitch 拒绝了此次登录",
    )
    .await;
    assert!(text.contains("HTTP 403 — invalid client secret"), "{text}");
    assert!(identities(&s).await.is_empty() && identities(&s2).await.is_empty());
    assert_needs_a_secret(&config(&twitch_yaml(&t, "\"\""))).await;
}

#[tokio::test]
async fn twitch_emulator_answers_scope_as_an_array_and_validates_tokens() {
    let t = TwitchEmulator::start().await;
    let back = "http://127.0.0.1:9/cb";
    t.register_redirect_uri(back);
    let c = TestServer::client();
    let auth = |client: &str, redirect: &str| {
        format!(
            "{}/authorize?client_id={client}&redirect_uri={redirect}&response_type=code&scope=openid%20user:read:email&state=s&nonce=n&user=ivan",
            t.issuer()
        )
    };
    for (url, says) in [
        (auth("nobody", back), "invalid client"),
        (
            auth(t.client_id(), "http://evil.example/cb"),
            "redirect_mismatch",
        ),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains(says), "{says}");
    }
    let r = c.get(auth(t.client_id(), back)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let code = param(&location(&r), "code").unwrap();
    let token = |code: String| {
        c.post(format!("{}/token", t.issuer()))
            .form(&[
                ("client_id", t.client_id()),
                ("client_secret", t.client_secret()),
                ("code", code.as_str()),
                ("grant_type", "authorization_code"),
                ("redirect_uri", back),
            ])
            .send()
    };
    let answer: Value = token(code.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(answer["scope"], json!(["openid", "user:read:email"]));
    assert!(answer["id_token"].is_string(), "{answer}");
    let again: Value = token(code).await.unwrap().json().await.unwrap();
    assert_eq!(again["message"], "Invalid authorization code");
    let validate = |auth: String| {
        c.get(format!("{}/validate", t.issuer()))
            .header("authorization", auth)
            .send()
    };
    let access = answer["access_token"].as_str().unwrap();
    let v: Value = validate(format!("OAuth {access}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["client_id"], t.client_id());
    assert_eq!(v["user_id"], t.id_of("ivan"));
    assert_eq!(v["scopes"], json!(["openid", "user:read:email"]));
    let r = validate("OAuth not-a-token".into()).await.unwrap();
    assert_eq!(r.status(), 401);
}
