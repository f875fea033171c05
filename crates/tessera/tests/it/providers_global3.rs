//! Global provider types of issue 18, part three, end to end through the browser flow against
//! their emulators in tessera-emulators, with the default mapper `tessera demo` writes:
//! Spotify (Kratos's `spotify`: sign-up, sign-in again into the same identity, PKCE, the
//! unverified email, a refused scope, every error as a clear message in the page's language,
//! the emulator refusing what Spotify refuses); Naver (the same journey, fill-the-gaps for a
//! member who keeps the email, token errors with HTTP 200, the wrapped profile and its
//! `resultcode` errors); Kakao (the same journey, an email only when Kakao calls it valid and
//! verified, token errors with Kakao's `error_code`, the emulator's refusals); Bitbucket (the
//! same journey, the braced `uuid`, the primary address only when confirmed, errors).

use serde_json::{Value, json};
use std::time::Duration;
use tessera_testkit::emulators::bitbucket::BitbucketEmulator;
use tessera_testkit::emulators::kakao::KakaoEmulator;
use tessera_testkit::emulators::naver::NaverEmulator;
use tessera_testkit::emulators::spotify::SpotifyEmulator;
use tessera_testkit::journey::{
    assert_needs_a_secret, b64, config, fill_the_gap, identities, location, oidc_identifiers,
    param, press_provider, refused_in_every_language, sign_in, upstream, whoami,
};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

// ---- Spotify -------------------------------------------------------------------------------

/// `tessera demo`'s Spotify mapper, the one docs/providers/spotify.md shows.
const SPOTIFY_MAPPER: &str = include_str!("../../demo/spotify.jsonnet");

fn spotify_yaml(sp: &SpotifyEmulator, secret: &str) -> String {
    format!(
        "          - id: spotify\n            provider: spotify\n            client_id: {}\n            client_secret: {secret}\n            auth_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n",
        sp.client_id(),
        sp.auth_url(),
        sp.base_url(),
        b64(SPOTIFY_MAPPER)
    )
}

async fn spotify_server(backend: Backend, sp: &SpotifyEmulator, secret: &str) -> TestServer {
    let s = TestServer::start(backend, &config(&spotify_yaml(sp, secret))).await;
    sp.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/spotify",
        s.public
    ));
    s
}

