//! The provider types of the China/Russia catalogue (issue 17), end to end through the browser
//! flow against their emulators in tessera-emulators, with the default mappers `tessera demo`
//! writes: sign-up, sign-in into the same identity, fill-the-gaps without an email, every error
//! shape as a clear message in the page's language; and each emulator refusing what the real
//! service refuses. The browser journey helpers are tessera_testkit::journey's.

use serde_json::{Value, json};
use std::time::Duration;
use tessera_testkit::emulators::feishu::FeishuEmulator;
use tessera_testkit::emulators::mailru::MailruEmulator;
use tessera_testkit::emulators::qq::QqEmulator;
use tessera_testkit::emulators::wechat::WechatEmulator;
use tessera_testkit::emulators::yandex::YandexEmulator;
use tessera_testkit::journey::{
    assert_needs_a_secret, b64, config, fill_the_gap, flow_id_of, flow_json, identities, location,
    oidc_identifiers, param, press_provider, refusal, refused_in_every_language, sign_in,
    sign_up_and_again, sign_up_giving_an_email, start_error, submit, whoami,
};
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
        ("yandex", "ivan"),
        "Вход через Яндекс ID отклонён",
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
        ("yandex", "deny"),
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
        ("yandex", "ivan"),
        "Ответ сервиса Яндекс ID",
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
    assert_needs_a_secret(&config(&yandex_yaml(&y, "\"\""))).await;
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

// ---- WeChat --------------------------------------------------------------------------------

/// `tessera demo`'s WeChat mapper, the one docs/providers/wechat.md shows.
const WECHAT_MAPPER: &str = include_str!("../../demo/wechat.jsonnet");

/// A `wechat` entry; `extra` adds keys (`scope`, `subject_source`, `auth_url`).
fn wechat_yaml(w: &WechatEmulator, secret: &str, extra: &[(&str, &str)]) -> String {
    let mut keys: Vec<(&str, String)> = vec![
        ("auth_url", w.qr_auth_url()),
        ("api_base_url", w.base_url().to_string()),
    ];
    for (k, v) in extra {
        keys.retain(|(key, _)| key != k);
        keys.push((k, v.to_string()));
    }
    let mut yaml = format!(
        "          - id: wechat\n            provider: wechat\n            label: WeChat\n            client_id: {}\n            client_secret: {secret}\n            mapper_url: base64://{}\n",
        w.client_id(),
        b64(WECHAT_MAPPER)
    );
    for (k, v) in keys {
        yaml.push_str(&format!("            {k}: {v}\n"));
    }
    yaml
}

async fn wechat_server(backend: Backend, w: &WechatEmulator, extra: &[(&str, &str)]) -> TestServer {
    let s = TestServer::start(backend, &config(&wechat_yaml(w, w.client_secret(), extra))).await;
    w.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/wechat",
        s.public
    ));
    s
}

