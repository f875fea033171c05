//! The provider types of the China/Russia catalogue (issue 17), end to end through the browser
//! flow against their emulators in tessera-emulators, with the default mappers `tessera demo`
//! writes: sign-up, sign-in into the same identity, fill-the-gaps without an email, every error
//! shape as a clear message in the page's language; and each emulator refusing what the real
//! service refuses. The browser journey helpers are the VK module's.

use crate::provider_vk::{
    b64, config, fill_the_gap, identities, param, refusal, sign_in, sign_up_and_again, start_error,
};
use serde_json::Value;
use std::time::Duration;
use tessera_testkit::emulators::yandex::YandexEmulator;
use tessera_testkit::journey::{location, press_provider};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

/// `tessera demo`'s Yandex mapper, the one docs/providers/yandex.md shows.
const YANDEX_MAPPER: &str = include_str!("../../demo/yandex.jsonnet");

fn yandex_yaml(y: &YandexEmulator, secret: &str) -> String {
    format!(
        "          - id: yandex\n            provider: yandex\n            label: Yandex ID\n            client_id: \"{}\"\n            client_secret: {secret}\n            auth_url: {}\n            token_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n            scope: [login:info, login:email, login:avatar]\n",
        y.client_id(),
        y.auth_url(),
        y.token_url(),
        y.base_url(),
        b64(YANDEX_MAPPER)
    )
}

async fn yandex_server(y: &YandexEmulator, secret: &str) -> TestServer {
    let s = TestServer::start(Backend::Sqlite, &config(&yandex_yaml(y, secret))).await;
    y.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/yandex",
        s.public
    ));
    s
}

/// A sign-in as `user` that ends on the login page with a message: returns the English
/// message, and checks the Russian and Chinese pages say it in their language with the
/// provider's local name.
async fn refused_in_every_language(s: &TestServer, user: &str, ru: &str, zh: &str) -> String {
    let b = Browser::default();
    let r = sign_in(&b, s, "login", "yandex", user).await;
    let loc = location(&r);
    let en = refusal(&b, s, r).await;
    for (lang, needle) in [("ru", ru), ("zh-CN", zh)] {
        let page = b
            .get(&format!("{loc}&ui_locales={lang}"), false)
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains(needle), "{lang}: {page}");
    }
    en
}

// ---- Yandex ID -----------------------------------------------------------------------------

each_backend!(yandex_sign_up_then_sign_in_into_the_same_identity);
async fn yandex_sign_up_then_sign_in_into_the_same_identity(backend: Backend) {
    let y = YandexEmulator::start().await;
    let s = TestServer::start(backend, &config(&yandex_yaml(&y, y.client_secret()))).await;
    y.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/yandex",
        s.public
    ));
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "yandex", "https://app.example.com/after").await;
    assert!(authorize.starts_with(&y.auth_url()), "{authorize}");
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("login:info login:email login:avatar")
    );
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let page = b.get(&authorize, false).await.text().await.unwrap();
    assert!(
        page.contains("Иван Петров") && page.contains("Мария Смирнова"),
        "{page}"
    );

    let id = sign_up_and_again(
        &s,
        "yandex",
        ("ivan", "ivan.petrov@yandex.ru"),
        "1000034426",
    )
    .await;
    assert_eq!(y.token_requests(), 2);
    // The mapper's input: Kratos's claims, the avatar URL built from the avatar id.
    let full: Value = reqwest::get(format!(
        "{}/admin/identities/{id}?include_credential=oidc",
        s.admin
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        full["credentials"]["oidc"]["identifiers"][0],
        "yandex:1000034426"
    );
    s.stop().await;
}

#[tokio::test]
async fn yandex_without_an_email_the_user_fills_the_gap() {
    let y = YandexEmulator::start().await;
    let s = yandex_server(&y, y.client_secret()).await;
    // Maria's account is phone-only: `/info` has no `default_email`.
    fill_the_gap(&s, "yandex", "1000034427").await;
}