each_backend!(spotify_sign_up_then_sign_in_again_into_the_same_identity);
async fn spotify_sign_up_then_sign_in_again_into_the_same_identity(backend: Backend) {
    let sp = SpotifyEmulator::start().await;
    let s = spotify_server(backend, &sp, sp.client_secret()).await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "spotify", "https://app.example.com/after").await;
    assert!(authorize.starts_with(&sp.auth_url()), "{authorize}");
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("user-read-email user-read-private")
    );
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let r = b.get(&upstream(&b, &authorize, "ivan").await, false).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await["identity"].clone();
    // Spotify's email is not verified by Spotify: a trait, never a verified address.
    assert_eq!(me["traits"]["email"], "ivan.petrov@example.ru");
    assert_eq!(me["verifiable_addresses"][0]["verified"], false, "{me}");
    assert_eq!(me["traits"]["name"]["first"], "Иван");
    assert_eq!(me["traits"]["name"]["last"], "Петров");
    assert_eq!(me["metadata_public"]["spotify_id"], sp.id_of("ivan"));
    let id = me["id"].as_str().unwrap().to_string();
    assert_eq!(
        oidc_identifiers(&s, &id).await,
        json!([format!("spotify:{}", sp.id_of("ivan"))])
    );
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "registration", "spotify", "ivan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], id.as_str());
    assert_eq!(identities(&s).await.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn spotify_refused_scope_and_errors_are_clear_localised_messages() {
    let sp = SpotifyEmulator::start().await;
    let s = spotify_server(Backend::Sqlite, &sp, sp.client_secret()).await;
    // The person refuses the email on Spotify's page: Kratos's rule, every scope or nothing.
    sp.set_withheld_scope(Some("user-read-email"));
    let text = refused_in_every_language(
        &s,
        ("spotify", "ivan"),
        "Не удалось завершить вход через Spotify",
        "通过 Spotify 登录未能完成",
    )
    .await;
    assert!(
        text.contains("did not grant the permission `user-read-email`"),
        "{text}"
    );
    sp.set_withheld_scope(None);
    sp.set_code_ttl(Duration::ZERO);
    let text = refused_in_every_language(
        &s,
        ("spotify", "ivan"),
        "Вход через Spotify отклонён",
        "Spotify 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("invalid_grant — Authorization code expired"),
        "{text}"
    );
    sp.set_code_ttl(Duration::from_secs(600));
    let text = refused_in_every_language(
        &s,
        ("spotify", "deny"),
        "Вход через Spotify отменён",
        "Spotify 登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    let s2 = spotify_server(Backend::Sqlite, &sp, "not-the-secret").await;
    let text = refused_in_every_language(
        &s2,
        ("spotify", "ivan"),
        "Вход через Spotify отклонён",
        "Spotify 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("invalid_client — Invalid client secret"),
        "{text}"
    );
    assert!(identities(&s).await.is_empty() && identities(&s2).await.is_empty());
    assert_needs_a_secret(&config(&spotify_yaml(&sp, "\"\""))).await;
}

#[tokio::test]
async fn spotify_emulator_refuses_what_spotify_refuses() {
    let sp = SpotifyEmulator::start().await;
    let back = "http://127.0.0.1:9/cb";
    sp.register_redirect_uri(back);
    let c = TestServer::client();
    let auth = |client: &str, redirect: &str| {
        format!(
            "{}?client_id={client}&response_type=code&redirect_uri={redirect}&scope=user-read-email&state=s&user=ivan&code_challenge_method=S256&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            sp.auth_url()
        )
    };
    for (url, says) in [
        (auth("nobody", back), "INVALID_CLIENT: Invalid client"),
        (
            auth(sp.client_id(), "http://evil.example/cb"),
            "INVALID_CLIENT: Invalid redirect URI",
        ),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains(says), "{says}");
    }
    let code = || async {
        let r = c.get(auth(sp.client_id(), back)).send().await.unwrap();
        assert_eq!(r.status(), 302);
        param(&location(&r), "code").unwrap()
    };
    let token = |code: String, secret: &str, verifier: &str| {
        c.post(format!("{}/api/token", sp.base_url()))
            .basic_auth(sp.client_id(), Some(secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", back),
                ("code_verifier", verifier),
            ])
            .send()
    };
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let r = token(code().await, "wrong", verifier).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "invalid_client", "error_description": "Invalid client secret"})
    );
    let r = token(code().await, sp.client_secret(), "another-verifier")
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_description"],
        "code_verifier was incorrect"
    );
    let fresh = code().await;
    let r = token(fresh.clone(), sp.client_secret(), verifier)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["scope"], "user-read-email");
    let r = token(fresh, sp.client_secret(), verifier).await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_description"],
        "Invalid authorization code",
        "a code is spent once"
    );
    let me = |token: &str| {
        c.get(format!("{}/v1/me", sp.base_url()))
            .bearer_auth(token)
            .send()
    };
    let r = me(t["access_token"].as_str().unwrap()).await.unwrap();
    let u: Value = r.json().await.unwrap();
    assert_eq!(u["id"], sp.id_of("ivan"));
    assert!(u.get("country").is_none(), "no user-read-private");
    let r = me("forged").await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": {"status": 401, "message": "Invalid access token"}})
    );
}

// ---- Naver ---------------------------------------------------------------------------------

/// `tessera demo`'s Naver mapper, the one docs/providers/naver.md shows.
const NAVER_MAPPER: &str = include_str!("../../demo/naver.jsonnet");

fn naver_yaml(nv: &NaverEmulator, secret: &str) -> String {
    format!(
        "          - id: naver\n            provider: naver\n            client_id: {}\n            client_secret: {secret}\n            auth_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n",
        nv.client_id(),
        nv.auth_url(),
        nv.base_url(),
        b64(NAVER_MAPPER)
    )
}