each_backend!(wechat_sign_up_fills_the_email_then_signs_in_again);
async fn wechat_sign_up_fills_the_email_then_signs_in_again(backend: Backend) {
    let w = WechatEmulator::start().await;
    let s = wechat_server(backend, &w, &[]).await;
    // The QR login URL as WeChat documents it: appid, snsapi_login, #wechat_redirect.
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "wechat", "https://app.example.com/after").await;
    let u = url::Url::parse(&authorize).unwrap();
    assert_eq!(u.path(), "/connect/qrconnect");
    assert_eq!(u.fragment(), Some("wechat_redirect"));
    assert_eq!(param(&authorize, "appid").as_deref(), Some(w.client_id()));
    assert_eq!(param(&authorize, "scope").as_deref(), Some("snsapi_login"));
    assert!(param(&authorize, "client_id").is_none());
    let page = b.get(&authorize, false).await.text().await.unwrap();
    assert!(page.contains("张伟") && page.contains("李娜"), "{page}");

    let (me, ids) =
        sign_up_giving_an_email(&s, ("wechat", "zhangwei"), "zhangwei@example.cn").await;
    assert_eq!(me["traits"]["name"]["first"], "张伟");
    // The subject is the unionid; the mapper keeps both ids.
    assert_eq!(ids, json!(["wechat:oU5Yyt2xk7Zc9M0eWfG1bQ3hZhWe"]));
    assert_eq!(
        me["metadata_public"]["wechat_unionid"],
        "oU5Yyt2xk7Zc9M0eWfG1bQ3hZhWe"
    );
    assert_eq!(
        me["metadata_public"]["wechat_openid"],
        w.openid_of("zhangwei").as_str()
    );
    // Again, from another browser: straight into the same identity.
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "login", "wechat", "zhangwei").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], me["id"]);
    assert_eq!(identities(&s).await.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn wechat_subject_is_the_openid_when_asked_or_without_a_unionid() {
    // `subject_source: openid`: the per-app id even though WeChat sends a unionid.
    let w = WechatEmulator::start().await;
    let s = wechat_server(Backend::Sqlite, &w, &[("subject_source", "openid")]).await;
    let (_, ids) = sign_up_giving_an_email(&s, ("wechat", "lina"), "lina@example.cn").await;
    assert_eq!(ids, json!([format!("wechat:{}", w.openid_of("lina"))]));

    // An app not bound to an Open Platform account: no unionid, so the openid.
    let w = WechatEmulator::start().await;
    w.set_bound_to_open_platform(false);
    let s = wechat_server(Backend::Sqlite, &w, &[]).await;
    let (me, ids) = sign_up_giving_an_email(&s, ("wechat", "lina"), "lina@example.cn").await;
    assert_eq!(ids, json!([format!("wechat:{}", w.openid_of("lina"))]));
    assert!(
        me["metadata_public"].get("wechat_unionid").is_none(),
        "{me}"
    );

    // `subject_source: unionid` without one: refused, nothing made.
    let s = wechat_server(Backend::Sqlite, &w, &[("subject_source", "unionid")]).await;
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "wechat", "lina").await;
    let text = refusal(&b, &s, r).await;
    assert!(text.contains("WeChat sent an answer"), "{text}");
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn wechat_in_wechat_browser_variant_uses_snsapi_userinfo() {
    // An Official Account of the same Open Platform account: another appid, another openid,
    // the same unionid.
    let w = WechatEmulator::start_app("wx2b7d9e4f6a1c3e58").await;
    let auth = w.in_wechat_auth_url();
    let s = wechat_server(
        Backend::Sqlite,
        &w,
        &[("scope", "[snsapi_userinfo]"), ("auth_url", &auth)],
    )
    .await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "wechat", "https://app.example.com/after").await;
    assert_eq!(
        url::Url::parse(&authorize).unwrap().path(),
        "/connect/oauth2/authorize"
    );
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("snsapi_userinfo")
    );
    let (_, ids) = sign_up_giving_an_email(&s, ("wechat", "zhangwei"), "zhangwei@example.cn").await;
    assert_eq!(ids, json!(["wechat:oU5Yyt2xk7Zc9M0eWfG1bQ3hZhWe"]));
    assert_ne!(
        w.openid_of("zhangwei"),
        WechatEmulator::start().await.openid_of("zhangwei"),
        "openids are per app"
    );
}