#[tokio::test]
async fn yandex_wrong_client_secret_is_a_clear_localised_message() {
    let y = YandexEmulator::start().await;
    let s = yandex_server(&y, "not-the-secret").await;
    let text = refused_in_every_language(
        &s,
        "ivan",
        "Яндекс ID отклонил вход",
        "Yandex ID 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("Yandex ID refused the sign-in")
            && text.contains("invalid_client")
            && text.contains("Wrong client secret"),
        "{text}"
    );
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn yandex_cancel_at_yandex_is_a_clear_localised_message() {
    let y = YandexEmulator::start().await;
    let s = yandex_server(&y, y.client_secret()).await;
    let text = refused_in_every_language(
        &s,
        "deny",
        "Вход через Яндекс ID отменён",
        "Yandex ID 登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    assert_eq!(y.token_requests(), 0, "no code, no exchange");
}

#[tokio::test]
async fn yandex_token_of_another_app_is_refused() {
    let y = YandexEmulator::start().await;
    let s = yandex_server(&y, y.client_secret()).await;
    // A token `/info` says another app obtained: refused with the "could not use" message.
    y.set_token_client_id(Some("0000000000000000000000000000dead"));
    let text = refused_in_every_language(
        &s,
        "ivan",
        "Яндекс ID прислал ответ",
        "Yandex ID 返回的信息无法使用",
    )
    .await;
    assert!(text.contains("Yandex ID sent an answer"), "{text}");
    assert!(identities(&s).await.is_empty());
    y.set_token_client_id(None);
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "yandex", "john").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(identities(&s).await.len(), 1);
}

#[tokio::test]
async fn yandex_provider_is_a_kratos_type_and_needs_a_secret() {
    // A Kratos configuration naming `yandex` starts (it used to fail as an unknown type)...
    let y = YandexEmulator::start().await;
    let s = yandex_server(&y, y.client_secret()).await;
    let page = Browser::default()
        .get(&format!("{}/self-service/login/browser", s.public), false)
        .await;
    assert_eq!(page.status(), 303);
    // ...and without a client secret it refuses to, naming the key.
    let err = start_error(&config(&yandex_yaml(&y, "\"\""))).await;
    assert!(
        err.contains("providers.0.client_secret") && err.contains("client_secret is required"),
        "{err}"
    );
}

#[tokio::test]
async fn yandex_emulator_refuses_what_yandex_refuses() {
    let y = YandexEmulator::start().await;
    let c = TestServer::client();
    let back = "http://127.0.0.1:9/cb";
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let authorize = |extra: String| {
        let c = c.clone();
        let url = format!(
            "{}?response_type=code&client_id={}&redirect_uri={back}&state=st&user=ivan{extra}",
            y.auth_url(),
            y.client_id()
        );
        async move { c.get(url).send().await.unwrap() }
    };
    let code = |extra: &str| {
        let r = authorize(extra.to_string());
        async move {
            let r = r.await;
            assert_eq!(r.status(), 302);
            let loc = location(&r);
            assert_eq!(param(&loc, "state").as_deref(), Some("st"));
            param(&loc, "code").expect("a code")
        }
    };
    let token = |form: Vec<(&'static str, String)>, basic: Option<(String, String)>| {
        let mut rb = c.post(y.token_url()).form(&form);
        if let Some((id, secret)) = basic {
            rb = rb.basic_auth(id, Some(secret));
        }
        async move {
            let r = rb.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let ours = || Some((y.client_id().to_string(), y.client_secret().to_string()));
    let grant = |code: String| {
        vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code),
        ]
    };

    // Wrong secret (Basic), unknown client (body): invalid_client with HTTP 400.
    let (st, body) = token(
        grant(code("").await),
        Some((y.client_id().into(), "wrong".into())),
    )
    .await;
    assert_eq!(
        (
            st,
            body["error"].as_str(),
            body["error_description"].as_str()
        ),
        (400, Some("invalid_client"), Some("Wrong client secret"))
    );
    let mut f = grant(code("").await);
    f.push(("client_id", "unknown".into()));
    f.push(("client_secret", "x".into()));
    let (st, body) = token(f, None).await;
    assert_eq!(
        (st, body["error_description"].as_str()),
        (400, Some("Client not found"))
    );
    // Another grant type.
    let mut f = grant(code("").await);
    f[0].1 = "password".into();
    let (_, body) = token(f, ours()).await;
    assert_eq!(body["error"], "unsupported_grant_type");

    // A good exchange (credentials in the body work too); the code is then spent.
    let c1 = code("").await;
    let mut f = grant(c1.clone());
    f.push(("client_id", y.client_id().into()));
    f.push(("client_secret", y.client_secret().into()));
    let (st, tok) = token(f, None).await;
    assert_eq!(st, 200, "{tok}");
    assert_eq!(tok["token_type"], "bearer");
    assert!(tok["refresh_token"].is_string());
    let (st, body) = token(grant(c1), ours()).await;
    assert_eq!(
        (
            st,
            body["error"].as_str(),
            body["error_description"].as_str()
        ),
        (400, Some("invalid_grant"), Some("Invalid code"))
    );
    // Expired codes.
    y.set_code_ttl(Duration::ZERO);
    let (_, body) = token(grant(code("").await), ours()).await;
    assert_eq!(body["error_description"], "Code has expired");
    y.set_code_ttl(Duration::from_secs(600));
    // PKCE: without or with a wrong verifier the code is refused.
    let pkce = format!("&code_challenge={challenge}&code_challenge_method=S256");
    let (_, body) = token(grant(code(&pkce).await), ours()).await;
    assert_eq!(body["error_description"], "Invalid code_verifier");
    let mut f = grant(code(&pkce).await);
    f.push(("code_verifier", "x".repeat(43)));
    let (_, body) = token(f, ours()).await;
    assert_eq!(body["error"], "invalid_grant");
    let mut f = grant(code(&pkce).await);
    f.push(("code_verifier", verifier.into()));
    let (st, _) = token(f, ours()).await;
    assert_eq!(st, 200);

    // /info: the `OAuth` scheme (or `oauth_token`), not Bearer; fields follow the rights.
    let access = tok["access_token"].as_str().unwrap();
    let info = format!("{}/info?format=json", y.base_url());
    let get = |auth: Option<String>, url: String| {
        let mut rb = c.get(url);
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        async move { rb.send().await.unwrap() }
    };
    assert_eq!(
        get(Some(format!("Bearer {access}")), info.clone())
            .await
            .status(),
        401
    );
    assert_eq!(
        get(Some("OAuth forged".into()), info.clone())
            .await
            .status(),
        401
    );
    let me: Value = get(Some(format!("OAuth {access}")), info.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], "1000034426");
    assert_eq!(me["client_id"], y.client_id());
    assert_eq!(
        me["default_email"], "ivan.petrov@yandex.ru",
        "the app's rights: {me}"
    );
    assert!(me.get("birthday").is_none(), "not granted: {me}");
    let me: Value = get(None, format!("{info}&oauth_token={access}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["login"], "ivan.petrov");
    y.revoke_tokens();
    assert_eq!(
        get(Some(format!("OAuth {access}")), info).await.status(),
        401
    );

    // /authorize: an unregistered redirect_uri, an unknown app or another response_type is
    // an error page, never a redirect; cancel goes back with access_denied.
    y.register_redirect_uri(back);
    let r = c
        .get(format!(
            "{}?response_type=code&client_id={}&redirect_uri=https://evil.example/cb&user=ivan",
            y.auth_url(),
            y.client_id()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("redirect_uri"));
    let r = c
        .get(format!(
            "{}?response_type=code&client_id=nope&redirect_uri={back}&user=ivan",
            y.auth_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .get(format!(
            "{}?response_type=id_token&client_id={}&redirect_uri={back}&user=ivan",
            y.auth_url(),
            y.client_id()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = authorize("&deny=1".into()).await;
    assert_eq!(
        param(&location(&r), "error").as_deref(),
        Some("access_denied")
    );
}