async fn naver_server(backend: Backend, nv: &NaverEmulator, secret: &str) -> TestServer {
    let s = TestServer::start(backend, &config(&naver_yaml(nv, secret))).await;
    nv.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/naver",
        s.public
    ));
    s
}

each_backend!(naver_sign_up_then_sign_in_again_into_the_same_identity);
async fn naver_sign_up_then_sign_in_again_into_the_same_identity(backend: Backend) {
    let nv = NaverEmulator::start().await;
    let s = naver_server(backend, &nv, nv.client_secret()).await;
    let b = Browser::default();
    let authorize = press_provider(&b, &s, "login", "naver", "https://app.example.com/after").await;
    assert!(authorize.starts_with(&nv.auth_url()), "{authorize}");
    assert_eq!(param(&authorize, "response_type").as_deref(), Some("code"));
    assert!(param(&authorize, "scope").is_none(), "Naver has no scopes");
    let r = b.get(&upstream(&b, &authorize, "ivan").await, false).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await["identity"].clone();
    assert_eq!(me["traits"]["email"], "ivan.petrov@naver.com");
    assert_eq!(me["traits"]["name"]["first"], "Иван");
    assert_eq!(me["metadata_public"]["naver_nickname"], "ivan_p");
    let id = me["id"].as_str().unwrap().to_string();
    assert_eq!(
        oidc_identifiers(&s, &id).await,
        json!([format!("naver:{}", nv.id_of("ivan"))])
    );
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "registration", "naver", "ivan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], id.as_str());
    s.stop().await;
}

#[tokio::test]
async fn naver_member_who_keeps_the_email_fills_the_gap() {
    let nv = NaverEmulator::start().await;
    let s = naver_server(Backend::Sqlite, &nv, nv.client_secret()).await;
    // Мария did not agree to share her email: the registration page asks for it.
    fill_the_gap(&s, "naver", nv.id_of("maria")).await;
}

#[tokio::test]
async fn naver_errors_with_http_200_are_clear_localised_messages() {
    let nv = NaverEmulator::start().await;
    let s = naver_server(Backend::Sqlite, &nv, "not-the-secret").await;
    let text = refused_in_every_language(
        &s,
        ("naver", "ivan"),
        "Вход через Naver отклонён",
        "Naver 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("invalid_request — client_secret or client_id is invalid"),
        "{text}"
    );
    let s = naver_server(Backend::Sqlite, &nv, nv.client_secret()).await;
    nv.set_code_ttl(Duration::ZERO);
    let text = refused_in_every_language(
        &s,
        ("naver", "ivan"),
        "Вход через Naver отклонён",
        "Naver 拒绝了此次登录",
    )
    .await;
    assert!(text.contains("no valid data in session"), "{text}");
    nv.set_code_ttl(Duration::from_secs(600));
    let text = refused_in_every_language(
        &s,
        ("naver", "deny"),
        "Вход через Naver отменён",
        "Naver 登录已取消",
    )
    .await;
    assert!(
        text.contains("cancelled or denied (Canceled By User)"),
        "{text}"
    );
    assert!(identities(&s).await.is_empty());
    assert_needs_a_secret(&config(&naver_yaml(&nv, "\"\""))).await;
}