#[tokio::test]
async fn wechat_http_200_errors_are_clear_localised_messages() {
    // A wrong AppSecret: errcode 40125 at the token call.
    let w = WechatEmulator::start().await;
    let s = TestServer::start(
        Backend::Sqlite,
        &config(&wechat_yaml(&w, "not-the-secret", &[])),
    )
    .await;
    let text = refused_in_every_language(
        &s,
        ("wechat", "zhangwei"),
        "Вход через WeChat отклонён",
        "微信拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("WeChat refused the sign-in")
            && text.contains("WeChat error 40125")
            && text.contains("invalid appsecret"),
        "{text}"
    );
    // An expired token at sns/userinfo: errcode 42001.
    let s = wechat_server(Backend::Sqlite, &w, &[]).await;
    w.expire_tokens(true);
    let text = refused_in_every_language(
        &s,
        ("wechat", "zhangwei"),
        "Вход через WeChat отклонён",
        "微信拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("WeChat error 42001") && text.contains("access_token expired"),
        "{text}"
    );
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn wechat_configuration_is_checked_at_start() {
    let w = WechatEmulator::start().await;
    for (extra, key) in [
        (("scope", "[snsapi_base]"), "providers.0.scope"),
        (("subject_source", "email"), "providers.0.subject_source"),
    ] {
        let err = start_error(&config(&wechat_yaml(&w, w.client_secret(), &[extra]))).await;
        assert!(err.contains(key), "{err}");
    }
    assert_needs_a_secret(&config(&wechat_yaml(&w, "\"\"", &[]))).await;
}

#[tokio::test]
async fn wechat_emulator_refuses_what_wechat_refuses() {
    let w = WechatEmulator::start().await;
    let c = TestServer::client();
    let back = "http://127.0.0.1:9/cb";
    let get = |url: String| {
        let c = c.clone();
        async move { c.get(url).send().await.unwrap() }
    };
    let authorize = |path: String, scope: &str, extra: &str| {
        format!(
            "{path}?appid={}&redirect_uri={back}&response_type=code&scope={scope}&state=st{extra}",
            w.client_id()
        )
    };
    let code = |scope: &'static str| {
        let url = if scope == "snsapi_login" {
            authorize(w.qr_auth_url(), scope, "&user=zhangwei")
        } else {
            authorize(w.in_wechat_auth_url(), scope, "&user=zhangwei")
        };
        async move {
            let r = get(url).await;
            assert_eq!(r.status(), 302);
            let loc = location(&r);
            assert_eq!(param(&loc, "state").as_deref(), Some("st"));
            param(&loc, "code").expect("a code")
        }
    };
    let token = |code: String, appid: &str, secret: &str| {
        let url = format!(
            "{}/sns/oauth2/access_token?appid={appid}&secret={secret}&code={code}&grant_type=authorization_code",
            w.base_url()
        );
        async move {
            let r = get(url).await;
            assert_eq!(r.status(), 200, "errors come with HTTP 200");
            r.json::<Value>().await.unwrap()
        }
    };
    let (id, secret) = (w.client_id().to_string(), w.client_secret().to_string());

    assert_eq!(
        token(code("snsapi_login").await, "wx0", &secret).await["errcode"],
        40013
    );
    assert_eq!(
        token(code("snsapi_login").await, &id, "x").await["errcode"],
        40125
    );
    assert_eq!(token("nope".into(), &id, &secret).await["errcode"], 40029);
    let c1 = code("snsapi_login").await;
    let t = token(c1.clone(), &id, &secret).await;
    assert_eq!(t["openid"], w.openid_of("zhangwei").as_str(), "{t}");
    assert_eq!(t["unionid"], "oU5Yyt2xk7Zc9M0eWfG1bQ3hZhWe");
    assert_eq!(t["expires_in"], 7200);
    let again = token(c1, &id, &secret).await;
    assert_eq!(again["errcode"], 40163);
    assert!(
        again["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("code been used, rid: "),
        "{again}"
    );
    w.set_code_ttl(Duration::ZERO);
    assert_eq!(
        token(code("snsapi_login").await, &id, &secret).await["errcode"],
        42003
    );
    w.set_code_ttl(Duration::from_secs(600));

    // sns/userinfo: the token in the query with its openid; no email or phone.
    let access = t["access_token"].as_str().unwrap();
    let info = |token: &str, openid: &str| {
        get(format!(
            "{}/sns/userinfo?access_token={token}&openid={openid}&lang=zh_CN",
            w.base_url()
        ))
    };
    let me: Value = info(access, t["openid"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["nickname"], "张伟");
    assert!(
        me.get("email").is_none() && me.get("errcode").is_none(),
        "{me}"
    );
    let other: Value = info(access, "o-someone-else").await.json().await.unwrap();
    assert_eq!(other["errcode"], 40003);
    let forged: Value = info("forged", "x").await.json().await.unwrap();
    assert_eq!(forged["errcode"], 40001);
    // A snsapi_base token cannot read the profile.
    let base = token(code("snsapi_base").await, &id, &secret).await;
    let r: Value = info(
        base["access_token"].as_str().unwrap(),
        base["openid"].as_str().unwrap(),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["errcode"], 48001);

    // Authorize: error pages, never a redirect.
    w.register_redirect_uri(back);
    for url in [
        authorize(w.qr_auth_url(), "snsapi_login", "&user=zhangwei")
            .replace(back, "https://evil.example/cb"),
        authorize(w.qr_auth_url(), "snsapi_userinfo", "&user=zhangwei"),
        authorize(w.in_wechat_auth_url(), "snsapi_login", "&user=zhangwei"),
        authorize(w.qr_auth_url(), "snsapi_login", "&user=zhangwei").replace(&id, "wx0"),
        authorize(w.qr_auth_url(), "snsapi_login", "&user=zhangwei&deny=1"),
    ] {
        let r = get(url.clone()).await;
        assert_eq!(r.status(), 200, "{url}");
        assert!(r.headers().get("location").is_none(), "{url}");
    }
    // The registered domain covers any path on it.
    let r = get(authorize(w.qr_auth_url(), "snsapi_login", "&user=lina").replace("/cb", "/other"))
        .await;
    assert_eq!(r.status(), 302);
}

// ---- Feishu / Lark -------------------------------------------------------------------------

/// `tessera demo`'s Feishu mapper, the one docs/providers/feishu.md shows.
const FEISHU_MAPPER: &str = include_str!("../../demo/feishu.jsonnet");

/// A `feishu` (or `lark`) entry with id `feishu`; `extra` lines are added as they are.
fn feishu_yaml(f: &FeishuEmulator, kind: &str, secret: &str, extra: &str) -> String {
    format!(
        "          - id: feishu\n            provider: {kind}\n            label: Feishu\n            client_id: {}\n            client_secret: {secret}\n            auth_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n{extra}",
        f.client_id(),
        f.auth_url(),
        f.base_url(),
        b64(FEISHU_MAPPER)
    )
}

async fn feishu_server(
    backend: Backend,
    f: &FeishuEmulator,
    kind: &str,
    extra: &str,
) -> TestServer {
    let s = TestServer::start(
        backend,
        &config(&feishu_yaml(f, kind, f.client_secret(), extra)),
    )
    .await;
    f.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/feishu",
        s.public
    ));
    s
}