#[tokio::test]
async fn naver_emulator_refuses_what_naver_refuses() {
    let nv = NaverEmulator::start().await;
    let back = "http://127.0.0.1:9/cb";
    nv.register_redirect_uri(back);
    let c = TestServer::client();
    let auth = |client: &str, redirect: &str| {
        format!(
            "{}?response_type=code&client_id={client}&redirect_uri={redirect}&state=st&user=ivan",
            nv.auth_url()
        )
    };
    for (url, says) in [
        (auth("nobody", back), "invalid client_id"),
        (
            auth(nv.client_id(), "http://evil.example/cb"),
            "invalid redirect_uri",
        ),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "Naver shows its own error page");
        assert!(r.text().await.unwrap().contains(says), "{says}");
    }
    let code = || async {
        let r = c.get(auth(nv.client_id(), back)).send().await.unwrap();
        assert_eq!(r.status(), 302);
        param(&location(&r), "code").unwrap()
    };
    let token = |code: String, secret: &str, state: &str| {
        c.get(format!("{}/oauth2.0/token", nv.base_url()))
            .query(&[
                ("grant_type", "authorization_code"),
                ("client_id", nv.client_id()),
                ("client_secret", secret),
                ("code", code.as_str()),
                ("state", state),
            ])
            .send()
    };
    let r = token(code().await, nv.client_secret(), "other")
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "errors come with HTTP 200");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "invalid_request", "error_description": "invalid state"})
    );
    let fresh = code().await;
    let t: Value = token(fresh.clone(), nv.client_secret(), "st")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["expires_in"], "3600", "a string");
    let again: Value = token(fresh, nv.client_secret(), "st")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["error_description"], "no valid data in session");
    let me = |token: &str| {
        c.get(format!("{}/v1/nid/me", nv.base_url()))
            .bearer_auth(token)
            .send()
    };
    let v: Value = me(t["access_token"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["resultcode"], "00");
    assert_eq!(v["response"]["id"], nv.id_of("ivan"));
    let r = me("forged").await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["resultcode"], "024");
}

// ---- Kakao ---------------------------------------------------------------------------------

/// `tessera demo`'s Kakao mapper, the one docs/providers/kakao.md shows.
const KAKAO_MAPPER: &str = include_str!("../../demo/kakao.jsonnet");

fn kakao_yaml(kk: &KakaoEmulator, secret: &str, extra: &str) -> String {
    format!(
        "          - id: kakao\n            provider: kakao\n            client_id: {}\n            client_secret: {secret}\n            auth_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n{extra}",
        kk.client_id(),
        kk.auth_url(),
        kk.base_url(),
        b64(KAKAO_MAPPER)
    )
}

async fn kakao_server(
    backend: Backend,
    kk: &KakaoEmulator,
    secret: &str,
    extra: &str,
) -> TestServer {
    let s = TestServer::start(backend, &config(&kakao_yaml(kk, secret, extra))).await;
    kk.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/kakao",
        s.public
    ));
    s
}

each_backend!(kakao_sign_up_then_sign_in_again_into_the_same_identity);
async fn kakao_sign_up_then_sign_in_again_into_the_same_identity(backend: Backend) {
    let kk = KakaoEmulator::start().await;
    let s = kakao_server(backend, &kk, kk.client_secret(), "").await;
    let b = Browser::default();
    let authorize = press_provider(&b, &s, "login", "kakao", "https://app.example.com/after").await;
    assert!(authorize.starts_with(&kk.auth_url()), "{authorize}");
    assert!(
        param(&authorize, "scope").is_none(),
        "consent items come from the console"
    );
    let r = b.get(&upstream(&b, &authorize, "ivan").await, false).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await["identity"].clone();
    assert_eq!(me["traits"]["email"], "ivan.petrov@kakao.com");
    assert_eq!(me["traits"]["name"]["last"], "Петров");
    assert_eq!(
        me["metadata_public"]["kakao_id"],
        kk.id_of("ivan").to_string()
    );
    let id = me["id"].as_str().unwrap().to_string();
    assert_eq!(
        oidc_identifiers(&s, &id).await,
        json!([format!("kakao:{}", kk.id_of("ivan"))])
    );
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "registration", "kakao", "ivan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], id.as_str());
    s.stop().await;
}

#[tokio::test]
async fn kakao_unverified_email_is_not_taken_and_scopes_are_comma_separated() {
    let kk = KakaoEmulator::start().await;
    let s = kakao_server(
        Backend::Sqlite,
        &kk,
        kk.client_secret(),
        "            scope: [account_email, phone_number]\n",
    )
    .await;
    let b = Browser::default();
    let authorize = press_provider(&b, &s, "login", "kakao", "https://app.example.com/after").await;
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("account_email,phone_number")
    );
    // Мария's address is not verified at Kakao: the page asks for one.
    fill_the_gap(&s, "kakao", &kk.id_of("maria").to_string()).await;
}

#[tokio::test]
async fn kakao_errors_are_clear_localised_messages() {
    let kk = KakaoEmulator::start().await;
    let s = kakao_server(Backend::Sqlite, &kk, "not-the-secret", "").await;
    let text = refused_in_every_language(
        &s,
        ("kakao", "ivan"),
        "Вход через Kakao отклонён",
        "Kakao 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("invalid_client — Bad client credentials"),
        "{text}"
    );
    let s = kakao_server(Backend::Sqlite, &kk, kk.client_secret(), "").await;
    kk.set_code_ttl(Duration::ZERO);
    let text = refused_in_every_language(
        &s,
        ("kakao", "ivan"),
        "Вход через Kakao отклонён",
        "Kakao 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("invalid_grant — authorization code not found"),
        "{text}"
    );
    kk.set_code_ttl(Duration::from_secs(600));
    let text = refused_in_every_language(
        &s,
        ("kakao", "deny"),
        "Вход через Kakao отменён",
        "Kakao 登录已取消",
    )
    .await;
    assert!(
        text.contains("cancelled or denied (User denied access)"),
        "{text}"
    );
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn kakao_emulator_refuses_what_kakao_refuses() {
    let kk = KakaoEmulator::start().await;
    let back = "http://127.0.0.1:9/cb";
    kk.register_redirect_uri(back);
    let c = TestServer::client();
    let auth = |client: &str, redirect: &str| {
        format!(
            "{}?client_id={client}&redirect_uri={redirect}&response_type=code&state=st&user=ivan",
            kk.auth_url()
        )
    };
    for (url, says) in [
        (auth("nobody", back), "KOE101"),
        (auth(kk.client_id(), "http://evil.example/cb"), "KOE006"),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains(says), "{says}");
    }
    let code = || async {
        let r = c.get(auth(kk.client_id(), back)).send().await.unwrap();
        assert_eq!(r.status(), 302);
        param(&location(&r), "code").unwrap()
    };
    let token = |code: String, secret: &str, redirect: &str| {
        c.post(format!("{}/oauth/token", kk.base_url()))
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", kk.client_id()),
                ("client_secret", secret),
                ("redirect_uri", redirect),
                ("code", code.as_str()),
            ])
            .send()
    };
    let r = token(code().await, "wrong", back).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error_code"], "KOE010");
    let r = token(code().await, kk.client_secret(), "http://127.0.0.1:9/other")
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error_code"], "KOE303");
    let fresh = code().await;
    let t: Value = token(fresh.clone(), kk.client_secret(), back)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = token(fresh, kk.client_secret(), back).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_code"],
        "KOE320",
        "spent once"
    );
    let me = |token: &str| {
        c.get(format!("{}/v2/user/me", kk.base_url()))
            .bearer_auth(token)
            .send()
    };
    let u: Value = me(t["access_token"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(u["id"], kk.id_of("ivan"));
    assert_eq!(u["kakao_account"]["is_email_verified"], true);
    let r = me("forged").await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], -401);
}

// ---- Bitbucket -----------------------------------------------------------------------------

/// `tessera demo`'s Bitbucket mapper, the one docs/providers/bitbucket.md shows.
const BITBUCKET_MAPPER: &str = include_str!("../../demo/bitbucket.jsonnet");

fn bitbucket_yaml(bb: &BitbucketEmulator, secret: &str) -> String {
    format!(
        "          - id: bitbucket\n            provider: bitbucket\n            client_id: {}\n            client_secret: {secret}\n            auth_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n",
        bb.client_id(),
        bb.auth_url(),
        bb.base_url(),
        b64(BITBUCKET_MAPPER)
    )
}

async fn bitbucket_server(backend: Backend, bb: &BitbucketEmulator, secret: &str) -> TestServer {
    let s = TestServer::start(backend, &config(&bitbucket_yaml(bb, secret))).await;
    bb.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/bitbucket",
        s.public
    ));
    s
}