each_backend!(feishu_sign_up_then_sign_in_into_the_same_identity);
async fn feishu_sign_up_then_sign_in_into_the_same_identity(backend: Backend) {
    let f = FeishuEmulator::start().await;
    let s = feishu_server(backend, &f, "feishu", "").await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "feishu", "https://app.example.com/after").await;
    assert!(authorize.starts_with(&f.auth_url()), "{authorize}");
    assert_eq!(
        param(&authorize, "client_id").as_deref(),
        Some(f.client_id())
    );
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let page = b.get(&authorize, false).await.text().await.unwrap();
    assert!(page.contains("张伟") && page.contains("李娜"), "{page}");

    let r = sign_in(&b, &s, "login", "feishu", "zhangwei").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await["identity"].clone();
    assert_eq!(me["traits"]["email"], "zhangwei@corp.example.cn");
    assert_eq!(me["traits"]["name"]["first"], "张伟");
    assert_eq!(
        me["metadata_public"]["feishu_tenant_key"],
        "2ed263bf32cf1651"
    );
    let id = me["id"].as_str().unwrap();
    // The subject is the per-app open_id, as in Kratos's `lark`.
    assert_eq!(
        oidc_identifiers(&s, id).await,
        json!([format!("feishu:{}", f.open_id_of("zhangwei"))])
    );
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "registration", "feishu", "zhangwei").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], id);
    assert_eq!(identities(&s).await.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn lark_is_kratos_name_for_the_same_provider_with_union_id_on_request() {
    let f = FeishuEmulator::start().await;
    let s = feishu_server(
        Backend::Sqlite,
        &f,
        "lark",
        "            subject_source: union_id\n",
    )
    .await;
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "feishu", "alex").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let id = whoami(&b, &s).await["identity"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        oidc_identifiers(&s, &id).await,
        json!(["feishu:on_5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"])
    );
}

#[tokio::test]
async fn feishu_without_an_email_the_user_fills_the_gap() {
    let f = FeishuEmulator::start().await;
    let s = feishu_server(Backend::Sqlite, &f, "feishu", "").await;
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "feishu", "lina").await;
    let loc = location(&r);
    assert!(
        loc.starts_with(&format!("{}/ui/registration?flow=", s.public)),
        "{loc}"
    );
    let flow = flow_json(&b, &s, "registration", &flow_id_of(&loc)).await;
    let r = submit(
        &b,
        &flow,
        &[("provider", "feishu"), ("traits.email", "lina@example.cn")],
        false,
    )
    .await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await["identity"].clone();
    assert_eq!(me["traits"]["name"]["first"], "李娜");
    let again = Browser::default();
    let r = sign_in(&again, &s, "login", "feishu", "lina").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&again, &s).await["identity"]["id"], me["id"]);
}