each_backend!(bitbucket_sign_up_then_sign_in_again_into_the_same_identity);
async fn bitbucket_sign_up_then_sign_in_again_into_the_same_identity(backend: Backend) {
    let bb = BitbucketEmulator::start().await;
    let s = bitbucket_server(backend, &bb, bb.client_secret()).await;
    let b = Browser::default();
    let authorize = press_provider(
        &b,
        &s,
        "login",
        "bitbucket",
        "https://app.example.com/after",
    )
    .await;
    assert!(authorize.starts_with(&bb.auth_url()), "{authorize}");
    let r = b.get(&upstream(&b, &authorize, "ivan").await, false).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await["identity"].clone();
    assert_eq!(
        me["traits"]["email"], "ivan.petrov@example.ru",
        "the primary address"
    );
    assert_eq!(me["traits"]["name"]["last"], "Петров");
    assert_eq!(me["metadata_public"]["bitbucket_nickname"], "ivan_p");
    let id = me["id"].as_str().unwrap().to_string();
    // The uuid without its braces.
    assert_eq!(
        oidc_identifiers(&s, &id).await,
        json!([format!("bitbucket:{}", bb.uuid_of("ivan"))])
    );
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "registration", "bitbucket", "ivan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], id.as_str());
    s.stop().await;
}

#[tokio::test]
async fn bitbucket_unconfirmed_address_is_not_taken_and_errors_are_localised() {
    let bb = BitbucketEmulator::start().await;
    let s = bitbucket_server(Backend::Sqlite, &bb, bb.client_secret()).await;
    // Мария's primary address is not confirmed: the page asks for one.
    fill_the_gap(&s, "bitbucket", bb.uuid_of("maria")).await;
    bb.set_code_ttl(Duration::ZERO);
    let text = refused_in_every_language(
        &s,
        ("bitbucket", "ivan"),
        "Вход через Bitbucket отклонён",
        "Bitbucket 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("invalid_grant — The specified code is not valid."),
        "{text}"
    );
    bb.set_code_ttl(Duration::from_secs(600));
    let text = refused_in_every_language(
        &s,
        ("bitbucket", "deny"),
        "Вход через Bitbucket отменён",
        "Bitbucket 登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    let s2 = bitbucket_server(Backend::Sqlite, &bb, "not-the-secret").await;
    let text = refused_in_every_language(
        &s2,
        ("bitbucket", "ivan"),
        "Вход через Bitbucket отклонён",
        "Bitbucket 拒绝了此次登录",
    )
    .await;
    assert!(text.contains("invalid_client"), "{text}");
    assert!(identities(&s2).await.is_empty());
    assert_needs_a_secret(&config(&bitbucket_yaml(&bb, "\"\""))).await;
}

#[tokio::test]
async fn bitbucket_emulator_refuses_what_bitbucket_refuses() {
    let bb = BitbucketEmulator::start().await;
    let back = "http://127.0.0.1:9/cb";
    bb.register_redirect_uri(back);
    let c = TestServer::client();
    let auth = |client: &str, redirect: &str| {
        format!(
            "{}?client_id={client}&response_type=code&redirect_uri={redirect}&state=st&user=ivan",
            bb.auth_url()
        )
    };
    for url in [
        auth("nobody", back),
        auth(bb.client_id(), "http://evil.example/cb"),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 400, "{url}");
    }
    let code = || async {
        let r = c.get(auth(bb.client_id(), back)).send().await.unwrap();
        assert_eq!(r.status(), 302);
        param(&location(&r), "code").unwrap()
    };
    let token = |code: String, secret: &str| {
        c.post(format!("{}/site/oauth2/access_token", bb.base_url()))
            .basic_auth(bb.client_id(), Some(secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", back),
            ])
            .send()
    };
    let r = token(code().await, "wrong").await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let fresh = code().await;
    let t: Value = token(fresh.clone(), bb.client_secret())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["scopes"], "account email");
    let again: Value = token(fresh, bb.client_secret())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        again["error_description"],
        "The specified code is not valid."
    );
    let u: Value = c
        .get(format!("{}/2.0/user", bb.base_url()))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(u["uuid"], format!("{{{}}}", bb.uuid_of("ivan")));
    let r = c
        .get(format!("{}/2.0/user/emails", bb.base_url()))
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["type"], "error");
}