#[tokio::test]
async fn feishu_errors_are_clear_localised_messages() {
    let f = FeishuEmulator::start().await;
    // A wrong App Secret: HTTP 400 with Feishu's code 20002.
    let s = TestServer::start(
        Backend::Sqlite,
        &config(&feishu_yaml(&f, "feishu", "not-the-secret", "")),
    )
    .await;
    let text = refused_in_every_language(
        &s,
        ("feishu", "zhangwei"),
        "Вход через Feishu отклонён",
        "飞书拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("Feishu error 20002") && text.contains("The client secret is invalid"),
        "{text}"
    );
    // An expired token at user_info: code 99991677 in a {code, msg} envelope with HTTP 400.
    let s = feishu_server(Backend::Sqlite, &f, "feishu", "").await;
    f.expire_tokens(true);
    let text = refused_in_every_language(
        &s,
        ("feishu", "zhangwei"),
        "Вход через Feishu отклонён",
        "飞书拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("Feishu error 99991677") && text.contains("expired"),
        "{text}"
    );
    f.expire_tokens(false);
    // Cancel on Feishu's page.
    let text = refused_in_every_language(
        &s,
        ("feishu", "deny"),
        "Вход через Feishu отменён",
        "飞书登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn feishu_emulator_refuses_what_feishu_refuses() {
    let f = FeishuEmulator::start().await;
    let c = TestServer::client();
    let back = "http://127.0.0.1:9/cb";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let authorize = |extra: &str| {
        format!(
            "{}?client_id={}&redirect_uri={back}&state=st{extra}",
            f.auth_url(),
            f.client_id()
        )
    };
    let code = |extra: &str| {
        let (c, url) = (c.clone(), authorize(&format!("&user=zhangwei{extra}")));
        async move {
            let r = c.get(url).send().await.unwrap();
            assert_eq!(r.status(), 302);
            param(&location(&r), "code").expect("a code")
        }
    };
    let token_url = format!("{}/open-apis/authen/v2/oauth/token", f.base_url());
    let token = |body: Value| {
        let (c, url) = (c.clone(), token_url.clone());
        async move {
            let r = c.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let body = |code: String| {
        json!({"grant_type": "authorization_code", "client_id": f.client_id(),
            "client_secret": f.client_secret(), "code": code, "redirect_uri": back})
    };

    let mut b = body(code("").await);
    b["client_secret"] = "wrong".into();
    let (st, e) = token(b).await;
    assert_eq!(
        (st, e["code"].clone(), e["error"].clone()),
        (400, json!(20002), json!("invalid_client"))
    );
    let (_, e) = token(body("nope".into())).await;
    assert_eq!(e["code"], 20003);
    let c1 = code("").await;
    let (st, t) = token(body(c1.clone())).await;
    assert_eq!((st, t["code"].clone()), (200, json!(0)), "{t}");
    assert!(t.get("refresh_token").is_none(), "only with offline_access");
    let (_, e) = token(body(c1)).await;
    assert_eq!(e["code"], 20065);
    let mut b = body(code("").await);
    b["redirect_uri"] = "http://127.0.0.1:9/other".into();
    assert_eq!(token(b).await.1["code"], 20071);
    f.set_code_ttl(Duration::ZERO);
    assert_eq!(token(body(code("").await)).await.1["code"], 20004);
    f.set_code_ttl(Duration::from_secs(300));
    let pkce = format!("&code_challenge={challenge}&code_challenge_method=S256");
    assert_eq!(token(body(code(&pkce).await)).await.1["code"], 20049);
    let mut b = body(code(&pkce).await);
    b["code_verifier"] = verifier.into();
    assert_eq!(token(b).await.1["code"], 0);
    // A form body is refused: the token endpoint speaks JSON only.
    let r = c
        .post(&token_url)
        .form(&[("grant_type", "authorization_code"), ("code", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 20001);

    // user_info: Bearer; the user in a {code, msg, data} envelope.
    let access = t["access_token"].as_str().unwrap();
    let info = format!("{}/open-apis/authen/v1/user_info", f.base_url());
    let r: Value = c
        .get(&info)
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (r["code"].clone(), r["data"]["name"].clone()),
        (json!(0), json!("张伟"))
    );
    let r = c.get(&info).bearer_auth("forged").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 99991668);

    // Authorize: an unregistered redirect_uri or an unknown app is an error page.
    f.register_redirect_uri(back);
    let r = c
        .get(authorize("&user=zhangwei").replace(back, "https://evil.example/cb"))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 400 && r.headers().get("location").is_none());
    let r = c
        .get(authorize("&user=zhangwei").replace(f.client_id(), "cli_other"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

// ---- QQ ------------------------------------------------------------------------------------

/// `tessera demo`'s QQ mapper, the one docs/providers/qq.md shows.
const QQ_MAPPER: &str = include_str!("../../demo/qq.jsonnet");

fn qq_yaml(q: &QqEmulator, secret: &str, extra: &str) -> String {
    format!(
        "          - id: qq\n            provider: qq\n            label: QQ\n            client_id: \"{}\"\n            client_secret: {secret}\n            auth_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n{extra}",
        q.client_id(),
        q.auth_url(),
        q.base_url(),
        b64(QQ_MAPPER)
    )
}

async fn qq_server(backend: Backend, q: &QqEmulator, extra: &str) -> TestServer {
    let s = TestServer::start(backend, &config(&qq_yaml(q, q.client_secret(), extra))).await;
    q.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/qq",
        s.public
    ));
    s
}

each_backend!(qq_sign_up_fills_the_email_then_signs_in_again);
async fn qq_sign_up_fills_the_email_then_signs_in_again(backend: Backend) {
    let q = QqEmulator::start().await;
    let s = qq_server(backend, &q, "").await;
    let b = Browser::default();
    let authorize = press_provider(&b, &s, "login", "qq", "https://app.example.com/after").await;
    assert_eq!(param(&authorize, "scope").as_deref(), Some("get_user_info"));
    assert_eq!(
        param(&authorize, "client_id").as_deref(),
        Some(q.client_id())
    );
    let page = b.get(&authorize, false).await.text().await.unwrap();
    assert!(page.contains("小明") && page.contains("小红"), "{page}");

    // The form-encoded token answer and the JSONP `/me` are read; the subject is the openid.
    let (me, ids) = sign_up_giving_an_email(&s, ("qq", "xiaoming"), "xiaoming@example.cn").await;
    assert_eq!(ids, json!([format!("qq:{}", q.openid_of("xiaoming"))]));
    assert_eq!(me["traits"]["name"]["first"], "小明");
    assert_eq!(
        me["metadata_public"]["qq_openid"],
        q.openid_of("xiaoming").as_str()
    );
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "login", "qq", "xiaoming").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], me["id"]);
    assert_eq!(identities(&s).await.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn qq_union_id_is_asked_for_and_used_when_configured() {
    let q = QqEmulator::start().await;
    let s = qq_server(
        Backend::Sqlite,
        &q,
        "            subject_source: union_id\n",
    )
    .await;
    let (me, ids) = sign_up_giving_an_email(&s, ("qq", "xiaohong"), "xiaohong@example.cn").await;
    assert_eq!(ids, json!(["qq:UID_0A1B2C3D4E5F60718293A4B5C6D7E8F0"]));
    assert_eq!(
        me["metadata_public"]["qq_unionid"],
        "UID_0A1B2C3D4E5F60718293A4B5C6D7E8F0"
    );
    // Without QQ's unionid permission, `/me` refuses with JSONP error 100048.
    q.set_unionid_permission(false);
    let text = refused_in_every_language(
        &s,
        ("qq", "xiaohong"),
        "Вход через QQ отклонён",
        "QQ 拒绝了此次登录",
    )
    .await;
    assert!(text.contains("QQ error 100048"), "{text}");
}

#[tokio::test]
async fn qq_jsonp_and_ret_errors_are_clear_localised_messages() {
    let q = QqEmulator::start().await;
    // A wrong APP Key: JSONP error 100002 from the token call.
    let s = TestServer::start(Backend::Sqlite, &config(&qq_yaml(&q, "not-the-key", ""))).await;
    let text = refused_in_every_language(
        &s,
        ("qq", "xiaoming"),
        "Вход через QQ отклонён",
        "QQ 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("QQ error 100002") && text.contains("client_secret is wrong"),
        "{text}"
    );
    // get_user_info's `{ret: 1002}` with HTTP 200.
    let s = qq_server(Backend::Sqlite, &q, "").await;
    q.fail_user_info(true);
    let text = refused_in_every_language(
        &s,
        ("qq", "xiaoming"),
        "Вход через QQ отклонён",
        "QQ 拒绝了此次登录",
    )
    .await;
    assert!(text.contains("QQ error 1002"), "{text}");
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn qq_emulator_refuses_what_qq_refuses() {
    let q = QqEmulator::start().await;
    let c = TestServer::client();
    let back = "http://127.0.0.1:9/cb";
    let authorize = |extra: &str| {
        format!(
            "{}?response_type=code&client_id={}&redirect_uri={back}&state=st&scope=get_user_info{extra}",
            q.auth_url(),
            q.client_id()
        )
    };
    let text = |url: String| {
        let c = c.clone();
        async move {
            let r = c.get(url).send().await.unwrap();
            (
                r.status().as_u16(),
                r.headers().get("location").cloned(),
                r.text().await.unwrap(),
            )
        }
    };
    let code = || {
        let url = authorize("&user=xiaoming");
        async move {
            let r = TestServer::client().get(url).send().await.unwrap();
            assert_eq!(r.status(), 302);
            param(&location(&r), "code").expect("a code")
        }
    };
    let token = |code: String, secret: &str, redirect: &str| {
        format!(
            "{}/oauth2.0/token?grant_type=authorization_code&client_id={}&client_secret={secret}&code={code}&redirect_uri={redirect}",
            q.base_url(),
            q.client_id()
        )
    };
    let secret = q.client_secret().to_string();

    // Success is form-encoded text; errors are JSONP with HTTP 200.
    let c1 = code().await;
    let (st, _, body) = text(token(c1.clone(), &secret, back)).await;
    assert_eq!(st, 200);
    assert!(
        body.starts_with("access_token=") && body.contains("&expires_in=7776000"),
        "{body}"
    );
    let access = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("access_token="))
        .unwrap()
        .to_string();
    let (st, _, body) = text(token(c1, &secret, back)).await;
    assert_eq!(st, 200);
    assert!(
        body.starts_with("callback( ") && body.contains("100020"),
        "{body}"
    );
    assert!(
        text(token(code().await, "wrong", back))
            .await
            .2
            .contains("100002")
    );
    assert!(
        text(token(code().await, &secret, "http://127.0.0.1:9/x"))
            .await
            .2
            .contains("100010")
    );
    q.set_code_ttl(Duration::ZERO);
    assert!(
        text(token(code().await, &secret, back))
            .await
            .2
            .contains("100019")
    );
    q.set_code_ttl(Duration::from_secs(600));
    let (_, _, json_body) = text(format!("{}&fmt=json", token(code().await, &secret, back))).await;
    assert!(serde_json::from_str::<Value>(&json_body).unwrap()["access_token"].is_string());

    // /me: JSONP with the app and the openid; the unionid only when asked for.
    let (_, _, body) = text(format!(
        "{}/oauth2.0/me?access_token={access}",
        q.base_url()
    ))
    .await;
    assert!(
        body.starts_with("callback( ") && body.contains(&q.openid_of("xiaoming")),
        "{body}"
    );
    assert!(!body.contains("unionid"), "{body}");
    let (_, _, body) = text(format!(
        "{}/oauth2.0/me?access_token={access}&unionid=1",
        q.base_url()
    ))
    .await;
    assert!(
        body.contains("UID_6F1B2C3D4E5F60718293A4B5C6D7E8F9"),
        "{body}"
    );
    let (_, _, body) = text(format!("{}/oauth2.0/me?access_token=forged", q.base_url())).await;
    assert!(body.contains("100016"), "{body}");

    // get_user_info: `ret` errors with HTTP 200; no email.
    let info = |token: &str, openid: &str| {
        format!(
            "{}/user/get_user_info?access_token={token}&oauth_consumer_key={}&openid={openid}",
            q.base_url(),
            q.client_id()
        )
    };
    let (_, _, body) = text(info(&access, &q.openid_of("xiaoming"))).await;
    let me: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (me["ret"].clone(), me["nickname"].clone()),
        (json!(0), json!("小明"))
    );
    assert!(me.get("email").is_none());
    let (st, _, body) = text(info(&access, "SOMEONEELSE")).await;
    assert_eq!(st, 200);
    assert_ne!(serde_json::from_str::<Value>(&body).unwrap()["ret"], 0);

    // Authorize: error pages, never a redirect.
    q.register_redirect_uri(back);
    for url in [
        authorize("&user=xiaoming").replace(back, "https://evil.example/cb"),
        authorize("&user=xiaoming").replace(q.client_id(), "100000000"),
        authorize("&user=deny"),
    ] {
        let (st, loc, _) = text(url.clone()).await;
        assert!(st == 200 && loc.is_none(), "{url}");
    }
}

// ---- Mail.ru -------------------------------------------------------------------------------

/// `tessera demo`'s Mail.ru mapper, the one docs/providers/mailru.md shows.
const MAILRU_MAPPER: &str = include_str!("../../demo/mailru.jsonnet");

fn mailru_yaml(m: &MailruEmulator, secret: &str) -> String {
    format!(
        "          - id: mailru\n            provider: mailru\n            label: Mail.ru\n            client_id: {}\n            client_secret: {secret}\n            api_base_url: {}\n            mapper_url: base64://{}\n",
        m.client_id(),
        m.base_url(),
        b64(MAILRU_MAPPER)
    )
}

each_backend!(mailru_sign_up_then_sign_in_into_the_same_identity);
async fn mailru_sign_up_then_sign_in_into_the_same_identity(backend: Backend) {
    let m = MailruEmulator::start().await;
    let s = TestServer::start(backend, &config(&mailru_yaml(&m, m.client_secret()))).await;
    m.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/mailru",
        s.public
    ));
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "mailru", "https://app.example.com/after").await;
    assert!(
        authorize.starts_with(&format!("{}/login?", m.base_url())),
        "{authorize}"
    );
    assert_eq!(param(&authorize, "scope").as_deref(), Some("userinfo"));
    let r = sign_in(&b, &s, "login", "mailru", "olga").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await["identity"].clone();
    assert_eq!(me["traits"]["email"], "olga.ivanova@mail.ru");
    assert_eq!(me["traits"]["name"]["last"], "Иванова");
    let id = me["id"].as_str().unwrap();
    assert_eq!(
        oidc_identifiers(&s, id).await,
        json!(["mailru:8473920017354821"])
    );
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "registration", "mailru", "olga").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], id);
    s.stop().await;
}

#[tokio::test]
async fn mailru_errors_are_clear_localised_messages() {
    let m = MailruEmulator::start().await;
    let s = TestServer::start(Backend::Sqlite, &config(&mailru_yaml(&m, "wrong"))).await;
    let text = refused_in_every_language(
        &s,
        ("mailru", "olga"),
        "Вход через Mail.ru отклонён",
        "Mail.ru 拒绝了此次登录",
    )
    .await;
    assert!(text.contains("invalid_client"), "{text}");
    let s = TestServer::start(
        Backend::Sqlite,
        &config(&mailru_yaml(&m, m.client_secret())),
    )
    .await;
    let text = refused_in_every_language(
        &s,
        ("mailru", "deny"),
        "Вход через Mail.ru отменён",
        "Mail.ru 登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    assert!(identities(&s).await.is_empty());
    assert_needs_a_secret(&config(&mailru_yaml(&m, "\"\""))).await;
}

#[tokio::test]
async fn mailru_emulator_refuses_what_mail_ru_refuses() {
    let m = MailruEmulator::start().await;
    let c = TestServer::client();
    let back = "http://127.0.0.1:9/cb";
    let login = |extra: &str| {
        format!(
            "{}/login?client_id={}&response_type=code&scope=userinfo&redirect_uri={back}&state=st{extra}",
            m.base_url(),
            m.client_id()
        )
    };
    let code = || {
        let (c, url) = (c.clone(), login("&user=olga"));
        async move {
            let r = c.get(url).send().await.unwrap();
            assert_eq!(r.status(), 302);
            param(&location(&r), "code").expect("a code")
        }
    };
    let token = |code: String, secret: &str, redirect: &str| {
        let rb = c
            .post(format!("{}/token", m.base_url()))
            .basic_auth(m.client_id(), Some(secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
            ]);
        async move {
            let r = rb.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let secret = m.client_secret().to_string();
    let (st, e) = token(code().await, "wrong", back).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_client")));
    let (_, e) = token(code().await, &secret, "http://127.0.0.1:9/other").await;
    assert_eq!(e["error_description"], "redirect_uri mismatch");
    let c1 = code().await;
    let (st, t) = token(c1.clone(), &secret, back).await;
    assert_eq!(st, 200, "{t}");
    let (_, e) = token(c1, &secret, back).await;
    assert_eq!(e["error"], "invalid_grant", "a code works once");
    m.set_code_ttl(Duration::ZERO);
    assert_eq!(
        token(code().await, &secret, back).await.1["error"],
        "invalid_grant"
    );
    m.set_code_ttl(Duration::from_secs(600));
    let access = t["access_token"].as_str().unwrap();
    let info = |t: &str| {
        c.get(format!("{}/userinfo?access_token={t}", m.base_url()))
            .send()
    };
    let me: Value = info(access).await.unwrap().json().await.unwrap();
    assert_eq!(
        (me["id"].as_str(), me["client_id"].as_str()),
        (Some("8473920017354821"), Some(m.client_id()))
    );
    m.revoke_tokens();
    let r = info(access).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error_code"], 5);
    m.register_redirect_uri(back);
    for url in [
        login("&user=olga").replace(back, "https://evil.example/cb"),
        login("&user=olga").replace(m.client_id(), "nope"),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert!(
            r.status() == 400 && r.headers().get("location").is_none(),
            "{url}"
        );
    }
}
